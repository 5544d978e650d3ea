package org.exl2spark.io;

/** A tensor to be written: name, element type and shape. */
public record TensorSpec(String name, DType dtype, long[] shape) {

    public TensorSpec {
        shape = shape.clone();
        if (TensorInfo.elementCount(shape) < 0) {
            throw new IllegalArgumentException("tensor '" + name + "': shape has too many elements");
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long numElements() {
        return TensorInfo.elementCount(shape);
    }

    public long byteSize() {
        return Math.multiplyExact(numElements(), (long) dtype.bytes());
    }
}
