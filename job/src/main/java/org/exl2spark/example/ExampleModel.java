package org.exl2spark.example;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.ModelArchitecture;

/**
 * A deterministic synthetic model in Hugging Face layout: config.json, generation_config.json, sharded fp16
 * safetensors with their index, and a byte-level BPE tokenizer. The same preset, layers and seed give
 * byte-identical files (on the same Java version: the values come from the JDK's Gaussian sampler).
 */
public final class ExampleModel {
    /** The tokenizer's vocabulary is capped here; big presets' embeddings have more rows than it has tokens. */
    public static final int MAX_TOKENIZER_VOCAB = 4096;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final ExamplePreset preset;
    private final int layers;
    private final long seed;
    private final byte[] config;
    private final ModelArchitecture architecture;

    private ExampleModel(ExamplePreset preset, int layers, long seed) {
        this.preset = preset;
        this.layers = layers;
        this.seed = seed;
        this.config = json(preset.config(layers));
        try {
            this.architecture = ModelArchitecture.fromConfig(config, preset + " preset config.json");
        } catch (ModelFormatException e) {
            throw new IllegalStateException("preset " + preset + " makes an invalid config: " + e.getMessage(), e);
        }
    }

    /** {@code layers} null means the preset's default. */
    public static ExampleModel of(ExamplePreset preset, Integer layers, long seed) {
        int n = layers == null ? preset.defaultLayers() : layers;
        if (n < 1) {
            throw new IllegalArgumentException("--layers must be at least 1, got " + n);
        }
        return new ExampleModel(preset, n, seed);
    }

    public ExamplePreset preset() {
        return preset;
    }

    public int layers() {
        return layers;
    }

    public long seed() {
        return seed;
    }

    public byte[] configJson() {
        return config.clone();
    }

    public ModelArchitecture architecture() {
        return architecture;
    }

    /** Every tensor, fp16, in the order the architecture lists them (embedding, layers, final norm, head). */
    public List<TensorSpec> tensors() {
        List<TensorSpec> out = new ArrayList<>();
        for (Map.Entry<String, long[]> e : architecture.expectedTensors().entrySet()) {
            out.add(new TensorSpec(e.getKey(), DType.F16, e.getValue()));
        }
        return out;
    }

    public long weightBytes() {
        return tensors().stream().mapToLong(TensorSpec::byteSize).sum();
    }

    public int tokenizerVocabSize() {
        return Math.min(architecture.vocabSize(), MAX_TOKENIZER_VOCAB);
    }

    /** What {@link #write} produced. */
    public record Written(Path dir, int shards, long bytes) {
    }

    /**
     * Writes the model to {@code dir}, which must not exist or be empty. Everything is written into a temporary
     * sibling directory that is renamed to {@code dir} only when complete; on failure it is removed.
     */
    public Written write(FileSystem fs, Path dir, long maxShardBytes) throws IOException {
        if (fs.exists(dir)) {
            FileStatus status = fs.getFileStatus(dir);
            if (!status.isDirectory()) {
                throw new IllegalArgumentException(dir + " already exists and is not a directory");
            }
            if (fs.listStatus(dir).length > 0) {
                throw new IllegalArgumentException(dir + " already exists and is not empty; choose a new directory");
            }
        }
        Path parent = dir.getParent();
        if (parent == null) {
            throw new IllegalArgumentException(dir + ": cannot write a model at the root of a file system");
        }
        fs.mkdirs(parent);
        Path tmp = new Path(parent, "." + dir.getName() + ".tmp-" + UUID.randomUUID());
        if (!fs.mkdirs(tmp)) {
            throw new IOException("could not create " + tmp);
        }
        try {
            SafetensorsWriter.writeSmallFile(fs, new Path(tmp, ModelDirectory.CONFIG), config);
            SafetensorsWriter.writeSmallFile(fs, new Path(tmp, "generation_config.json"), generationConfig());
            SafetensorsWriter.writeSmallFile(fs, new Path(tmp, "tokenizer_config.json"), tokenizerConfig());
            SafetensorsWriter.writeSmallFile(fs, new Path(tmp, "tokenizer.json"),
                    ByteLevelBpeTokenizer.train(tokenizerVocabSize()).toJson());
            Map<String, String> weightMap = SafetensorsWriter.writeSharded(fs, tmp, "model", tensors(), maxShardBytes,
                    Map.of("format", "pt"), (t, out) -> SeededWeights.write(t, seed, out));
            long bytes = 0;
            for (FileStatus f : fs.listStatus(tmp)) {
                bytes += f.getLen();
            }
            if (fs.exists(dir) && !fs.delete(dir, false)) {
                throw new IOException("could not replace the empty directory " + dir);
            }
            if (!fs.rename(tmp, dir)) {
                throw new IOException("could not rename " + tmp + " to " + dir);
            }
            return new Written(dir, (int) weightMap.values().stream().distinct().count(), bytes);
        } catch (IOException | RuntimeException e) {
            fs.delete(tmp, true);
            throw e;
        }
    }

    private byte[] generationConfig() {
        Map<String, Object> g = new TreeMap<>();
        g.put("_from_model_config", true);
        g.put("bos_token_id", ByteLevelBpeTokenizer.BOS_ID);
        g.put("eos_token_id", ByteLevelBpeTokenizer.EOS_ID);
        g.put("pad_token_id", ByteLevelBpeTokenizer.PAD_ID);
        return json(g);
    }

    private byte[] tokenizerConfig() {
        Map<String, Object> t = new TreeMap<>();
        t.put("add_bos_token", true);
        t.put("bos_token", ByteLevelBpeTokenizer.SPECIAL_TOKENS.get(ByteLevelBpeTokenizer.BOS_ID));
        t.put("clean_up_tokenization_spaces", false);
        t.put("eos_token", ByteLevelBpeTokenizer.SPECIAL_TOKENS.get(ByteLevelBpeTokenizer.EOS_ID));
        t.put("model_max_length", architecture.maxPositionEmbeddings());
        t.put("pad_token", ByteLevelBpeTokenizer.SPECIAL_TOKENS.get(ByteLevelBpeTokenizer.PAD_ID));
        t.put("tokenizer_class", "PreTrainedTokenizerFast");
        return json(t);
    }

    private static byte[] json(Object value) {
        try {
            return JSON.writeValueAsBytes(value);
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
    }
}
