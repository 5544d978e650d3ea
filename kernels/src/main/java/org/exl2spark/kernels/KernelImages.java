package org.exl2spark.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.Optional;

/**
 * The compiled kernel images on the classpath and which one a device loads. The kernels build
 * (kernels/pom.xml) compiles each {@code src/main/cuda/<family>.cu} into machine code for every architecture in
 * {@link #CUBIN_ARCHS} ({@code <family>.sm_XY.cubin}) and into PTX for {@link #PTX_ARCH}
 * ({@code <family>.compute_80.ptx}). A device runs a cubin built for its own major version and a minor version at
 * most its own (sm_80 code runs on 8.6); otherwise the driver JIT-compiles the PTX, which works on any newer device.
 */
public final class KernelImages {
    /** Architectures with machine code in the jar; must match kernels/pom.xml. */
    public static final List<Integer> CUBIN_ARCHS = List.of(80, 86, 89, 90);
    /** The PTX's virtual architecture: the oldest device our kernels support. */
    public static final int PTX_ARCH = 80;
    static final String RESOURCE_DIR = "/org/exl2spark/kernels/cuda/";

    private KernelImages() {
    }

    public enum Kind {
        CUBIN, PTX
    }

    /** One image of a kernel family: machine code for {@code sm_<arch>} or PTX for {@code compute_<arch>}. */
    public record Choice(Kind kind, int arch) {
        public String resourceName(String family) {
            return RESOURCE_DIR + family + (kind == Kind.CUBIN ? ".sm_" + arch + ".cubin" : ".compute_" + arch + ".ptx");
        }

        @Override
        public String toString() {
            return kind == Kind.CUBIN ? "cubin sm_" + arch : "PTX compute_" + arch + " (JIT)";
        }
    }

    /** An image ready for {@code cuModuleLoadData}: PTX text is NUL-terminated, as the driver requires. */
    public record KernelImage(String family, Choice choice, byte[] data) {
    }

    /**
     * The image a device of capability {@code device} should load, given the cubin architectures present and
     * whether the PTX is: the newest compatible cubin, else the PTX if the device is new enough, else none.
     */
    public static Optional<Choice> select(ComputeCapability device, Collection<Integer> cubinArchs, boolean ptxPresent) {
        int best = -1;
        for (int arch : cubinArchs) {
            ComputeCapability built = ComputeCapability.ofArch(arch);
            if (built.major() == device.major() && built.minor() <= device.minor() && arch > best) {
                best = arch;
            }
        }
        if (best >= 0) {
            return Optional.of(new Choice(Kind.CUBIN, best));
        }
        if (ptxPresent && device.arch() >= PTX_ARCH) {
            return Optional.of(new Choice(Kind.PTX, PTX_ARCH));
        }
        return Optional.empty();
    }

    /** Loads the image of {@code family} for a device of capability {@code device} from the classpath. */
    public static KernelImage load(String family, ComputeCapability device) {
        List<Integer> present = new ArrayList<>();
        for (int arch : CUBIN_ARCHS) {
            if (exists(new Choice(Kind.CUBIN, arch).resourceName(family))) {
                present.add(arch);
            }
        }
        boolean ptx = exists(new Choice(Kind.PTX, PTX_ARCH).resourceName(family));
        if (present.isEmpty() && !ptx) {
            throw new IllegalStateException("CUDA kernel images of family '" + family + "' are missing from the"
                    + " classpath (expected under " + RESOURCE_DIR + "): the kernels jar was built without nvcc");
        }
        Choice choice = select(device, present, ptx).orElseThrow(() -> new IllegalStateException(
                "no kernel image of family '" + family + "' runs on compute capability " + device + ": the jar has"
                        + " cubins for sm_" + present + (ptx ? " and PTX for compute_" + PTX_ARCH : "")
                        + "; devices older than " + ComputeCapability.ofArch(PTX_ARCH) + " are not supported"));
        return load(family, choice);
    }

    /** Loads one particular image of {@code family}, e.g. to check that the PTX JIT path works on a device. */
    public static KernelImage load(String family, Choice choice) {
        byte[] bytes = read(choice.resourceName(family));
        if (choice.kind() == Kind.PTX) {
            bytes = Arrays.copyOf(bytes, bytes.length + 1);
        }
        return new KernelImage(family, choice, bytes);
    }

    private static boolean exists(String resource) {
        return KernelImages.class.getResource(resource) != null;
    }

    private static byte[] read(String resource) {
        try (InputStream in = KernelImages.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("kernel image " + resource + " vanished from the classpath");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read kernel image " + resource, e);
        }
    }
}
