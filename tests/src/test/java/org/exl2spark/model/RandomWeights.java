package org.exl2spark.model;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.TensorSpec;

/**
 * Random weights for every tensor an architecture expects, held in memory, rounded to fp16 so the same values can be
 * written as an fp16 checkpoint and read back through {@link CheckpointWeights}.
 */
final class RandomWeights implements WeightSource {
    private final ModelArchitecture arch;
    private final String configJson;
    private final Map<String, float[]> tensors = new LinkedHashMap<>();

    RandomWeights(String configJson, long seed) throws IOException {
        this.configJson = configJson;
        this.arch = ModelArchitecture.fromConfig(configJson.getBytes(StandardCharsets.UTF_8), "test config");
        Random r = new Random(seed);
        for (Map.Entry<String, long[]> e : arch.expectedTensors().entrySet()) {
            long[] shape = e.getValue();
            int n = (int) (shape.length == 1 ? shape[0] : shape[0] * shape[1]);
            boolean norm = e.getKey().endsWith("norm.weight");
            double scale = shape.length == 2 ? 1 / Math.sqrt(shape[1]) : 0.1;
            float[] t = new float[n];
            for (int i = 0; i < n; i++) {
                double v = (norm ? 1 : 0) + r.nextGaussian() * (e.getKey().equals(ModelArchitecture.EMBED) ? 1 : scale);
                t[i] = Half.toFloat(Half.fromFloat((float) v));
            }
            tensors.put(e.getKey(), t);
        }
    }

    @Override
    public ModelArchitecture architecture() {
        return arch;
    }

    float[] tensor(String name) {
        return tensors.get(name).clone();
    }

    @Override
    public float[] linearWeight(LinearSpec linear) {
        return tensor(linear.equals(arch.lmHead()) ? arch.lmHeadWeightName() : linear.weightName());
    }

    @Override
    public float[] bias(LinearSpec linear) {
        return linear.hasBias() ? tensor(linear.biasName()) : null;
    }

    @Override
    public float[] norm(String tensorName) {
        return tensor(tensorName);
    }

    @Override
    public float[] embeddingRows(int[] ids) {
        float[] table = tensor(ModelArchitecture.EMBED);
        int hidden = architecture().hiddenSize();
        float[] rows = new float[ids.length * hidden];
        for (int i = 0; i < ids.length; i++) {
            System.arraycopy(table, ids[i] * hidden, rows, i * hidden, hidden);
        }
        return rows;
    }

    /** Writes config.json and the tensors as fp16 shards of at most {@code shardBytes}. */
    void writeCheckpoint(Path dir, long shardBytes) throws IOException {
        FileSystem fs = dir.getFileSystem(new Configuration());
        fs.mkdirs(dir);
        SafetensorsWriter.writeSmallFile(fs, new Path(dir, "config.json"), configJson.getBytes(StandardCharsets.UTF_8));
        List<TensorSpec> specs = new ArrayList<>();
        for (Map.Entry<String, long[]> e : arch.expectedTensors().entrySet()) {
            specs.add(new TensorSpec(e.getKey(), DType.F16, e.getValue()));
        }
        SafetensorsWriter.writeSharded(fs, dir, "model", specs, shardBytes, Map.of("format", "pt"), (spec, out) -> {
            float[] t = tensors.get(spec.name());
            ByteBuffer b = ByteBuffer.allocate(t.length * 2).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : t) {
                b.putShort(Half.fromFloat(v));
            }
            out.write(b.array());
        });
    }

    @Override
    public void close() {
    }

    static String config(String architecture, int hidden, int heads, int kvHeads, int intermediate, int layers,
            int vocab, String extra) {
        return "{\"architectures\": [\"" + architecture + "\"], \"hidden_size\": " + hidden
                + ", \"num_attention_heads\": " + heads + ", \"num_key_value_heads\": " + kvHeads
                + ", \"intermediate_size\": " + intermediate + ", \"num_hidden_layers\": " + layers
                + ", \"vocab_size\": " + vocab + ", \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0"
                + (extra.isEmpty() ? "" : ", " + extra) + "}";
    }
}
