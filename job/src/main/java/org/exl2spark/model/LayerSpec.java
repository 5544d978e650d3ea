package org.exl2spark.model;

import java.util.List;

/** One decoder layer: attention block then MLP block. */
public record LayerSpec(int index, BlockSpec attention, BlockSpec mlp) {

    /** The two blocks in the order the forward runs them. */
    public List<BlockSpec> blocks() {
        return List.of(attention, mlp);
    }
}
