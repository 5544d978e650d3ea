package org.exl2spark.kernels;

/**
 * A row-major fp32 matrix view into a {@link DeviceBuffer}: element (r, c) is float {@code offset + r·ld + c} of the
 * buffer. All of it is 64-bit, so views of matrices over 2^31 elements (a 49152² Hessian) are ordinary.
 */
public record DeviceMatrix(DeviceBuffer buffer, long offset, long rows, long cols, long ld) {

    public DeviceMatrix {
        if (rows < 0 || cols < 0 || offset < 0 || ld < Math.max(1, cols)) {
            throw new IllegalArgumentException(buffer.what() + ": bad matrix view " + rows + "×" + cols + " at "
                    + offset + " with row stride " + ld);
        }
        long capacity = buffer.bytes() / Float.BYTES;
        long end = rows == 0 || cols == 0 ? offset
                : Math.addExact(offset, Math.addExact(Math.multiplyExact(rows - 1, ld), cols));
        if (end > capacity) {
            throw new IndexOutOfBoundsException(buffer.what() + ": matrix view " + rows + "×" + cols + " at " + offset
                    + " (row stride " + ld + ") ends at float " + end + ", past the buffer's " + capacity);
        }
    }

    /** The whole buffer's start as a dense rows×cols matrix. */
    public static DeviceMatrix of(DeviceBuffer buffer, long rows, long cols) {
        return new DeviceMatrix(buffer, 0, rows, cols, Math.max(1, cols));
    }

    /** The rows×cols block whose top-left element is (r0, c0). */
    public DeviceMatrix block(long r0, long c0, long blockRows, long blockCols) {
        if (r0 < 0 || c0 < 0 || blockRows < 0 || blockCols < 0 || r0 + blockRows > rows || c0 + blockCols > cols) {
            throw new IndexOutOfBoundsException(buffer.what() + ": block " + blockRows + "×" + blockCols + " at ("
                    + r0 + ", " + c0 + ") outside " + rows + "×" + cols);
        }
        return new DeviceMatrix(buffer, offset + r0 * ld + c0, blockRows, blockCols, ld);
    }

    public long elements() {
        return rows * cols;
    }

    /** Device address of element (0, 0). */
    public long address() {
        return buffer.address(offset * Float.BYTES);
    }

    /** Whether rows start on 16-byte boundaries, so kernels may use 16-byte loads and stores. */
    public boolean vectorAligned() {
        return address() % 16 == 0 && ld % 4 == 0;
    }

    public boolean contiguous() {
        return ld == cols || rows <= 1;
    }

    /** Writes {@code rowCount} rows from a row-major host array (its rows {@code cols} apart) starting at row r0. */
    public void upload(long r0, long rowCount, float[] src, int srcOffset) {
        checkRows(r0, rowCount);
        if (contiguous() || rowCount == 1) {
            buffer.copyFromHost(src, srcOffset, Math.toIntExact(rowCount * cols), offset + r0 * ld);
        } else {
            for (long r = 0; r < rowCount; r++) {
                buffer.copyFromHost(src, Math.toIntExact(srcOffset + r * cols), (int) cols, offset + (r0 + r) * ld);
            }
        }
    }

    public void upload(float[] src) {
        upload(0, rows, src, 0);
    }

    /** Reads {@code rowCount} rows starting at row r0 into a row-major host array. */
    public void download(long r0, long rowCount, float[] dst, int dstOffset) {
        checkRows(r0, rowCount);
        if (contiguous() || rowCount == 1) {
            buffer.copyToHost(offset + r0 * ld, dst, dstOffset, Math.toIntExact(rowCount * cols));
        } else {
            for (long r = 0; r < rowCount; r++) {
                buffer.copyToHost(offset + (r0 + r) * ld, dst, Math.toIntExact(dstOffset + r * cols), (int) cols);
            }
        }
    }

    public float[] download() {
        float[] out = new float[Math.toIntExact(elements())];
        download(0, rows, out, 0);
        return out;
    }

    private void checkRows(long r0, long rowCount) {
        if (r0 < 0 || rowCount < 0 || r0 + rowCount > rows) {
            throw new IndexOutOfBoundsException(buffer.what() + ": rows " + r0 + "+" + rowCount + " outside " + rows);
        }
    }
}
