package org.exl2spark.example;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Map;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;

/**
 * The weights {@code exl2 example} writes for a model, drawn in memory instead of read back from its shards: the
 * same fp16 values (the same {@link SeededWeights} stream), with no file system. For benchmarks on a machine whose
 * disk, or whose bundle of jars, should not hold a model.
 */
public final class ExampleWeights implements WeightSource {
    private final ExampleModel model;
    private final Map<String, long[]> shapes;

    public ExampleWeights(ExampleModel model) {
        this.model = model;
        this.shapes = model.architecture().expectedTensors();
    }

    @Override
    public ModelArchitecture architecture() {
        return model.architecture();
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        return tensor(linear.weightName());
    }

    @Override
    public float[] bias(LinearSpec linear) throws IOException {
        return linear.hasBias() ? tensor(linear.biasName()) : null;
    }

    @Override
    public float[] norm(String tensorName) throws IOException {
        return tensor(tensorName);
    }

    /** Draws the whole table (its values come as one stream) and keeps the rows asked for. */
    @Override
    public float[] embeddingRows(int[] ids) throws IOException {
        float[] table = tensor(ModelArchitecture.EMBED);
        int hidden = model.architecture().hiddenSize();
        int vocab = model.architecture().vocabSize();
        float[] rows = new float[Math.multiplyExact(ids.length, hidden)];
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IllegalArgumentException("token id " + ids[i] + " outside the vocabulary [0, " + vocab + ")");
            }
            System.arraycopy(table, ids[i] * hidden, rows, i * hidden, hidden);
        }
        return rows;
    }

    @Override
    public void close() {
    }

    private float[] tensor(String name) throws IOException {
        long[] shape = shapes.get(name);
        if (shape == null) {
            throw new IllegalArgumentException(model.preset() + " preset has no tensor '" + name + "'");
        }
        TensorSpec spec = new TensorSpec(name, DType.F16, shape);
        long n = spec.numElements();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + n + " elements, more than a float[]");
        }
        HalfDecoder out = new HalfDecoder(new float[(int) n]);
        SeededWeights.write(spec, model.seed(), out);
        if (out.position != n) {
            throw new IllegalStateException("tensor '" + name + "': " + out.position + " of " + n + " values drawn");
        }
        return out.values;
    }

    /** Decodes a little-endian fp16 byte stream into floats. */
    private static final class HalfDecoder extends OutputStream {
        private final float[] values;
        private int position;
        private int pending = -1;

        HalfDecoder(float[] values) {
            this.values = values;
        }

        @Override
        public void write(int b) {
            if (pending < 0) {
                pending = b & 0xff;
            } else {
                values[position++] = Half.toFloat((short) (pending | (b & 0xff) << 8));
                pending = -1;
            }
        }

        @Override
        public void write(byte[] b, int off, int len) {
            int i = off;
            int end = off + len;
            if (pending >= 0 && i < end) {
                write(b[i++]);
            }
            for (; i + 1 < end; i += 2) {
                values[position++] = Half.toFloat((short) ((b[i] & 0xff) | (b[i + 1] & 0xff) << 8));
            }
            if (i < end) {
                write(b[i]);
            }
        }
    }
}
