package org.exl2spark.backend;

/**
 * A tensor held in one Java {@code float[]}: the CPU backend's tensor. A Java array holds at most
 * {@link #MAX_ELEMENTS} elements, so a bigger shape fails here, at allocation, with its shape in the message, instead
 * of overflowing an index later. Tensors beyond that (a 49152² Hessian) need an off-heap or device backend.
 */
public final class HostTensor extends Tensor {
    /** The largest array the JVM allocates reliably. */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    private final float[] data;

    HostTensor(float[] data, long... shape) {
        this(Storage.FP32, data, shape);
    }

    /** With {@link Storage#FP16} the floats hold fp16 values: the operations that write such a tensor round to them. */
    HostTensor(Storage storage, float[] data, long... shape) {
        super(storage, shape);
        if (size() != data.length) {
            throw new IllegalArgumentException("shape " + shapeString() + " has " + size() + " elements but the array has "
                    + data.length);
        }
        this.data = data;
    }

    static HostTensor zeros(long... shape) {
        return new HostTensor(new float[checkedLength(shape)], shape);
    }

    static int checkedLength(long... shape) {
        long n = elementCount(shape);
        if (n > MAX_ELEMENTS) {
            throw new IllegalArgumentException("tensor of shape " + java.util.Arrays.toString(shape) + " has " + n
                    + " elements; the CPU backend keeps a tensor in one Java array, at most " + MAX_ELEMENTS);
        }
        return (int) n;
    }

    /** The backing array, row-major; shared, not copied. */
    public float[] data() {
        return data;
    }

    /** Offset of row {@code row} when this tensor is seen as a [rows, cols] matrix. */
    int rowOffset(long row) {
        return Math.toIntExact(row * cols());
    }
}
