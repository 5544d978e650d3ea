package org.exl2spark.kernels;

/** A CUDA device's compute capability, e.g. 9.0 for Hopper; ordered by (major, minor). */
public record ComputeCapability(int major, int minor) implements Comparable<ComputeCapability> {

    public ComputeCapability {
        if (major < 1 || minor < 0 || minor > 9) {
            throw new IllegalArgumentException("not a compute capability: " + major + "." + minor);
        }
    }

    /** From nvcc's architecture number: 86 → 8.6. */
    public static ComputeCapability ofArch(int arch) {
        return new ComputeCapability(arch / 10, arch % 10);
    }

    /** nvcc's architecture number: 8.6 → 86. */
    public int arch() {
        return major * 10 + minor;
    }

    @Override
    public int compareTo(ComputeCapability o) {
        return Integer.compare(arch(), o.arch());
    }

    @Override
    public String toString() {
        return major + "." + minor;
    }
}
