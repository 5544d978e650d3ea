package org.exl2spark.backend;

import org.exl2spark.kernels.DeviceBuffer;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.GpuContext;

/**
 * A tensor in GPU memory: one allocation of its {@link CudaBackend}'s device-memory pool, dense row-major fp32,
 * 64-bit sizes (a tensor may exceed 2^31 elements). Closing frees the allocation; so does closing the backend, for
 * every tensor still live (a failed task leaks nothing). Kernels outside the backend reach the storage through
 * {@link #buffer()}, {@link #address()} or {@link #matrix()}.
 */
public final class DeviceTensor extends Tensor {
    private final CudaBackend backend;
    private final DeviceBuffer buffer;

    DeviceTensor(CudaBackend backend, DeviceBuffer buffer, long... shape) {
        super(shape);
        if (buffer.bytes() < Math.multiplyExact(size(), (long) Float.BYTES)) {
            throw new IllegalArgumentException(buffer.what() + " (" + buffer.bytes() + " bytes) is too small for a "
                    + shapeString() + " fp32 tensor");
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

    /** The device allocation; it holds at least {@code 4·size()} bytes. */
    public DeviceBuffer buffer() {
        return buffer;
    }

    /** Device address of element 0, for kernel parameters. */
    public long address() {
        return buffer.address();
    }

    /** The tensor seen as a dense [rows, cols] matrix. */
    public DeviceMatrix matrix() {
        return new DeviceMatrix(buffer, 0, rows(), cols(), Math.max(1, cols()));
    }

    /** Frees the storage; closing twice, or after the backend closed, does nothing. */
    @Override
    public void close() {
        backend.free(this);
    }
}
