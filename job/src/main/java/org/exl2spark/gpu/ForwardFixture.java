package org.exl2spark.gpu;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.io.Half;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;

/**
 * An fp16 model's weights and tokenized evaluation rows in one gzip file, for the GPU bundle: the device machine has
 * no Hadoop (which reading a model directory needs) and its upload is capped at 64 MiB. The weights are stored as
 * fp16, so only a model whose weights are all exactly fp16 values is accepted (the export checks every one); read
 * back, they are bit for bit what {@link WeightSources} gives.
 *
 * <pre>java -cp job/target/exl2-spark.jar:job/target/lib/* org.exl2spark.gpu.ForwardFixture MODEL_DIR TEXT ROWS LENGTH OUT</pre>
 */
public final class ForwardFixture {
    private static final String MAGIC = "exl2-spark forward fixture 1";

    /** What a fixture holds: the model's config.json, the eval rows and the weights. */
    public record Contents(ModelArchitecture architecture, TokenRows tokens, WeightSource weights) {
    }

    private ForwardFixture() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 5) {
            throw new IllegalArgumentException("usage: ForwardFixture MODEL_DIR TEXT ROWS LENGTH OUT");
        }
        String model = args[0];
        Configuration conf = new Configuration();
        TokenRows tokens;
        try (Tokenizer tokenizer = Tokenizer.open(model, conf)) {
            tokens = EvalTokens.fromFile(args[1], conf, tokenizer, Integer.parseInt(args[2]), Integer.parseInt(args[3]));
        }
        byte[] config = Files.readAllBytes(Path.of(model, "config.json"));
        try (WeightSource weights = WeightSources.open(model, conf)) {
            write(config, weights, tokens, Path.of(args[4]));
        }
        System.out.println("wrote " + args[4] + " (" + Files.size(Path.of(args[4])) + " bytes): " + tokens.rows() + " × "
                + tokens.length() + " tokens, sha256 " + tokens.sha256());
    }

    public static void write(byte[] config, WeightSource weights, TokenRows tokens, Path file) throws IOException {
        ModelArchitecture arch = weights.architecture();
        try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(
                new GZIPOutputStream(Files.newOutputStream(file), 1 << 16)))) {
            out.writeUTF(MAGIC);
            out.writeInt(config.length);
            out.write(config);
            out.writeInt(tokens.rows());
            out.writeInt(tokens.length());
            for (int id : tokens.ids()) {
                out.writeInt(id);
            }
            writeTensor(out, "embed", weights.embeddingRows(IntStream.range(0, arch.vocabSize()).toArray()));
            for (LayerSpec layer : arch.layers()) {
                for (BlockSpec block : layer.blocks()) {
                    writeTensor(out, normKey(block.normName()), weights.norm(block.normName()));
                    for (LinearSpec l : block.linears()) {
                        writeLinear(out, weights, l);
                    }
                }
            }
            writeTensor(out, normKey(ModelArchitecture.FINAL_NORM), weights.norm(ModelArchitecture.FINAL_NORM));
            writeLinear(out, weights, arch.lmHead());
            out.writeUTF("");
        }
    }

    public static Contents read(Path file) throws IOException {
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(
                new GZIPInputStream(Files.newInputStream(file), 1 << 16)))) {
            String magic = in.readUTF();
            if (!MAGIC.equals(magic)) {
                throw new IOException(file + " is not a forward fixture (header '" + magic + "')");
            }
            byte[] config = new byte[in.readInt()];
            in.readFully(config);
            ModelArchitecture arch = ModelArchitecture.fromConfig(config, file + " (config.json)");
            int rows = in.readInt();
            int length = in.readInt();
            int[] ids = new int[Math.multiplyExact(rows, length)];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = in.readInt();
            }
            Map<String, float[]> tensors = new HashMap<>();
            for (String key = in.readUTF(); !key.isEmpty(); key = in.readUTF()) {
                float[] values = new float[in.readInt()];
                for (int i = 0; i < values.length; i++) {
                    values[i] = Half.toFloat(in.readShort());
                }
                tensors.put(key, values);
            }
            return new Contents(arch, new TokenRows(rows, length, ids), new Weights(arch, tensors, file));
        }
    }

    private static void writeLinear(DataOutputStream out, WeightSource weights, LinearSpec l) throws IOException {
        writeTensor(out, weightKey(l), weights.linearWeight(l));
        float[] bias = weights.bias(l);
        if (bias != null) {
            writeTensor(out, biasKey(l), bias);
        }
    }

    private static void writeTensor(DataOutputStream out, String key, float[] values) throws IOException {
        out.writeUTF(key);
        out.writeInt(values.length);
        for (int i = 0; i < values.length; i++) {
            short h = Half.fromFloat(values[i]);
            if (Float.floatToRawIntBits(Half.toFloat(h)) != Float.floatToRawIntBits(values[i])) {
                throw new IllegalArgumentException("fixture tensor '" + key + "': element " + i + " (" + values[i]
                        + ") is not an fp16 value; only fp16 models can be stored");
            }
            out.writeShort(h);
        }
    }

    private static String normKey(String name) {
        return "norm " + name;
    }

    private static String weightKey(LinearSpec l) {
        return "weight " + l.key();
    }

    private static String biasKey(LinearSpec l) {
        return "bias " + l.key();
    }

    /** The fixture's weights, all in memory. */
    private record Weights(ModelArchitecture architecture, Map<String, float[]> tensors, Path file)
            implements WeightSource {

        @Override
        public float[] linearWeight(LinearSpec linear) throws IOException {
            return get(weightKey(linear));
        }

        @Override
        public float[] bias(LinearSpec linear) {
            float[] b = tensors.get(biasKey(linear));
            return b == null ? null : b.clone();
        }

        @Override
        public float[] norm(String tensorName) throws IOException {
            return get(normKey(tensorName));
        }

        @Override
        public float[] embeddingRows(int[] ids) throws IOException {
            float[] table = tensors.get("embed");
            if (table == null) {
                throw new IOException(file + " has no embedding table");
            }
            int hidden = architecture.hiddenSize();
            float[] rows = new float[Math.multiplyExact(ids.length, hidden)];
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] < 0 || ids[i] >= architecture.vocabSize()) {
                    throw new IllegalArgumentException("token id " + ids[i] + " is outside the vocabulary [0, "
                            + architecture.vocabSize() + ")");
                }
                System.arraycopy(table, Math.toIntExact((long) ids[i] * hidden), rows, i * hidden, hidden);
            }
            return rows;
        }

        /** A copy: backends may keep an uploaded array. */
        private float[] get(String key) throws IOException {
            float[] t = tensors.get(key);
            if (t == null) {
                throw new IOException(file + " has no tensor '" + key + "'");
            }
            return t.clone();
        }

        @Override
        public void close() {
        }
    }
}
