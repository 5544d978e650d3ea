package org.exl2spark.quant;

import java.io.IOException;
import java.util.Arrays;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.TensorInfo;

/**
 * A row-major matrix of IEEE binary16 values (raw bits in {@code short}s). Each row is its own array, so a matrix
 * may hold more than 2^31 elements in all; only rows and columns are limited to 2^31-1.
 */
public final class HalfMatrix {
    private final int rows;
    private final int cols;
    private final short[][] data;

    public HalfMatrix(int rows, int cols) {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException("negative shape [" + rows + ", " + cols + "]");
        }
        this.rows = rows;
        this.cols = cols;
        this.data = new short[rows][cols];
    }

    /** A 2-D F16 tensor, read row by row (any total size). */
    public static HalfMatrix read(TensorSource source, String name) throws IOException {
        TensorInfo t = source.tensor(name);
        if (t.dtype() != DType.F16 || t.rank() != 2 || t.dim(0) > Integer.MAX_VALUE
                || t.dim(1) > (Integer.MAX_VALUE - 8) / 2) {
            throw new ModelFormatException(source.location() + ": tensor '" + name + "' " + t.dtype()
                    + t.shapeString() + " is not a 2-D F16 matrix of at most 2^31-1 rows and 2^30-4 columns");
        }
        HalfMatrix m = new HalfMatrix((int) t.dim(0), (int) t.dim(1));
        source.readRows(t, m.rows, 2 * m.cols, (r, b) -> b.asShortBuffer().get(m.data[r]));
        return m;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public long size() {
        return (long) rows * cols;
    }

    /** The fp16 bits at (row, col). */
    public short get(int row, int col) {
        return data[row][col];
    }

    public void set(int row, int col, short half) {
        data[row][col] = half;
    }

    public float getFloat(int row, int col) {
        return Half.toFloat(data[row][col]);
    }

    /** The row's backing array (live: writes change the matrix). */
    public short[] row(int row) {
        return data[row];
    }

    /** The row widened to float. */
    public float[] rowAsFloats(int row) {
        short[] src = data[row];
        float[] out = new float[cols];
        for (int c = 0; c < cols; c++) {
            out[c] = Half.toFloat(src[c]);
        }
        return out;
    }

    public HalfMatrix transpose() {
        HalfMatrix t = new HalfMatrix(cols, rows);
        final int tile = 64;
        for (int r0 = 0; r0 < rows; r0 += tile) {
            int r1 = Math.min(rows, r0 + tile);
            for (int c0 = 0; c0 < cols; c0 += tile) {
                int c1 = Math.min(cols, c0 + tile);
                for (int r = r0; r < r1; r++) {
                    short[] src = data[r];
                    for (int c = c0; c < c1; c++) {
                        t.data[c][r] = src[c];
                    }
                }
            }
        }
        return t;
    }

    /** A copy whose row {@code i} is this matrix's row {@code order[i]}. */
    public HalfMatrix permuteRows(int[] order) {
        if (order.length != rows) {
            throw new IllegalArgumentException("row order of length " + order.length + " for " + rows + " rows");
        }
        HalfMatrix m = new HalfMatrix(rows, cols);
        for (int i = 0; i < rows; i++) {
            System.arraycopy(data[order[i]], 0, m.data[i], 0, cols);
        }
        return m;
    }

    /** A copy whose column {@code c} is this matrix's column {@code order[c]}. */
    public HalfMatrix permuteColumns(int[] order) {
        if (order.length != cols) {
            throw new IllegalArgumentException("column order of length " + order.length + " for " + cols + " columns");
        }
        HalfMatrix m = new HalfMatrix(rows, cols);
        for (int r = 0; r < rows; r++) {
            short[] src = data[r];
            short[] dst = m.data[r];
            for (int c = 0; c < cols; c++) {
                dst[c] = src[order[c]];
            }
        }
        return m;
    }

    /** A copy of the first {@code n} columns (drops ExLlamaV2's padding columns of a padded output). */
    public HalfMatrix leadingColumns(int n) {
        if (n < 0 || n > cols) {
            throw new IllegalArgumentException(n + " leading columns of a " + cols + "-column matrix");
        }
        HalfMatrix m = new HalfMatrix(rows, n);
        for (int r = 0; r < rows; r++) {
            System.arraycopy(data[r], 0, m.data[r], 0, n);
        }
        return m;
    }

    /** Flat row-major index of the first element whose bits differ, or -1 when both are bit-identical. */
    public long firstDifference(HalfMatrix other) {
        if (other.rows != rows || other.cols != cols) {
            throw new IllegalArgumentException("shape [" + rows + ", " + cols + "] vs [" + other.rows + ", "
                    + other.cols + "]");
        }
        for (int r = 0; r < rows; r++) {
            int c = Arrays.mismatch(data[r], other.data[r]);
            if (c >= 0) {
                return (long) r * cols + c;
            }
        }
        return -1;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof HalfMatrix m && m.rows == rows && m.cols == cols && firstDifference(m) < 0;
    }

    @Override
    public int hashCode() {
        return Arrays.deepHashCode(data);
    }

    @Override
    public String toString() {
        return "HalfMatrix[" + rows + ", " + cols + "]";
    }
}
