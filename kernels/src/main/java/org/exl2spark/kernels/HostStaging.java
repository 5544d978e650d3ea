package org.exl2spark.kernels;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.JCudaDriver;

/**
 * Page-locked host memory that large float copies between Java arrays and one device go through, a slab at a time:
 * the driver copies from pageable memory (a Java array) through its own small staging buffers, which measured slow
 * for the gigabyte-sized states of a 110B layer. One per {@link GpuContext}; copies through it take turns.
 */
final class HostStaging {
    /** The slab: big enough that each copy's fixed cost is small, small enough to pin without a second thought. */
    static final long BYTES = 32L << 20;
    /** Copies of fewer floats go directly (the slab's two extra passes only pay for themselves on large copies). */
    static final int MIN_FLOATS = 1 << 18;

    private final Pointer pinned;
    private final FloatBuffer floats;

    private HostStaging(Pointer pinned) {
        this.pinned = pinned;
        this.floats = pinned.getByteBuffer(0, BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    /** The slab, or null when the driver will not pin host memory (copies then go directly). */
    static HostStaging allocate(GpuContext context) {
        context.makeCurrent();
        Pointer p = new Pointer();
        try {
            JCudaDriver.cuMemAllocHost(p, BYTES);
        } catch (jcuda.CudaException e) {
            return null;
        }
        return new HostStaging(p);
    }

    /** {@code count} floats of {@code src} from {@code offset} to the device at {@code dst} (context current). */
    synchronized void toDevice(float[] src, int offset, int count, CUdeviceptr dst) {
        int slab = (int) (BYTES / Float.BYTES);
        for (int done = 0; done < count; done += slab) {
            int n = Math.min(slab, count - done);
            floats.clear();
            floats.put(src, offset + done, n);
            // from page-locked memory cuMemcpyHtoD returns when the copy is done, so the slab can be refilled
            JCudaDriver.cuMemcpyHtoD(dst.withByteOffset(4L * done), pinned, 4L * n);
        }
    }

    /** Bytes [0, count) of {@code source}, read into the slab, to the device at {@code dst} (context current). */
    synchronized void toDevice(DeviceBuffer.ByteSource source, long count, CUdeviceptr dst) throws IOException {
        ByteBuffer bytes = pinned.getByteBuffer(0, BYTES);
        for (long done = 0; done < count; done += BYTES) {
            long n = Math.min(BYTES, count - done);
            bytes.clear().limit((int) n);
            source.read(done, bytes);
            JCudaDriver.cuMemcpyHtoD(dst.withByteOffset(done), pinned, n);
        }
    }

    /** {@code count} floats from the device at {@code src} into {@code dst} from {@code offset} (context current). */
    synchronized void toHost(CUdeviceptr src, float[] dst, int offset, int count) {
        int slab = (int) (BYTES / Float.BYTES);
        for (int done = 0; done < count; done += slab) {
            int n = Math.min(slab, count - done);
            JCudaDriver.cuMemcpyDtoH(pinned, src.withByteOffset(4L * done), 4L * n);
            floats.clear();
            floats.get(dst, offset + done, n);
        }
    }
}
