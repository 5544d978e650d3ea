package org.exl2spark.kernels;

import jcuda.driver.CUevent;
import jcuda.driver.JCudaDriver;

/** Device-side timing of work on the default stream with a pair of CUDA events. */
public final class GpuTimer implements AutoCloseable {
    private final GpuContext context;
    private final CUevent start = new CUevent();
    private final CUevent stop = new CUevent();

    public GpuTimer(GpuContext context) {
        this.context = context.makeCurrent();
        JCudaDriver.cuEventCreate(start, 0);
        JCudaDriver.cuEventCreate(stop, 0);
    }

    public GpuTimer start() {
        context.makeCurrent();
        JCudaDriver.cuEventRecord(start, null);
        return this;
    }

    /** Milliseconds of device time since {@link #start}; waits for the work in between. */
    public double stopMillis() {
        context.makeCurrent();
        JCudaDriver.cuEventRecord(stop, null);
        JCudaDriver.cuEventSynchronize(stop);
        float[] ms = {0};
        JCudaDriver.cuEventElapsedTime(ms, start, stop);
        return ms[0];
    }

    @Override
    public void close() {
        context.makeCurrent();
        JCudaDriver.cuEventDestroy(start);
        JCudaDriver.cuEventDestroy(stop);
    }
}
