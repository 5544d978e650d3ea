package org.exl2spark.model;

/** One decoder layer: attention block then MLP block. */
public record LayerSpec(int index, BlockSpec attention, BlockSpec mlp) {
}
