package org.exl2spark.kernels;

/**
 * A dense row-major fp16 matrix at the start of a {@link DeviceBuffer}: element (r, c) is the two bytes at
 * {@code 2·(r·cols + c)}. The operands of tcgemm.cu's fp16-storage GEMM and the output of the conversions into fp16
 * storage. 64-bit like {@link DeviceMatrix}.
 */
public record DeviceHalfMatrix(DeviceBuffer buffer, long rows, long cols) {

    public DeviceHalfMatrix {
        if (rows < 0 || cols < 0) {
            throw new IllegalArgumentException(buffer.what() + ": bad fp16 matrix " + rows + "×" + cols);
        }
        long bytes = Math.multiplyExact(2L, Math.multiplyExact(rows, cols));
        if (bytes > buffer.bytes()) {
            throw new IndexOutOfBoundsException(buffer.what() + ": fp16 matrix " + rows + "×" + cols + " needs " + bytes
                    + " bytes, the buffer has " + buffer.bytes());
        }
    }

    public long elements() {
        return rows * cols;
    }

    /** Row stride in elements. */
    public long ld() {
        return Math.max(1, cols);
    }

    public long address() {
        return buffer.address();
    }

    /** Whether rows start on 16-byte boundaries (8 halves), so kernels may copy 16 bytes at a time. */
    public boolean vectorAligned() {
        return address() % 16 == 0 && ld() % 8 == 0;
    }
}
