package org.exl2spark.model;

import java.util.List;

/**
 * A pre-norm residual block of one decoder layer: attention (q/k/v/o) or MLP (gate/up/down). The unit of
 * measurement in ExLlamaV2's conversion. {@code key} is e.g. {@code model.layers.3.self_attn}.
 */
public record BlockSpec(Kind kind, int layer, String key, String normName, List<LinearSpec> linears) {

    public enum Kind {
        ATTENTION("self_attn"), MLP("mlp");

        private final String hfName;

        Kind(String hfName) {
            this.hfName = hfName;
        }

        /** The sub-module name in Hugging Face keys, also used in ExLlamaV2's measurement keys. */
        public String hfName() {
            return hfName;
        }
    }

    public BlockSpec {
        linears = List.copyOf(linears);
    }

    public LinearSpec linear(String shortName) {
        for (LinearSpec l : linears) {
            if (l.shortName().equals(shortName)) {
                return l;
            }
        }
        throw new IllegalArgumentException(key + " has no linear '" + shortName + "'");
    }

    /** The projection that writes the block's result into the residual stream: o_proj or down_proj. */
    public String outputProjection() {
        return kind == Kind.ATTENTION ? "o_proj" : "down_proj";
    }

    public long parameterCount() {
        return linears.stream().mapToLong(LinearSpec::parameterCount).sum();
    }
}
