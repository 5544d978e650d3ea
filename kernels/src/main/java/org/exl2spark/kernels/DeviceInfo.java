package org.exl2spark.kernels;

/**
 * What we read off one CUDA device: identity, compute capability and the limits kernels and the memory planner
 * size themselves by.
 */
public record DeviceInfo(int ordinal, String name, ComputeCapability capability, long totalMemory,
        int multiprocessors, int maxSharedMemoryPerBlockOptin, int l2CacheBytes, String pciBusId) {

    @Override
    public String toString() {
        return "GPU " + ordinal + " " + name + " (compute " + capability + ", " + multiprocessors + " SMs, "
                + Bytes.format(totalMemory) + ", PCI " + pciBusId + ")";
    }
}
