package org.exl2spark.backend;

import com.sun.jna.Function;
import com.sun.jna.NativeLibrary;
import dev.ludovic.netlib.blas.BLAS;
import dev.ludovic.netlib.blas.NativeBLAS;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The BLAS netlib loaded, set up for a caller that does its own threading. {@link CpuBackend} splits every product
 * over its own thread pool, so OpenBLAS must run each call on the calling thread: its own worker threads would
 * otherwise compete with the pool for the same cores and busy-wait between calls. The thread count is set through
 * OpenBLAS's C API ({@code openblas_set_num_threads}) on the same {@code libblas.so.3} netlib's JNI bridge opened.
 */
final class BlasLibrary {
    private static final Logger LOG = LoggerFactory.getLogger(BlasLibrary.class);
    /** The shared library netlib's JNI bridge dlopen()s. */
    private static final String NATIVE_NAME = "libblas.so.3";
    static final String CORE_TYPE_VARIABLE = "OPENBLAS_CORETYPE";
    /** What OpenBLAS's SkylakeX kernels need; declared before LIB, whose loading reads it. */
    private static final List<String> AVX512_FLAGS = List.of("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl");

    static final BLAS LIB = load();
    static final boolean NATIVE = LIB instanceof NativeBLAS;
    /** e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64", or why it is unknown. */
    static final String CONFIG;
    /** Whether each BLAS call is known to stay on its calling thread. */
    static final boolean SINGLE_THREADED;

    static {
        String config = NATIVE ? "native, not OpenBLAS" : "pure Java";
        boolean single = !NATIVE;
        if (NATIVE) {
            try {
                NativeLibrary lib = NativeLibrary.getInstance(NATIVE_NAME);
                Function setThreads = lib.getFunction("openblas_set_num_threads");
                setThreads.invokeVoid(new Object[] {1});
                config = lib.getFunction("openblas_get_config").invokeString(new Object[0], false);
                single = lib.getFunction("openblas_get_num_threads").invokeInt(new Object[0]) == 1;
            } catch (UnsatisfiedLinkError | RuntimeException e) {
                LOG.warn("{} is not OpenBLAS or its thread count cannot be set ({}); BLAS calls may start threads of"
                        + " their own and oversubscribe the cores", NATIVE_NAME, e.toString());
            }
        }
        CONFIG = config;
        SINGLE_THREADED = single;
        LOG.info("BLAS: {} ({})", LIB.getClass().getName(), CONFIG);
    }

    private BlasLibrary() {
    }

    private static BLAS load() {
        preferAvx512Kernels();
        BLAS blas = BLAS.getInstance();
        if (!(blas instanceof NativeBLAS)) {
            LOG.warn("BLAS: {}: no native {} found, dense math runs 4-100x slower; install OpenBLAS "
                    + "(apt-get install libopenblas0-pthread)", blas.getClass().getName(), NATIVE_NAME);
        }
        return blas;
    }

    /**
     * OpenBLAS 0.3.21 (Debian 12's) does not know AMD's AVX-512 processors (Zen 4, Zen 5) and runs its AVX2 Haswell
     * kernels on them; its SkylakeX kernels do about 1.9× the sgemm work per CPU-second on the Zen 5 we run on. A
     * DYNAMIC_ARCH OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, so it is set in this process's
     * environment before netlib loads the library. An OPENBLAS_CORETYPE the user gave is kept.
     */
    private static void preferAvx512Kernels() {
        String coreType;
        try {
            coreType = coreTypeFor(Files.readString(Path.of("/proc/cpuinfo")));
        } catch (IOException | RuntimeException e) {
            return; // not Linux, or no cpuinfo: OpenBLAS picks as it does
        }
        if (coreType == null || System.getenv(CORE_TYPE_VARIABLE) != null) {
            return;
        }
        try {
            NativeLibrary.getInstance("c").getFunction("setenv").invokeInt(new Object[] {CORE_TYPE_VARIABLE, coreType, 0});
        } catch (UnsatisfiedLinkError | RuntimeException e) {
            LOG.warn("could not set {}={} ({}); OpenBLAS keeps its AVX2 kernels", CORE_TYPE_VARIABLE, coreType,
                    e.toString());
        }
    }

    /**
     * The OpenBLAS core to force for the processor {@code cpuinfo} (/proc/cpuinfo's text) describes: SkylakeX for
     * an AMD processor with the AVX-512 subsets those kernels use, else null (Intel's AVX-512 processors are
     * recognised by OpenBLAS itself).
     */
    static String coreTypeFor(String cpuinfo) {
        String vendor = null;
        Set<String> flags = null;
        for (String line : cpuinfo.split("\n")) {
            int colon = line.indexOf(':');
            if (colon < 0) {
                continue;
            }
            String key = line.substring(0, colon).trim();
            if (key.equals("vendor_id") && vendor == null) {
                vendor = line.substring(colon + 1).trim();
            } else if (key.equals("flags") && flags == null) {
                flags = new HashSet<>(Arrays.asList(line.substring(colon + 1).trim().split("\\s+")));
            }
        }
        return "AuthenticAMD".equals(vendor) && flags != null && flags.containsAll(AVX512_FLAGS) ? "SkylakeX" : null;
    }

    static String describe() {
        return LIB.getClass().getSimpleName() + (NATIVE ? " over " + CONFIG : " (slow pure-Java fallback)");
    }
}
