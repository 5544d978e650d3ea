package org.exl2spark.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/** The choice of OpenBLAS kernels for AMD's AVX-512 processors. */
class BlasLibraryTest {
    private static final String AVX512 = "avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16";

    private static String cpuinfo(String vendor, String flags) {
        String one = "processor\t: %d\nvendor_id\t: " + vendor + "\ncpu family\t: 26\nmodel name\t: AMD EPYC\n"
                + "flags\t\t: fpu vme sse sse2 avx avx2 fma " + flags + "\n\n";
        return String.format(one, 0) + String.format(one, 1);
    }

    @Test
    void amdWithAvx512GetsTheSkylakeXKernels() {
        assertEquals("SkylakeX", BlasLibrary.coreTypeFor(cpuinfo("AuthenticAMD", AVX512)));
    }

    @Test
    void otherProcessorsAreLeftToOpenBlas() {
        // Intel's AVX-512 processors OpenBLAS recognises itself
        assertNull(BlasLibrary.coreTypeFor(cpuinfo("GenuineIntel", AVX512)));
        // AVX2 only, or an AVX-512 subset the SkylakeX kernels use missing: they would fault
        assertNull(BlasLibrary.coreTypeFor(cpuinfo("AuthenticAMD", "")));
        assertNull(BlasLibrary.coreTypeFor(cpuinfo("AuthenticAMD", AVX512.replace("avx512bw ", ""))));
        assertNull(BlasLibrary.coreTypeFor(""));
    }

    @Test
    void thisMachinesOpenBlasRunsTheChosenKernels() throws Exception {
        Path cpuinfo = Path.of("/proc/cpuinfo");
        assumeTrue(Files.isReadable(cpuinfo) && BlasLibrary.NATIVE && BlasLibrary.CONFIG.startsWith("OpenBLAS"),
                "needs Linux and the native OpenBLAS");
        String chosen = BlasLibrary.coreTypeFor(Files.readString(cpuinfo));
        String given = System.getenv(BlasLibrary.CORE_TYPE_VARIABLE);
        assumeTrue(chosen != null || given != null, "OpenBLAS picks its kernels itself on this processor");
        // openblas_get_config names the core it runs, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX ..."
        String expected = given != null ? given : chosen;
        assumeTrue(BlasLibrary.CONFIG.contains("DYNAMIC_ARCH"), "an OpenBLAS built for one core ignores the variable");
        assertTrue(BlasLibrary.CONFIG.toLowerCase(Locale.ROOT).contains(expected.toLowerCase(Locale.ROOT)),
                BlasLibrary.CONFIG);
    }
}
