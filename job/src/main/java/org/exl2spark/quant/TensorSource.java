package org.exl2spark.quant;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Set;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;

/**
 * Where EXL2 tensors come from: one safetensors file, a model directory, or (in tests) tensors held in memory. Reads
 * are ranged with {@code long} offsets, so tensors above 2 GiB are read piece by piece.
 */
public interface TensorSource {

    /** Names the source in error messages (a file or directory path). */
    String location();

    Set<String> names();

    default boolean contains(String name) {
        return names().contains(name);
    }

    /** The tensor's header entry; a {@link ModelFormatException} naming the source if there is none. */
    TensorInfo tensor(String name) throws IOException;

    /** Fills {@code dst}'s remaining bytes with the tensor's bytes from {@code offsetInTensor} on. */
    void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException;

    /** A whole small tensor (at most 2 GiB) in a little-endian buffer. */
    default ByteBuffer readAll(TensorInfo t) throws IOException {
        if (t.byteSize() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(location() + ": tensor '" + t.name() + "' is " + t.byteSize()
                    + " bytes, too large for one buffer; read it by rows");
        }
        ByteBuffer b = ByteBuffer.allocate((int) t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        readRange(t, 0, b);
        return b.flip();
    }

    /** Receives one row of a 2-D tensor as a little-endian buffer positioned at the row's first byte. */
    @FunctionalInterface
    interface RowConsumer {
        void accept(int row, ByteBuffer rowBytes);
    }

    /**
     * Streams a row-major tensor of {@code rows} rows of {@code rowBytes} bytes each to {@code consumer}, reading
     * several rows per request (about 8 MiB) so that tensors of any total size pass through a bounded buffer.
     */
    default void readRows(TensorInfo t, int rows, int rowBytes, RowConsumer consumer) throws IOException {
        if ((long) rows * rowBytes != t.byteSize()) {
            throw new ModelFormatException(location() + ": tensor '" + t.name() + "' holds " + t.byteSize()
                    + " bytes, not " + rows + " rows of " + rowBytes);
        }
        int perRead = (int) Math.max(1, Math.min(rows, (8L << 20) / Math.max(1, rowBytes)));
        ByteBuffer buf = ByteBuffer.allocate(perRead * rowBytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int first = 0; first < rows; first += perRead) {
            int n = Math.min(perRead, rows - first);
            buf.clear().limit(n * rowBytes);
            readRange(t, (long) first * rowBytes, buf);
            for (int r = 0; r < n; r++) {
                buf.limit((r + 1) * rowBytes).position(r * rowBytes);
                consumer.accept(first + r, buf);
            }
        }
    }

    /**
     * Rows {@code ids} (ascending, distinct) of a row-major [rows, cols] floating-point tensor, widened to fp32:
     * [ids.length, cols]. Runs of consecutive ids are read with one ranged request each, so a task embedding a few
     * thousand distinct tokens reads those rows and not a multi-gigabyte table.
     */
    default float[] readRowsAsFloats(String name, long rows, int cols, int[] ids) throws IOException {
        TensorInfo t = tensor(name);
        if (t.shape().length != 2 || t.shape()[0] != rows || t.shape()[1] != cols) {
            throw new ModelFormatException(location() + ": tensor '" + name + "' has shape " + t.shapeString()
                    + ", expected [" + rows + ", " + cols + "]");
        }
        SafetensorsFile.checkFloating(t, location());
        int elementBytes = t.dtype().bytes();
        float[] out = new float[Math.multiplyExact(ids.length, cols)];
        int first = 0;
        while (first < ids.length) {
            int end = first + 1;
            while (end < ids.length && ids[end] == ids[end - 1] + 1) {
                end++;
            }
            if (ids[first] < 0 || ids[end - 1] >= rows || (first > 0 && ids[first] <= ids[first - 1])) {
                throw new IllegalArgumentException(location() + ": row ids of '" + name + "' must be ascending, distinct"
                        + " and below " + rows + "; got " + ids[first] + " after " + (first > 0 ? ids[first - 1] : "none"));
            }
            int n = (end - first) * cols;
            ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(n, elementBytes)).order(ByteOrder.LITTLE_ENDIAN);
            readRange(t, (long) ids[first] * cols * elementBytes, b);
            System.arraycopy(SafetensorsFile.toFloats(b.flip(), t.dtype(), n), 0, out, first * cols, n);
            first = end;
        }
        return out;
    }

    static TensorSource of(SafetensorsFile file) {
        return new TensorSource() {
            @Override
            public String location() {
                return file.path().toString();
            }

            @Override
            public Set<String> names() {
                return file.tensors().keySet();
            }

            @Override
            public TensorInfo tensor(String name) throws IOException {
                return file.tensor(name);
            }

            @Override
            public void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException {
                file.readRange(t, offsetInTensor, dst);
            }
        };
    }

    static TensorSource of(ModelDirectory dir) {
        return new TensorSource() {
            @Override
            public String location() {
                return dir.path().toString();
            }

            @Override
            public Set<String> names() {
                return dir.tensorLocations().keySet();
            }

            @Override
            public TensorInfo tensor(String name) throws IOException {
                return dir.tensor(name);
            }

            @Override
            public void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException {
                dir.shardOf(t.name()).readRange(t, offsetInTensor, dst);
            }
        };
    }
}
