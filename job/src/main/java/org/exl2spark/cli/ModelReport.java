package org.exl2spark.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.RopeSpec;

/**
 * What {@code exl2 inspect} reports about a model directory, built from config.json and the safetensors headers
 * only: the architecture, the tensors checked against what the config implies, dtypes and shards.
 */
final class ModelReport {
    /** Weight dtypes a conversion can read. */
    private static final Set<DType> FLOAT_TYPES = EnumSet.of(DType.F16, DType.BF16, DType.F32);
    /** Buffers some older checkpoints saved; they are recomputed from config.json, so they are ignored, not errors. */
    private static final String ROTARY_BUFFER_SUFFIX = ".rotary_emb.inv_freq";

    private static final ObjectMapper JSON = new ObjectMapper();

    record Shard(String name, long bytes, int tensors) {
    }

    record DTypeUse(int tensors, long parameters) {
    }

    private final String location;
    private final ModelArchitecture arch;
    private final Map<String, TensorInfo> tensors;
    private final List<Shard> shards;
    private final Map<DType, DTypeUse> dtypes;
    private final long tensorParameters;
    private final List<String> problems;
    private final List<String> ignored;

    private ModelReport(String location, ModelArchitecture arch, Map<String, TensorInfo> tensors, List<Shard> shards,
            Map<DType, DTypeUse> dtypes, long tensorParameters, List<String> problems, List<String> ignored) {
        this.location = location;
        this.arch = arch;
        this.tensors = tensors;
        this.shards = shards;
        this.dtypes = dtypes;
        this.tensorParameters = tensorParameters;
        this.problems = problems;
        this.ignored = ignored;
    }

    static ModelReport of(ModelDirectory model) throws IOException {
        ModelArchitecture arch = model.architecture();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        List<Shard> shards = new ArrayList<>();
        for (Map.Entry<String, SafetensorsFile> e : model.shards().entrySet()) {
            SafetensorsFile f = e.getValue();
            shards.add(new Shard(e.getKey(), f.fileLength(), f.tensors().size()));
            tensors.putAll(f.tensors());
        }
        List<String> problems = new ArrayList<>();
        List<String> ignored = new ArrayList<>();
        Map<String, long[]> expected = arch.expectedTensors();
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            TensorInfo t = tensors.get(e.getKey());
            if (t == null) {
                problems.add("missing tensor " + e.getKey() + " " + Arrays.toString(e.getValue()));
            } else if (!Arrays.equals(t.shape(), e.getValue())) {
                problems.add("tensor " + e.getKey() + " has shape " + t.shapeString() + ", config.json implies "
                        + Arrays.toString(e.getValue()));
            } else if (!FLOAT_TYPES.contains(t.dtype())) {
                problems.add("tensor " + e.getKey() + " is " + t.dtype() + ", expected one of " + FLOAT_TYPES);
            }
        }
        Map<DType, DTypeUse> dtypes = new TreeMap<>();
        long parameters = 0;
        for (TensorInfo t : tensors.values()) {
            if (!expected.containsKey(t.name())) {
                if (t.name().endsWith(ROTARY_BUFFER_SUFFIX)) {
                    ignored.add(t.name());
                    continue;
                }
                problems.add("unexpected tensor " + t.name() + " " + t.shapeString() + " (not part of a "
                        + arch.family().architecture() + " with this config.json)");
            }
            parameters += t.numElements();
            DTypeUse u = dtypes.getOrDefault(t.dtype(), new DTypeUse(0, 0));
            dtypes.put(t.dtype(), new DTypeUse(u.tensors() + 1, u.parameters() + t.numElements()));
        }
        shards.sort(Comparator.comparing(Shard::name));
        return new ModelReport(model.path().toString(), arch, tensors, List.copyOf(shards), dtypes, parameters,
                List.copyOf(problems), List.copyOf(ignored));
    }

    List<String> problems() {
        return problems;
    }

    /** The rows of the per-linear table: layer 0's linears (all layers are alike) and the output head. */
    private List<LinearSpec> representativeLinears() {
        List<LinearSpec> out = new ArrayList<>();
        LayerSpec first = arch.layer(0);
        for (BlockSpec b : first.blocks()) {
            out.addAll(b.linears());
        }
        out.add(arch.lmHead());
        return out;
    }

    private String linearLabel(LinearSpec l) {
        String prefix = "model.layers.0.";
        return l.key().startsWith(prefix) ? l.key().substring(prefix.length()) : l.key();
    }

    /** The tensor holding a linear's weight: the embedding for a tied output head. */
    private String weightTensor(LinearSpec l) {
        return l.equals(arch.lmHead()) ? arch.lmHeadWeightName() : l.weightName();
    }

    private String dtypeOf(String tensor) {
        TensorInfo t = tensors.get(tensor);
        return t == null ? "missing" : t.dtype().name();
    }

    private long totalBytes() {
        return shards.stream().mapToLong(Shard::bytes).sum();
    }

    String text() {
        StringBuilder s = new StringBuilder();
        ModelArchitecture a = arch;
        line(s, "Model", location);
        line(s, "Architecture", a.family().architecture() + " (model_type " + a.family().modelType() + ")");
        line(s, "  hidden size", count(a.hiddenSize()));
        line(s, "  layers", count(a.numLayers()));
        line(s, "  attention heads", a.numHeads() + " query, " + a.numKvHeads() + " key/value"
                + (a.numKvHeads() < a.numHeads() ? " (GQA, " + a.numHeads() / a.numKvHeads() + " per KV head)" : "")
                + ", head_dim " + a.headDim());
        line(s, "  intermediate size", count(a.intermediateSize()));
        line(s, "  vocab size", count(a.vocabSize()));
        line(s, "  max positions", count(a.maxPositionEmbeddings()));
        line(s, "  RMSNorm eps", number(a.rmsNormEps()));
        line(s, "  RoPE", ropeText(a.rope()));
        line(s, "  tied embeddings", a.tieWordEmbeddings() ? "yes (lm_head uses " + ModelArchitecture.EMBED + ")" : "no");
        line(s, "  sliding window", a.slidingWindow() > 0 ? count(a.slidingWindow()) + " tokens" : "none");
        line(s, "Parameters", count(a.parameterCount()) + " from config.json; the tensors hold "
                + count(tensorParameters) + (tensorParameters == a.parameterCount() ? " (equal)" : " (DIFFERENT)"));
        StringBuilder dt = new StringBuilder();
        dtypes.forEach((d, u) -> dt.append(dt.length() == 0 ? "" : "; ").append(d).append(": ")
                .append(count(u.tensors())).append(" tensors, ").append(count(u.parameters())).append(" parameters"));
        line(s, "Dtypes", dt.toString());
        line(s, "Linears", "layer 0 in full"
                + (a.numLayers() > 1 ? "; layers 1-" + (a.numLayers() - 1) + " have the same shapes" : "")
                + " (every layer's tensors checked)");
        s.append(String.format(Locale.ROOT, "  %-18s %9s %9s  %-16s %-5s %s%n", "linear", "in", "out", "weight",
                "bias", "dtype"));
        for (LinearSpec l : representativeLinears()) {
            String weight = weightTensor(l);
            s.append(String.format(Locale.ROOT, "  %-18s %9d %9d  %-16s %-5s %s%n", linearLabel(l), l.inFeatures(),
                    l.outFeatures(), "[" + l.outFeatures() + ", " + l.inFeatures() + "]", l.hasBias() ? "yes" : "no",
                    dtypeOf(weight) + (weight.equals(l.weightName()) ? "" : " (tied: " + weight + ")")));
        }
        line(s, "Embedding", ModelArchitecture.EMBED + " [" + a.vocabSize() + ", " + a.hiddenSize() + "] "
                + dtypeOf(ModelArchitecture.EMBED));
        line(s, "Norms", "input_layernorm and post_attention_layernorm per layer, model.norm: [" + a.hiddenSize()
                + "] " + dtypeOf(ModelArchitecture.FINAL_NORM));
        line(s, "Shards", shards.size() + (shards.size() == 1 ? " file, " : " files, ") + bytes(totalBytes()));
        for (Shard sh : shards) {
            s.append(String.format(Locale.ROOT, "  %-40s %s, %d tensor%s%n", sh.name(), bytes(sh.bytes()),
                    sh.tensors(), sh.tensors() == 1 ? "" : "s"));
        }
        if (!ignored.isEmpty()) {
            line(s, "Ignored", ignored.size() + " rotary buffers (recomputed from config.json), e.g. " + ignored.get(0));
        }
        line(s, "Problems", problems.isEmpty() ? "none" : String.valueOf(problems.size()));
        for (String p : problems) {
            s.append("  ").append(p).append('\n');
        }
        return s.toString();
    }

    String json() throws IOException {
        ModelArchitecture a = arch;
        ObjectNode root = JSON.createObjectNode();
        root.put("location", location);
        ObjectNode ar = root.putObject("architecture");
        ar.put("architecture", a.family().architecture());
        ar.put("model_type", a.family().modelType());
        ar.put("hidden_size", a.hiddenSize());
        ar.put("num_hidden_layers", a.numLayers());
        ar.put("num_attention_heads", a.numHeads());
        ar.put("num_key_value_heads", a.numKvHeads());
        ar.put("head_dim", a.headDim());
        ar.put("intermediate_size", a.intermediateSize());
        ar.put("vocab_size", a.vocabSize());
        ar.put("max_position_embeddings", a.maxPositionEmbeddings());
        ar.put("rms_norm_eps", a.rmsNormEps());
        ObjectNode rope = ar.putObject("rope");
        rope.put("rope_type", a.rope().type());
        rope.put("rope_theta", a.rope().theta());
        new TreeMap<>(a.rope().parameters()).forEach((k, v) -> {
            if (!k.equals("rope_theta")) {
                rope.put(k, v);
            }
        });
        ar.put("tie_word_embeddings", a.tieWordEmbeddings());
        ar.put("sliding_window", a.slidingWindow());
        ObjectNode params = root.putObject("parameters");
        params.put("from_config", a.parameterCount());
        params.put("in_tensors", tensorParameters);
        ObjectNode dt = root.putObject("dtypes");
        dtypes.forEach((d, u) -> dt.putObject(d.name()).put("tensors", u.tensors()).put("parameters", u.parameters()));
        ArrayNode lin = root.putArray("linears");
        for (LinearSpec l : representativeLinears()) {
            lin.addObject().put("name", linearLabel(l)).put("in_features", l.inFeatures())
                    .put("out_features", l.outFeatures()).put("bias", l.hasBias())
                    .put("dtype", dtypeOf(weightTensor(l)));
        }
        root.put("linears_per_layer_alike", true);
        ArrayNode sh = root.putArray("shards");
        for (Shard s : shards) {
            sh.addObject().put("name", s.name()).put("bytes", s.bytes()).put("tensors", s.tensors());
        }
        root.put("total_bytes", totalBytes());
        ArrayNode ig = root.putArray("ignored_tensors");
        ignored.forEach(ig::add);
        ArrayNode pr = root.putArray("problems");
        problems.forEach(pr::add);
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(root) + "\n";
    }

    private static String ropeText(RopeSpec r) {
        StringBuilder s = new StringBuilder(r.type()).append(", theta ").append(number(r.theta()));
        new TreeMap<>(r.parameters()).forEach((k, v) -> {
            if (!k.equals("rope_theta")) {
                s.append(", ").append(k).append(' ').append(number(v));
            }
        });
        return s.toString();
    }

    private static void line(StringBuilder s, String label, String value) {
        s.append(String.format(Locale.ROOT, "%-22s %s%n", label, value));
    }

    /** A count with thousands separators: 15,735,168. */
    static String count(long n) {
        return String.format(Locale.ROOT, "%,d", n);
    }

    /** Bytes with separators and a binary-unit figure: 13,377,432 bytes (12.8 MiB). */
    static String bytes(long n) {
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = n;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return count(n) + " bytes" + (u < 0 ? "" : String.format(Locale.ROOT, " (%.1f %s)", v, units[u]));
    }

    /** A config value as written: 10000 not 10000.0, 0.00001 not 1.0E-5. */
    static String number(double d) {
        return BigDecimal.valueOf(d).stripTrailingZeros().toPlainString();
    }
}
