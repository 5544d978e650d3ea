package org.exl2spark.backend;

import com.sun.jna.Function;
import com.sun.jna.NativeLibrary;
import dev.ludovic.netlib.blas.BLAS;
import dev.ludovic.netlib.blas.NativeBLAS;
import dev.ludovic.netlib.lapack.LAPACK;
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

    static final BLAS LIB = load();
    /** LAPACK from the same native library set (its products run on the BLAS above). */
    static final LAPACK LAPACK_LIB = LAPACK.getInstance();
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
        BLAS blas = BLAS.getInstance();
        if (!(blas instanceof NativeBLAS)) {
            LOG.warn("BLAS: {}: no native {} found, dense math runs 4-100x slower; install OpenBLAS "
                    + "(apt-get install libopenblas0-pthread)", blas.getClass().getName(), NATIVE_NAME);
        }
        return blas;
    }

    static String describe() {
        return LIB.getClass().getSimpleName() + (NATIVE ? " over " + CONFIG : " (slow pure-Java fallback)");
    }
}
