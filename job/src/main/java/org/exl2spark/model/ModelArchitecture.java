package org.exl2spark.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.io.ModelFormatException;

/**
 * A decoder-only transformer described by its Hugging Face config.json: which tensors it has, their shapes, and the
 * settings its forward needs. Llama, Mistral and Qwen2 (incl. Qwen1.5) share this shape; they differ in biases and
 * attention windows.
 */
public final class ModelArchitecture {

    /** Model families we can convert, by the {@code architectures} entry of config.json. */
    public enum Family {
        LLAMA("LlamaForCausalLM", "llama"),
        MISTRAL("MistralForCausalLM", "mistral"),
        QWEN2("Qwen2ForCausalLM", "qwen2");

        private final String architecture;
        private final String modelType;

        Family(String architecture, String modelType) {
            this.architecture = architecture;
            this.modelType = modelType;
        }

        public String architecture() {
            return architecture;
        }

        public String modelType() {
            return modelType;
        }

        static String supportedList() {
            StringBuilder sb = new StringBuilder();
            for (Family f : values()) {
                sb.append(sb.length() == 0 ? "" : ", ").append(f.architecture);
            }
            return sb.toString();
        }
    }

    public static final String EMBED = "model.embed_tokens.weight";
    public static final String FINAL_NORM = "model.norm.weight";

    private final Family family;
    private final int hiddenSize;
    private final int intermediateSize;
    private final int numHeads;
    private final int numKvHeads;
    private final int headDim;
    private final int vocabSize;
    private final int numLayers;
    private final int maxPositionEmbeddings;
    private final double rmsNormEps;
    private final RopeSpec rope;
    private final boolean tieWordEmbeddings;
    private final boolean attentionBias;
    private final boolean outputProjBias;
    private final boolean mlpBias;
    /** Mistral's sliding attention window in tokens, or 0 for full causal attention. */
    private final int slidingWindow;
    private final List<LayerSpec> layers;
    private final LinearSpec lmHead;

    private ModelArchitecture(Family family, JsonNode c, String source) throws ModelFormatException {
        this.family = family;
        this.hiddenSize = positiveInt(c, "hidden_size", source);
        this.intermediateSize = positiveInt(c, "intermediate_size", source);
        this.numHeads = positiveInt(c, "num_attention_heads", source);
        this.numKvHeads = c.hasNonNull("num_key_value_heads") ? positiveInt(c, "num_key_value_heads", source) : numHeads;
        this.vocabSize = positiveInt(c, "vocab_size", source);
        this.numLayers = positiveInt(c, "num_hidden_layers", source);
        this.maxPositionEmbeddings = c.hasNonNull("max_position_embeddings")
                ? positiveInt(c, "max_position_embeddings", source) : 4096;
        this.rmsNormEps = c.hasNonNull("rms_norm_eps") ? c.get("rms_norm_eps").asDouble() : 1e-6;
        if (numHeads % numKvHeads != 0) {
            throw new ModelFormatException(source + ": num_attention_heads " + numHeads
                    + " is not a multiple of num_key_value_heads " + numKvHeads);
        }
        if (c.hasNonNull("head_dim")) {
            this.headDim = positiveInt(c, "head_dim", source);
        } else {
            if (hiddenSize % numHeads != 0) {
                throw new ModelFormatException(source + ": hidden_size " + hiddenSize
                        + " is not a multiple of num_attention_heads " + numHeads + " and head_dim is not given");
            }
            this.headDim = hiddenSize / numHeads;
        }
        if (headDim % 2 != 0) {
            throw new ModelFormatException(source + ": head_dim " + headDim + " must be even for rotary embeddings");
        }
        this.rope = parseRope(c, source);
        this.tieWordEmbeddings = c.path("tie_word_embeddings").asBoolean(false);
        boolean llamaBias = c.path("attention_bias").asBoolean(false);
        this.attentionBias = family == Family.QWEN2 || llamaBias;
        this.outputProjBias = family != Family.QWEN2 && llamaBias;
        this.mlpBias = c.path("mlp_bias").asBoolean(false);
        this.slidingWindow = parseSlidingWindow(family, c);
        this.layers = buildLayers();
        this.lmHead = new LinearSpec("lm_head", "lm_head", hiddenSize, vocabSize, false);
    }

    public static ModelArchitecture fromConfig(JsonNode config, String source) throws ModelFormatException {
        if (config == null || !config.isObject()) {
            throw new ModelFormatException(source + ": not a JSON object");
        }
        JsonNode archs = config.get("architectures");
        String arch = archs != null && archs.isArray() && archs.size() > 0 ? archs.get(0).asText() : null;
        String modelType = config.path("model_type").asText(null);
        for (Family f : Family.values()) {
            if (f.architecture.equals(arch) || (arch == null && f.modelType.equals(modelType))) {
                return new ModelArchitecture(f, config, source);
            }
        }
        throw new ModelFormatException(source + ": unsupported architecture "
                + (arch != null ? "'" + arch + "'" : "(model_type '" + modelType + "')")
                + "; supported: " + Family.supportedList());
    }

    public static ModelArchitecture fromConfig(byte[] json, String source) throws ModelFormatException {
        try {
            return fromConfig(new ObjectMapper().readTree(json), source);
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new ModelFormatException(source + ": not valid JSON: " + e.getMessage(), e);
        }
    }

    private static int positiveInt(JsonNode c, String key, String source) throws ModelFormatException {
        JsonNode v = c.get(key);
        if (v == null || v.isNull()) {
            throw new ModelFormatException(source + ": missing '" + key + "'");
        }
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() <= 0) {
            throw new ModelFormatException(source + ": '" + key + "' must be a positive integer, got " + v);
        }
        return v.intValue();
    }

    private static RopeSpec parseRope(JsonNode c, String source) throws ModelFormatException {
        // transformers 5.x: rope_parameters {rope_type, rope_theta, ...}; 4.x: rope_theta + rope_scaling {type|rope_type, ...}
        JsonNode params = c.get("rope_parameters");
        JsonNode scaling = c.get("rope_scaling");
        double theta = c.path("rope_theta").asDouble(10000.0);
        JsonNode block = params != null && params.isObject() ? params : scaling != null && scaling.isObject() ? scaling : null;
        String type = "default";
        Map<String, Double> values = new LinkedHashMap<>();
        if (block != null) {
            if (block.hasNonNull("rope_theta")) {
                theta = block.get("rope_theta").asDouble();
            }
            type = block.hasNonNull("rope_type") ? block.get("rope_type").asText()
                    : block.path("type").asText("default");
            for (Iterator<Map.Entry<String, JsonNode>> it = block.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getValue().isNumber()) {
                    values.put(e.getKey(), e.getValue().asDouble());
                }
            }
        }
        if (!RopeSpec.SUPPORTED_TYPES.contains(type)) {
            throw new ModelFormatException(source + ": unsupported rope type '" + type + "'; supported: "
                    + String.join(", ", new java.util.TreeSet<>(RopeSpec.SUPPORTED_TYPES)));
        }
        if (!(theta > 0)) {
            throw new ModelFormatException(source + ": rope_theta must be positive, got " + theta);
        }
        RopeSpec rope = new RopeSpec(type, theta, values);
        try {
            rope.inverseFrequencies(2);
        } catch (IllegalStateException e) {
            throw new ModelFormatException(source + ": " + e.getMessage());
        }
        return rope;
    }

    private static int parseSlidingWindow(Family family, JsonNode c) {
        JsonNode w = c.get("sliding_window");
        if (w == null || !w.isIntegralNumber()) {
            return 0;
        }
        // Qwen2 configs carry a window but only use it when use_sliding_window is set.
        if (family == Family.QWEN2 && !c.path("use_sliding_window").asBoolean(false)) {
            return 0;
        }
        return w.intValue();
    }

    private List<LayerSpec> buildLayers() {
        List<LayerSpec> out = new ArrayList<>(numLayers);
        long q = (long) numHeads * headDim;
        long kv = (long) numKvHeads * headDim;
        for (int i = 0; i < numLayers; i++) {
            String attn = "model.layers." + i + ".self_attn";
            String mlp = "model.layers." + i + ".mlp";
            BlockSpec a = new BlockSpec(BlockSpec.Kind.ATTENTION, i, attn, "model.layers." + i + ".input_layernorm.weight",
                    List.of(new LinearSpec(attn + ".q_proj", "q_proj", hiddenSize, q, attentionBias),
                            new LinearSpec(attn + ".k_proj", "k_proj", hiddenSize, kv, attentionBias),
                            new LinearSpec(attn + ".v_proj", "v_proj", hiddenSize, kv, attentionBias),
                            new LinearSpec(attn + ".o_proj", "o_proj", q, hiddenSize, outputProjBias)));
            BlockSpec m = new BlockSpec(BlockSpec.Kind.MLP, i, mlp,
                    "model.layers." + i + ".post_attention_layernorm.weight",
                    List.of(new LinearSpec(mlp + ".gate_proj", "gate_proj", hiddenSize, intermediateSize, mlpBias),
                            new LinearSpec(mlp + ".up_proj", "up_proj", hiddenSize, intermediateSize, mlpBias),
                            new LinearSpec(mlp + ".down_proj", "down_proj", intermediateSize, hiddenSize, mlpBias)));
            out.add(new LayerSpec(i, a, m));
        }
        return List.copyOf(out);
    }

    /** Every tensor a checkpoint of this architecture must hold, with its shape [rows, cols] or [n]. */
    public Map<String, long[]> expectedTensors() {
        Map<String, long[]> t = new LinkedHashMap<>();
        t.put(EMBED, new long[] {vocabSize, hiddenSize});
        for (LayerSpec l : layers) {
            for (BlockSpec b : l.blocks()) {
                t.put(b.normName(), new long[] {hiddenSize});
                for (LinearSpec lin : b.linears()) {
                    t.put(lin.weightName(), new long[] {lin.outFeatures(), lin.inFeatures()});
                    if (lin.hasBias()) {
                        t.put(lin.biasName(), new long[] {lin.outFeatures()});
                    }
                }
            }
        }
        t.put(FINAL_NORM, new long[] {hiddenSize});
        if (!tieWordEmbeddings) {
            t.put(lmHead.weightName(), new long[] {vocabSize, hiddenSize});
        }
        return t;
    }

    public long parameterCount() {
        long n = 0;
        for (long[] shape : expectedTensors().values()) {
            long e = 1;
            for (long d : shape) {
                e *= d;
            }
            n += e;
        }
        return n;
    }

    public Family family() {
        return family;
    }

    public int hiddenSize() {
        return hiddenSize;
    }

    public int intermediateSize() {
        return intermediateSize;
    }

    public int numHeads() {
        return numHeads;
    }

    public int numKvHeads() {
        return numKvHeads;
    }

    public int headDim() {
        return headDim;
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int numLayers() {
        return numLayers;
    }

    public int maxPositionEmbeddings() {
        return maxPositionEmbeddings;
    }

    public double rmsNormEps() {
        return rmsNormEps;
    }

    public RopeSpec rope() {
        return rope;
    }

    public boolean tieWordEmbeddings() {
        return tieWordEmbeddings;
    }

    public int slidingWindow() {
        return slidingWindow;
    }

    public List<LayerSpec> layers() {
        return layers;
    }

    public LayerSpec layer(int i) {
        return layers.get(i);
    }

    /** The output head; when embeddings are tied its weight is {@link #EMBED}. */
    public LinearSpec lmHead() {
        return lmHead;
    }

    public String lmHeadWeightName() {
        return tieWordEmbeddings ? EMBED : lmHead.weightName();
    }
}
