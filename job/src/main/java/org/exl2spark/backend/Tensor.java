package org.exl2spark.backend;

import java.util.Arrays;

/**
 * A dense row-major tensor owned by a {@link Backend}, of fp32 elements unless made by {@link Backend#halfZeros}
 * ({@link Storage#FP16}). The shape is explicit; element counts and offsets are {@code long}. Where a tensor's
 * storage lives (a Java array, device memory) is the backend's business: code that only calls {@link Backend}
 * operations runs on any backend. Closing releases the storage (a no-op on the CPU).
 */
public abstract class Tensor implements AutoCloseable {
    /** How the elements are stored. */
    public enum Storage {
        /** fp32: every operation takes it. */
        FP32,
        /**
         * fp16 values (two bytes each on a device): only the operations {@link Backend#halfZeros} names take it. A
         * CPU tensor holds them in floats.
         */
        FP16
    }

    private final long[] shape;
    private final long size;
    private final Storage storage;

    protected Tensor(long... shape) {
        this(Storage.FP32, shape);
    }

    protected Tensor(Storage storage, long... shape) {
        this.shape = shape.clone();
        this.size = elementCount(this.shape);
        this.storage = storage;
    }

    public final Storage storage() {
        return storage;
    }

    public final boolean isHalf() {
        return storage == Storage.FP16;
    }

    /** The product of the dims; fails on a negative dim or a count that does not fit a {@code long}. */
    public static long elementCount(long... shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            try {
                n = Math.multiplyExact(n, d);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than 2^63 elements");
            }
        }
        return n;
    }

    public final long[] shape() {
        return shape.clone();
    }

    public final int rank() {
        return shape.length;
    }

    public final long dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public final long size() {
        return size;
    }

    /** Columns when the tensor is seen as a matrix: the last dim (1 for a scalar). */
    public final long cols() {
        return shape.length == 0 ? 1 : shape[shape.length - 1];
    }

    /** Rows when the tensor is seen as a matrix: the product of all dims but the last. */
    public final long rows() {
        long c = cols();
        return c == 0 ? 0 : size / c;
    }

    public final String shapeString() {
        return Arrays.toString(shape);
    }

    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + shapeString() + (isHalf() ? " fp16" : "");
    }
}
