package org.exl2spark.model;

import java.util.Map;

/**
 * Rotary position embedding settings, from either transformers 4.x keys ({@code rope_theta}, {@code rope_scaling})
 * or the 5.x {@code rope_parameters} object. Supports the scalings Llama/Mistral/Qwen2 checkpoints use.
 */
public record RopeSpec(String type, double theta, Map<String, Double> parameters) {
    public static final java.util.Set<String> SUPPORTED_TYPES = java.util.Set.of("default", "linear", "llama3");

    public RopeSpec {
        parameters = Map.copyOf(parameters);
    }

    public double parameter(String name) {
        Double v = parameters.get(name);
        if (v == null) {
            throw new IllegalStateException("rope type '" + type + "' needs parameter '" + name + "'");
        }
        return v;
    }

    /** Inverse frequencies for the rotary dims of one head (headDim/2 values), as transformers computes them. */
    public double[] inverseFrequencies(int headDim) {
        int half = headDim / 2;
        double[] inv = new double[half];
        for (int i = 0; i < half; i++) {
            inv[i] = 1.0 / Math.pow(theta, (2.0 * i) / headDim);
        }
        switch (type) {
            case "default" -> {
            }
            case "linear" -> {
                double factor = parameter("factor");
                for (int i = 0; i < half; i++) {
                    inv[i] /= factor;
                }
            }
            case "llama3" -> {
                double factor = parameter("factor");
                double low = parameter("low_freq_factor");
                double high = parameter("high_freq_factor");
                double original = parameter("original_max_position_embeddings");
                double lowWavelen = original / low;
                double highWavelen = original / high;
                for (int i = 0; i < half; i++) {
                    double wavelen = 2 * Math.PI / inv[i];
                    if (wavelen > lowWavelen) {
                        inv[i] /= factor;
                    } else if (wavelen >= highWavelen) {
                        double smooth = (original / wavelen - low) / (high - low);
                        inv[i] = (1 - smooth) * inv[i] / factor + smooth * inv[i];
                    }
                }
            }
            default -> throw new IllegalStateException("unsupported rope type '" + type + "'");
        }
        return inv;
    }
}
