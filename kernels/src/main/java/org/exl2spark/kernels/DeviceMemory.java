package org.exl2spark.kernels;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUpointer_attribute;
import jcuda.driver.JCudaDriver;

/**
 * A task's device memory: every allocation is counted against a byte budget (see {@link MemoryBudget}), the peak is
 * tracked, and {@link #close} frees whatever is still allocated, also after a failure half-way through a task.
 */
public final class DeviceMemory implements AutoCloseable {
    /** Left free by {@link #defaultBudget}: the driver, cuda modules and other processes need some. */
    public static final long DEFAULT_RESERVE = 1L << 30;

    private final GpuContext context;
    private final MemoryBudget budget;
    private final Set<DeviceBuffer> live = Collections.newSetFromMap(new IdentityHashMap<>());
    private boolean closed;

    public DeviceMemory(GpuContext context, long budgetBytes) {
        this.context = context;
        this.budget = new MemoryBudget("GPU " + context.device().ordinal() + " memory pool", budgetBytes);
    }

    /** The device's free memory now, less {@link #DEFAULT_RESERVE}. */
    public static long defaultBudget(GpuContext context) {
        return Math.max(0, context.memoryInfo()[0] - DEFAULT_RESERVE);
    }

    public GpuContext context() {
        return context;
    }

    /** Allocates {@code bytes} for {@code what} (a name for messages, e.g. "H 4096×4096 fp32"). */
    public synchronized DeviceBuffer allocate(String what, long bytes) {
        if (closed) {
            throw new IllegalStateException(budget.owner() + " is closed; cannot allocate " + what);
        }
        MemoryBudget.Allocation reservation = budget.reserve(what, bytes);
        CUdeviceptr ptr = new CUdeviceptr();
        try {
            context.makeCurrent();
            JCudaDriver.cuMemAlloc(ptr, bytes);
        } catch (CudaException e) {
            budget.release(reservation);
            long[] info = context.memoryInfo();
            throw new DeviceMemoryException("cannot allocate " + what + " on " + context.device() + ": needs "
                    + Bytes.format(bytes) + ", the device has " + Bytes.format(info[0]) + " free ("
                    + e.getMessage() + "); this pool holds " + Bytes.format(budget.inUse()), what, bytes);
        }
        long[] address = {0};
        try {
            JCudaDriver.cuPointerGetAttribute(Pointer.to(address),
                    CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_POINTER, ptr);
        } catch (CudaException e) {
            JCudaDriver.cuMemFree(ptr);
            budget.release(reservation);
            throw e;
        }
        DeviceBuffer b = new DeviceBuffer(this, what, bytes, ptr, address[0], reservation);
        live.add(b);
        return b;
    }

    public DeviceBuffer allocateFloats(String what, long count) {
        return allocate(what, Math.multiplyExact(count, (long) Float.BYTES));
    }

    /** A dense rows×cols fp32 matrix of its own. */
    public DeviceMatrix matrix(String what, long rows, long cols) {
        return DeviceMatrix.of(allocateFloats(what + " " + rows + "×" + cols + " fp32", Math.multiplyExact(rows, cols)),
                rows, cols);
    }

    public synchronized void free(DeviceBuffer b) {
        if (b.owner() != this) {
            throw new IllegalArgumentException(b.what() + " belongs to another pool");
        }
        if (!live.remove(b)) {
            throw new IllegalStateException(b.what() + " freed twice");
        }
        b.markFreed();
        budget.release(b.reservation());
        context.makeCurrent();
        JCudaDriver.cuMemFree(b.pointer());
    }

    public long inUse() {
        return budget.inUse();
    }

    public long peak() {
        return budget.peak();
    }

    public long budget() {
        return budget.budget();
    }

    public synchronized int liveCount() {
        return live.size();
    }

    /** Frees every live allocation; the first failure is rethrown after all were tried. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        for (DeviceBuffer b : new ArrayList<>(live)) {
            try {
                free(b);
            } catch (RuntimeException e) {
                live.remove(b);
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }
}
