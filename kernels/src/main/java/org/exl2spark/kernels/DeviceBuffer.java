package org.exl2spark.kernels;

import java.io.IOException;
import java.nio.ByteBuffer;
import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUDA_MEMCPY2D;
import jcuda.driver.CUmemorytype;
import jcuda.driver.JCudaDriver;

/**
 * One device allocation of a {@link DeviceMemory} pool. Offsets and sizes are bytes or elements as named, always
 * 64-bit and bounds-checked; host arrays are addressed by int offsets (Java's own limit), device memory by long.
 */
public final class DeviceBuffer {
    private final DeviceMemory owner;
    private final String what;
    private final long bytes;
    private final CUdeviceptr pointer;
    private final long address;
    private final MemoryBudget.Allocation reservation;
    private volatile boolean freed;

    DeviceBuffer(DeviceMemory owner, String what, long bytes, CUdeviceptr pointer, long address,
            MemoryBudget.Allocation reservation) {
        this.owner = owner;
        this.what = what;
        this.bytes = bytes;
        this.pointer = pointer;
        this.address = address;
        this.reservation = reservation;
    }

    public String what() {
        return what;
    }

    public long bytes() {
        return bytes;
    }

    /** The device address of byte {@code byteOffset} (0 … bytes) for kernel parameters. */
    public long address(long byteOffset) {
        checkLive();
        if (byteOffset < 0 || byteOffset > bytes) {
            throw new IndexOutOfBoundsException(what + ": byte offset " + byteOffset + " outside 0…" + bytes);
        }
        return address + byteOffset;
    }

    public long address() {
        return address(0);
    }

    /** Large copies go through the context's pinned slab ({@link HostStaging}). */
    public void copyFromHost(float[] src, int srcOffset, int count, long dstElement) {
        checkHost(src.length, srcOffset, count);
        HostStaging slab = slabFor(count, 4L * dstElement);
        if (slab != null) {
            slab.toDevice(src, srcOffset, count, pointer.withByteOffset(4L * dstElement));
        } else {
            toDevice(Pointer.to(src).withByteOffset(4L * srcOffset), 4L * count, 4L * dstElement);
        }
    }

    /**
     * The context's pinned slab for a copy of {@code count} floats at device byte {@code byteOffset} (range checked,
     * context current), or null for a copy small enough to go directly or a context without a slab.
     */
    private HostStaging slabFor(int count, long byteOffset) {
        if (count < HostStaging.MIN_FLOATS) {
            return null;
        }
        checkRange(byteOffset, 4L * count);
        HostStaging slab = owner.context().staging();
        owner.context().makeCurrent();
        return slab;
    }

    public void copyFromHost(int[] src, int srcOffset, int count, long dstElement) {
        toDevice(Pointer.to(src).withByteOffset(4L * checkHost(src.length, srcOffset, count)), 4L * count,
                4L * dstElement);
    }

    /** Large copies go through the context's pinned slab ({@link HostStaging}). */
    public void copyToHost(long srcElement, float[] dst, int dstOffset, int count) {
        checkHost(dst.length, dstOffset, count);
        HostStaging slab = slabFor(count, 4L * srcElement);
        if (slab != null) {
            slab.toHost(pointer.withByteOffset(4L * srcElement), dst, dstOffset, count);
        } else {
            toHost(Pointer.to(dst).withByteOffset(4L * dstOffset), 4L * srcElement, 4L * count);
        }
    }

    public void copyFromHost(byte[] src, int srcOffset, int count, long dstByte) {
        toDevice(Pointer.to(src).withByteOffset(checkHost(src.length, srcOffset, count)), count, dstByte);
    }

    public void copyToHost(long srcByte, byte[] dst, int dstOffset, int count) {
        toHost(Pointer.to(dst).withByteOffset(checkHost(dst.length, dstOffset, count)), srcByte, count);
    }

    /**
     * Copies {@code count} floats that lie {@code strideElements} apart, starting at float {@code srcElement}, into
     * {@code dst} in one 2-D copy (e.g. a matrix diagonal: stride ld + 1).
     */
    public void copyStridedToHost(long srcElement, long strideElements, float[] dst, int count) {
        if (count == 0) {
            return;
        }
        checkRange(4L * srcElement, 4L * ((count - 1) * strideElements + 1));
        checkHost(dst.length, 0, count);
        CUDA_MEMCPY2D copy = new CUDA_MEMCPY2D();
        copy.srcMemoryType = CUmemorytype.CU_MEMORYTYPE_DEVICE;
        copy.srcDevice = pointer.withByteOffset(4L * srcElement);
        copy.srcPitch = 4L * strideElements;
        copy.dstMemoryType = CUmemorytype.CU_MEMORYTYPE_HOST;
        copy.dstHost = Pointer.to(dst);
        copy.dstPitch = 4;
        copy.WidthInBytes = 4;
        copy.Height = count;
        owner.context().makeCurrent();
        JCudaDriver.cuMemcpy2D(copy);
    }

    /** Writes {@code src}'s floats {@code strideElements} apart from float {@code dstElement} on, in one 2-D copy. */
    public void copyStridedFromHost(float[] src, long dstElement, long strideElements) {
        if (src.length == 0) {
            return;
        }
        checkRange(4L * dstElement, 4L * ((src.length - 1) * strideElements + 1));
        CUDA_MEMCPY2D copy = new CUDA_MEMCPY2D();
        copy.srcMemoryType = CUmemorytype.CU_MEMORYTYPE_HOST;
        copy.srcHost = Pointer.to(src);
        copy.srcPitch = 4;
        copy.dstMemoryType = CUmemorytype.CU_MEMORYTYPE_DEVICE;
        copy.dstDevice = pointer.withByteOffset(4L * dstElement);
        copy.dstPitch = 4L * strideElements;
        copy.WidthInBytes = 4;
        copy.Height = src.length;
        owner.context().makeCurrent();
        JCudaDriver.cuMemcpy2D(copy);
    }

    public void copyToHost(long srcElement, double[] dst, int dstOffset, int count) {
        toHost(Pointer.to(dst).withByteOffset(8L * checkHost(dst.length, dstOffset, count)), 8L * srcElement,
                8L * count);
    }

    public void copyToHost(long srcElement, int[] dst, int dstOffset, int count) {
        toHost(Pointer.to(dst).withByteOffset(4L * checkHost(dst.length, dstOffset, count)), 4L * srcElement,
                4L * count);
    }

    public void copyToHost(long srcElement, short[] dst, int dstOffset, int count) {
        toHost(Pointer.to(dst).withByteOffset(2L * checkHost(dst.length, dstOffset, count)), 2L * srcElement,
                2L * count);
    }

    public void copyToHost(long srcElement, long[] dst, int dstOffset, int count) {
        toHost(Pointer.to(dst).withByteOffset(8L * checkHost(dst.length, dstOffset, count)), 8L * srcElement,
                8L * count);
    }

    /** Copies a direct (off-heap) buffer's remaining bytes to device byte {@code dstByte}. */
    public void copyFromHost(ByteBuffer direct, long dstByte) {
        if (!direct.isDirect()) {
            throw new IllegalArgumentException("copyFromHost(ByteBuffer) needs a direct buffer");
        }
        toDevice(Pointer.to(direct.slice()), direct.remaining(), dstByte);
    }

    /** Bytes from outside the JVM's heap, e.g. a file: fills {@code dst}'s remaining bytes with those from {@code offset} on. */
    @FunctionalInterface
    public interface ByteSource {
        void read(long offset, ByteBuffer dst) throws IOException;
    }

    /**
     * Bytes [0, count) of {@code source} to device byte {@code dstByte}, read straight into the context's pinned slab
     * ({@link HostStaging}) a slab at a time, or through a direct buffer of that size when the context has none.
     */
    public void copyFromSource(ByteSource source, long count, long dstByte) throws IOException {
        checkRange(dstByte, count);
        HostStaging slab = owner.context().staging();
        owner.context().makeCurrent();
        if (slab != null) {
            slab.toDevice(source, count, pointer.withByteOffset(dstByte));
            return;
        }
        ByteBuffer direct = ByteBuffer.allocateDirect((int) Math.min(count, HostStaging.BYTES));
        for (long done = 0; done < count; ) {
            int n = (int) Math.min(count - done, direct.capacity());
            direct.clear().limit(n);
            source.read(done, direct);
            direct.flip();
            copyFromHost(direct, dstByte + done);
            done += n;
        }
    }

    /** Copies {@code count} bytes from another device buffer. */
    public void copyFromDevice(DeviceBuffer src, long srcByte, long dstByte, long count) {
        src.checkRange(srcByte, count);
        checkRange(dstByte, count);
        owner.context().makeCurrent();
        JCudaDriver.cuMemcpyDtoD(pointer.withByteOffset(dstByte), src.pointer.withByteOffset(srcByte), count);
    }

    /** Sets {@code words} 32-bit words starting at word {@code firstWord} to {@code bits}. */
    public void fill32(long firstWord, long words, int bits) {
        checkRange(4L * firstWord, 4L * words);
        owner.context().makeCurrent();
        JCudaDriver.cuMemsetD32(pointer.withByteOffset(4L * firstWord), bits, words);
    }

    public void zero() {
        checkLive();
        owner.context().makeCurrent();
        JCudaDriver.cuMemsetD8(pointer, (byte) 0, bytes);
    }

    private void toDevice(Pointer host, long count, long dstByte) {
        checkRange(dstByte, count);
        owner.context().makeCurrent();
        JCudaDriver.cuMemcpyHtoD(pointer.withByteOffset(dstByte), host, count);
    }

    private void toHost(Pointer host, long srcByte, long count) {
        checkRange(srcByte, count);
        owner.context().makeCurrent();
        JCudaDriver.cuMemcpyDtoH(host, pointer.withByteOffset(srcByte), count);
    }

    private static int checkHost(int length, int offset, int count) {
        if (offset < 0 || count < 0 || offset > length - count) {
            throw new IndexOutOfBoundsException("host range " + offset + "+" + count + " outside array of " + length);
        }
        return offset;
    }

    void checkRange(long byteOffset, long count) {
        checkLive();
        if (byteOffset < 0 || count < 0 || byteOffset > bytes - count) {
            throw new IndexOutOfBoundsException(what + ": bytes " + byteOffset + "+" + count + " outside 0…" + bytes);
        }
    }

    /** Whether this buffer was freed (by its owner's {@link DeviceMemory#free} or the pool's close). */
    public boolean freed() {
        return freed;
    }

    private void checkLive() {
        if (freed) {
            throw new IllegalStateException(what + " was already freed");
        }
    }

    DeviceMemory owner() {
        return owner;
    }

    CUdeviceptr pointer() {
        return pointer;
    }

    MemoryBudget.Allocation reservation() {
        return reservation;
    }

    void markFreed() {
        freed = true;
    }

    @Override
    public String toString() {
        return what + " (" + Bytes.format(bytes) + (freed ? ", freed" : "") + ")";
    }
}
