package org.exl2spark.backend;

import org.exl2spark.kernels.DeviceBuffer;
import org.exl2spark.kernels.DeviceHalfMatrix;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.GpuContext;

/**
 * A tensor in GPU memory: one allocation of its {@link CudaBackend}'s device-memory pool, dense row-major fp32 (or
 * fp16, two bytes an element, for {@link Storage#FP16}),
 * 64-bit sizes (a tensor may exceed 2^31 elements). Closing frees the allocation; so does closing the backend, for
 * every tensor still live (a failed task leaks nothing). Kernels outside the backend reach the storage through
 * {@link #buffer()}, {@link #address()} or {@link #matrix()}.
 */
public final class DeviceTensor extends Tensor {
    private final CudaBackend backend;
    private final DeviceBuffer buffer;

    DeviceTensor(CudaBackend backend, DeviceBuffer buffer, long... shape) {
        this(backend, Storage.FP32, buffer, shape);
    }

    DeviceTensor(CudaBackend backend, Storage storage, DeviceBuffer buffer, long... shape) {
        super(storage, shape);
        if (buffer.bytes() < Math.multiplyExact(size(), elementBytes(storage))) {
            throw new IllegalArgumentException(buffer.what() + " (" + buffer.bytes() + " bytes) is too small for a "
                    + shapeString() + " " + storage + " tensor");
        }
        this.backend = backend;
        this.buffer = buffer;
    }

    /** The backend whose pool owns the storage. */
    public CudaBackend backend() {
        return backend;
    }

    public GpuContext context() {
        return backend.context();
    }

    /** Bytes of one element on the device. */
    static long elementBytes(Storage storage) {
        return storage == Storage.FP16 ? 2 : Float.BYTES;
    }

    /** The device allocation; it holds at least {@code size()} elements of its storage. */
    public DeviceBuffer buffer() {
        return buffer;
    }

    /** Device address of element 0, for kernel parameters. */
    public long address() {
        return buffer.address();
    }

    /** The fp32 tensor seen as a dense [rows, cols] matrix. */
    public DeviceMatrix matrix() {
        if (isHalf()) {
            throw new IllegalStateException(this + " is fp16: halfMatrix() views it");
        }
        return new DeviceMatrix(buffer, 0, rows(), cols(), Math.max(1, cols()));
    }

    /** The fp16 tensor seen as a dense [rows, cols] matrix. */
    public DeviceHalfMatrix halfMatrix() {
        if (!isHalf()) {
            throw new IllegalStateException(this + " is fp32: matrix() views it");
        }
        return new DeviceHalfMatrix(buffer, rows(), cols());
    }

    /** Frees the storage; closing twice, or after the backend closed, does nothing. */
    @Override
    public void close() {
        backend.free(this);
    }
}
