package org.exl2spark.example;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;

/**
 * The shapes of the synthetic models {@code exl2 example} writes. {@code tiny} is a quick Llama in the spirit of the
 * shared tiny-llama-16m (transformers 5.x {@code rope_parameters}); the big presets are the real layer shapes of
 * Llama 3.1 70B (llama3 RoPE scaling) and Qwen1.5 110B (q/k/v biases), written in transformers 4.x style
 * ({@code rope_theta}, {@code rope_scaling}) with few layers by default.
 */
public enum ExamplePreset {
    TINY("tiny", 4, 4) {
        @Override
        Map<String, Object> config(int layers) {
            Map<String, Object> c = llamaBase(layers);
            c.put("dtype", "float16");
            c.put("head_dim", 64);
            c.put("hidden_size", 256);
            c.put("intermediate_size", 768);
            c.put("max_position_embeddings", 2048);
            c.put("num_attention_heads", 4);
            c.put("num_key_value_heads", 2);
            c.put("rms_norm_eps", 1e-5);
            c.put("rope_parameters", new TreeMap<>(Map.of("rope_theta", 10000.0, "rope_type", "default")));
            c.put("vocab_size", 4096);
            return c;
        }
    },
    LLAMA3_70B("llama3-70b", 1, 2048) {
        @Override
        Map<String, Object> config(int layers) {
            Map<String, Object> c = llamaBase(layers);
            c.put("head_dim", 128);
            c.put("hidden_size", 8192);
            c.put("intermediate_size", 28672);
            c.put("max_position_embeddings", 131072);
            c.put("num_attention_heads", 64);
            c.put("num_key_value_heads", 8);
            c.put("rms_norm_eps", 1e-5);
            c.put("rope_scaling", new TreeMap<>(Map.of("factor", 8.0, "high_freq_factor", 4.0, "low_freq_factor", 1.0,
                    "original_max_position_embeddings", 8192, "rope_type", "llama3")));
            c.put("rope_theta", 500000.0);
            c.put("torch_dtype", "float16");
            c.put("vocab_size", 128256);
            return c;
        }
    },
    QWEN15_110B("qwen1.5-110b", 1, 2048) {
        @Override
        Map<String, Object> config(int layers) {
            Map<String, Object> c = base("Qwen2ForCausalLM", "qwen2", layers);
            c.put("hidden_size", 8192);
            c.put("intermediate_size", 49152);
            c.put("max_position_embeddings", 32768);
            c.put("max_window_layers", 70);
            c.put("num_attention_heads", 64);
            c.put("num_key_value_heads", 8);
            c.put("rms_norm_eps", 1e-6);
            c.put("rope_theta", 1000000.0);
            c.put("sliding_window", 32768);
            c.put("torch_dtype", "float16");
            c.put("use_sliding_window", false);
            c.put("vocab_size", 152064);
            return c;
        }
    };

    private final String presetName;
    private final int defaultLayers;
    private final int defaultShardMegabytes;

    ExamplePreset(String presetName, int defaultLayers, int defaultShardMegabytes) {
        this.presetName = presetName;
        this.defaultLayers = defaultLayers;
        this.defaultShardMegabytes = defaultShardMegabytes;
    }

    /** config.json's content, keys sorted as transformers writes them. */
    abstract Map<String, Object> config(int layers);

    public String presetName() {
        return presetName;
    }

    public int defaultLayers() {
        return defaultLayers;
    }

    /** Small enough that the default output has several shards and an index, as real checkpoints do. */
    public int defaultShardMegabytes() {
        return defaultShardMegabytes;
    }

    public static ExamplePreset byName(String name) {
        for (ExamplePreset p : values()) {
            if (p.presetName.equals(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown preset '" + name + "'; choose one of " + names());
    }

    public static String names() {
        return Arrays.stream(values()).map(ExamplePreset::presetName).collect(Collectors.joining(", "));
    }

    @Override
    public String toString() {
        return presetName;
    }

    private static Map<String, Object> base(String architecture, String modelType, int layers) {
        Map<String, Object> c = new TreeMap<>();
        c.put("architectures", new String[] {architecture});
        c.put("attention_dropout", 0.0);
        c.put("bos_token_id", ByteLevelBpeTokenizer.BOS_ID);
        c.put("eos_token_id", ByteLevelBpeTokenizer.EOS_ID);
        c.put("hidden_act", "silu");
        c.put("initializer_range", 0.02);
        c.put("model_type", modelType);
        c.put("num_hidden_layers", layers);
        c.put("pad_token_id", ByteLevelBpeTokenizer.PAD_ID);
        c.put("tie_word_embeddings", false);
        c.put("use_cache", true);
        return c;
    }

    private static Map<String, Object> llamaBase(int layers) {
        Map<String, Object> c = base("LlamaForCausalLM", "llama", layers);
        c.put("attention_bias", false);
        c.put("mlp_bias", false);
        c.put("pretraining_tp", 1);
        return c;
    }
}
