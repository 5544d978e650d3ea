package org.exl2spark.pipeline;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;

/**
 * Hidden states of a few calibration rows, [rows, tokens, hidden] fp32 on the host. Stored between passes as one
 * F16 safetensors tensor: ExLlamaV2 also keeps states in fp16 between modules, and it halves the job directory.
 */
public record HiddenStates(float[] data, int rows, int tokens, int hidden) {
    static final String TENSOR = "hidden_states";

    public HiddenStates {
        if ((long) rows * tokens * hidden != data.length) {
            throw new IllegalArgumentException("states of " + data.length + " values are not " + rows + "×" + tokens
                    + "×" + hidden);
        }
    }

    /** Values of one row, [tokens × hidden], starting at {@link #rowOffset(int)}. */
    public int rowOffset(int row) {
        return row * tokens * hidden;
    }

    public int rowSize() {
        return tokens * hidden;
    }

    public void write(FileSystem fs, Path target) throws IOException {
        write(fs, target, Map.of());
    }

    /** Writes the states with string {@code metadata} in the safetensors header (e.g. the error that produced them). */
    public void write(FileSystem fs, Path target, Map<String, String> metadata) throws IOException {
        TensorSpec spec = new TensorSpec(TENSOR, DType.F16, new long[] {rows, tokens, hidden});
        SafetensorsWriter.writeFile(fs, target, List.of(spec), metadata, (t, out) -> {
            ByteBuffer buf = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : data) {
                if (!buf.hasRemaining()) {
                    out.write(buf.array(), 0, buf.position());
                    buf.clear();
                }
                buf.putShort(Half.fromFloat(v));
            }
            out.write(buf.array(), 0, buf.position());
        });
    }

    /** The header metadata of a states file, without reading its data. */
    public static Map<String, String> metadata(Path file, Configuration conf) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file, conf)) {
            return f.metadata();
        }
    }

    public static HiddenStates read(Path file, Configuration conf) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file, conf)) {
            TensorInfo t = f.tensor(TENSOR);
            if (t.rank() != 3 || t.dtype() != DType.F16) {
                throw new ModelFormatException(file + ": hidden_states must be F16 [rows, tokens, hidden], found "
                        + t.dtype() + t.shapeString());
            }
            return new HiddenStates(f.readFloats(t), (int) t.dim(0), (int) t.dim(1), (int) t.dim(2));
        }
    }
}
