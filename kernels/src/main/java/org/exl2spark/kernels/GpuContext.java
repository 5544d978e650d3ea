package org.exl2spark.kernels;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jcuda.CudaException;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

/**
 * One GPU as this JVM uses it: the device's primary context, retained on first use and kept for the JVM's life
 * (every task on the device shares it), and the kernel modules loaded into it. {@link #forDevice} makes the context
 * current on the calling thread; so does every operation here, so a context obtained on one thread can be used from
 * another (Spark runs tasks on pool threads).
 */
public final class GpuContext {
    private static final Map<Integer, GpuContext> CONTEXTS = new ConcurrentHashMap<>();

    private final DeviceInfo device;
    private final CUcontext context;
    private final Map<String, LoadedModule> modules = new ConcurrentHashMap<>();
    /** Dynamic shared-memory limit raised so far per kernel, beyond the default 48 KiB. */
    private final Map<KernelRef, Integer> sharedLimits = new ConcurrentHashMap<>();

    /** Pinned slab for large float copies; allocated on the first one (null inside: pinning refused). */
    private HostStaging staging;
    private boolean stagingTried;

    /** Dynamic shared memory a kernel gets without raising its limit. */
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    /** A loaded kernel family: which image the device took and its functions. */
    public record LoadedModule(String family, KernelImages.Choice image, CUmodule module,
            Map<String, CUfunction> functions) {
    }

    private GpuContext(DeviceInfo device, CUcontext context) {
        this.device = device;
        this.context = context;
    }

    /** The context of device {@code ordinal} (as CUDA numbers the visible devices), current on this thread. */
    public static GpuContext forDevice(int ordinal) {
        return CONTEXTS.computeIfAbsent(ordinal, GpuContext::open).makeCurrent();
    }

    /** For a Spark GPU resource address ("0", "1", ...): the device with that ordinal. */
    public static GpuContext forAddress(String address) {
        int ordinal;
        try {
            ordinal = Integer.parseInt(address.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("GPU address '" + address + "' is not a CUDA device ordinal", e);
        }
        return forDevice(ordinal);
    }

    private static GpuContext open(int ordinal) {
        CUdevice cuDevice = CudaDevices.device(ordinal);
        DeviceInfo info = CudaDevices.info(ordinal);
        CUcontext context = new CUcontext();
        JCudaDriver.cuDevicePrimaryCtxRetain(context, cuDevice);
        return new GpuContext(info, context);
    }

    public GpuContext makeCurrent() {
        JCudaDriver.cuCtxSetCurrent(context);
        return this;
    }

    public DeviceInfo device() {
        return device;
    }

    /** Waits for all work on the device; surfaces errors of kernels launched earlier. */
    public void synchronize() {
        makeCurrent();
        JCudaDriver.cuCtxSynchronize();
    }

    /** The pinned slab large copies go through, or null if the driver would not pin one. */
    synchronized HostStaging staging() {
        if (!stagingTried) {
            stagingTried = true;
            staging = HostStaging.allocate(this);
        }
        return staging;
    }

    /** {free, total} device memory in bytes. */
    public long[] memoryInfo() {
        makeCurrent();
        long[] free = {0};
        long[] total = {0};
        JCudaDriver.cuMemGetInfo(free, total);
        return new long[] {free[0], total[0]};
    }

    /** The kernel family's module, loaded from the image that fits this device on first use. */
    public LoadedModule module(String family) {
        return modules.computeIfAbsent(family, f -> {
            makeCurrent();
            KernelImages.KernelImage image = KernelImages.load(f, device.capability());
            CUmodule module = new CUmodule();
            try {
                JCudaDriver.cuModuleLoadData(module, image.data());
            } catch (CudaException e) {
                throw new IllegalStateException("loading kernel family '" + f + "' (" + image.choice() + ") on "
                        + device + " failed: " + e.getMessage(), e);
            }
            return new LoadedModule(f, image.choice(), module, new ConcurrentHashMap<>());
        });
    }

    public CUfunction function(String family, String name) {
        LoadedModule m = module(family);
        return m.functions().computeIfAbsent(name, n -> {
            CUfunction f = new CUfunction();
            try {
                JCudaDriver.cuModuleGetFunction(f, m.module(), n);
            } catch (CudaException e) {
                throw new IllegalStateException("kernel " + n + " not found in family '" + family + "' ("
                        + m.image() + "): " + e.getMessage(), e);
            }
            return f;
        });
    }

    /**
     * Launches a kernel on the default stream; a grid with no blocks is a no-op. Grids are 64-bit on the Java side
     * and checked against CUDA's limits here (x ≤ 2^31 − 1, y ≤ 65535) so an oversized problem fails by name.
     */
    public void launch(KernelRef kernel, long gridX, long gridY, int blockX, int blockY, int sharedBytes,
            KernelArgs args) {
        if (gridX == 0 || gridY == 0) {
            return;
        }
        if (gridX < 0 || gridX > Integer.MAX_VALUE || gridY < 0 || gridY > 65535) {
            throw new IllegalArgumentException(kernel + ": grid " + gridX + "×" + gridY
                    + " exceeds CUDA's limits (x ≤ 2^31 − 1, y ≤ 65535)");
        }
        makeCurrent();
        try {
            CUfunction function = function(kernel.family(), kernel.name());
            if (sharedBytes > DEFAULT_SHARED_LIMIT && sharedLimits.getOrDefault(kernel, 0) < sharedBytes) {
                // a block gets more than 48 KiB of dynamic shared memory only once its limit is raised
                JCudaDriver.cuFuncSetAttribute(function,
                        CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
                sharedLimits.merge(kernel, sharedBytes, Math::max);
            }
            JCudaDriver.cuLaunchKernel(function, (int) gridX, (int) gridY, 1, blockX, blockY, 1, sharedBytes, null,
                    args.pointer(), null);
        } catch (CudaException e) {
            throw new IllegalStateException(kernel + " launch (grid " + gridX + "×" + gridY + ", block " + blockX + "×"
                    + blockY + ") failed on " + device + ": " + e.getMessage(), e);
        }
    }

    /** A kernel by family (its .cu file) and function name. */
    public record KernelRef(String family, String name) {
        @Override
        public String toString() {
            return family + "." + name;
        }
    }
}
