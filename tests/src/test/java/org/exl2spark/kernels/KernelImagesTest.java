package org.exl2spark.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import org.exl2spark.kernels.KernelImages.Choice;
import org.exl2spark.kernels.KernelImages.Kind;
import org.junit.jupiter.api.Test;

class KernelImagesTest {
    private static final List<Integer> ALL = KernelImages.CUBIN_ARCHS;

    private static Optional<Choice> select(int major, int minor, List<Integer> cubins, boolean ptx) {
        return KernelImages.select(new ComputeCapability(major, minor), cubins, ptx);
    }

    @Test
    void eachDeviceTakesTheNewestCubinOfItsMajorVersionNotAboveItsMinor() {
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 90)), select(9, 0, ALL, true));
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 80)), select(8, 0, ALL, true));
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 86)), select(8, 6, ALL, true));
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 86)), select(8, 7, ALL, true)); // Orin runs sm_86 code
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 89)), select(8, 9, ALL, true));
        assertEquals(Optional.of(new Choice(Kind.CUBIN, 80)), select(8, 6, List.of(80, 90), true));
    }

    @Test
    void newerArchitecturesJitThePtx() {
        assertEquals(Optional.of(new Choice(Kind.PTX, 80)), select(10, 0, ALL, true));
        assertEquals(Optional.of(new Choice(Kind.PTX, 80)), select(12, 0, ALL, true));
        // an sm_80 cubin does not run on 9.0; the PTX does
        assertEquals(Optional.of(new Choice(Kind.PTX, 80)), select(9, 0, List.of(80, 86), true));
    }

    @Test
    void olderDevicesOrMissingImagesGetNothing() {
        assertEquals(Optional.empty(), select(7, 5, ALL, true));
        assertEquals(Optional.empty(), select(10, 0, ALL, false));
        assertEquals(Optional.empty(), select(9, 0, List.of(80), false));
    }

    @Test
    void resourceNamesMatchTheBuild() {
        assertEquals("/org/exl2spark/kernels/cuda/dense.sm_86.cubin", new Choice(Kind.CUBIN, 86).resourceName("dense"));
        assertEquals("/org/exl2spark/kernels/cuda/gptq.compute_80.ptx", new Choice(Kind.PTX, 80).resourceName("gptq"));
        assertEquals(86, ComputeCapability.ofArch(86).arch());
        assertTrue(new ComputeCapability(9, 0).compareTo(new ComputeCapability(8, 9)) > 0);
    }

    @Test
    void builtImagesAreCubinsAndNulTerminatedPtx() {
        // the kernels module compiles these with nvcc; a build without nvcc warns and ships none
        assumeTrue(KernelImagesTest.class.getResource("/org/exl2spark/kernels/cuda/dense.compute_80.ptx") != null,
                "kernel images not built (no nvcc on this machine)");
        for (String family : List.of(DenseKernels.FAMILY, CholeskyKernels.FAMILY, GptqKernels.FAMILY,
                ForwardKernels.FAMILY, TensorCoreGemm.FAMILY)) {
            KernelImages.KernelImage cubin = KernelImages.load(family, new ComputeCapability(9, 0));
            assertEquals(new Choice(Kind.CUBIN, 90), cubin.choice());
            assertArrayEquals(new byte[] {0x7f, 'E', 'L', 'F'}, Arrays.copyOf(cubin.data(), 4), family);
            KernelImages.KernelImage ptx = KernelImages.load(family, new ComputeCapability(12, 0));
            assertEquals(new Choice(Kind.PTX, 80), ptx.choice());
            assertEquals(0, ptx.data()[ptx.data().length - 1], "PTX handed to the driver must end in NUL");
            String text = new String(ptx.data(), 0, ptx.data().length - 1, StandardCharsets.US_ASCII);
            assertTrue(text.contains(".target sm_80"), family);
            assertTrue(text.indexOf('\0') < 0, family);
        }
    }

    @Test
    void unknownFamilyOrTooOldDeviceFailsWithAClearMessage() {
        IllegalStateException missing = assertThrows(IllegalStateException.class,
                () -> KernelImages.load("no-such-family", new ComputeCapability(9, 0)));
        assertTrue(missing.getMessage().contains("no-such-family"), missing.getMessage());
        assumeTrue(KernelImagesTest.class.getResource("/org/exl2spark/kernels/cuda/dense.compute_80.ptx") != null,
                "kernel images not built (no nvcc on this machine)");
        IllegalStateException old = assertThrows(IllegalStateException.class,
                () -> KernelImages.load("dense", new ComputeCapability(7, 5)));
        assertTrue(old.getMessage().contains("7.5") && old.getMessage().contains("8.0"), old.getMessage());
    }
}
