package org.exl2spark.kernels;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;
import jcuda.CudaException;
import jcuda.driver.JCudaDriver;

/**
 * The one place that touches the CUDA driver first: loads JCuda's driver binding, initialises the driver and
 * answers whether CUDA is usable in this JVM. The answer is computed once and cached, so a host without a driver
 * pays for one failed native load, never two (a second touch of {@code JCudaDriver} after a failed load only gives
 * {@code NoClassDefFoundError}).
 *
 * <p>JCuda extracts its native library into {@code java.io.tmpdir} under a fixed name and reuses a file that is
 * already there, unchecked; executors of one host would share, and race on, that file. So the extraction goes to a
 * directory private to this JVM, deleted again once the library is mapped.
 */
public final class CudaRuntime {
    private static volatile CudaStatus status;

    private CudaRuntime() {
    }

    /** Probes CUDA on first call; later calls return the same answer. Never throws. */
    public static CudaStatus status() {
        CudaStatus s = status;
        if (s == null) {
            synchronized (CudaRuntime.class) {
                s = status;
                if (s == null) {
                    s = probe();
                    status = s;
                }
            }
        }
        return s;
    }

    public static boolean isAvailable() {
        return status().available();
    }

    /** Fails with the probe's reason when CUDA is not usable. */
    public static CudaStatus require() {
        CudaStatus s = status();
        if (!s.available()) {
            throw new IllegalStateException("CUDA is not usable in this JVM: " + s.reason());
        }
        return s;
    }

    private static CudaStatus probe() {
        try {
            loadDriverBinding();
        } catch (LinkageError e) {
            return CudaStatus.unavailable(describeLinkFailure(e));
        } catch (RuntimeException e) {
            return CudaStatus.unavailable("JCuda driver binding failed to load: " + e);
        }
        try {
            JCudaDriver.cuInit(0);
            int[] count = {0};
            JCudaDriver.cuDeviceGetCount(count);
            int[] version = {0};
            JCudaDriver.cuDriverGetVersion(version);
            if (count[0] == 0) {
                return new CudaStatus(false, 0, version[0], "the CUDA driver reports no device");
            }
            return new CudaStatus(true, count[0], version[0], "");
        } catch (CudaException e) {
            return CudaStatus.unavailable("CUDA driver initialisation failed: " + e.getMessage());
        } catch (LinkageError e) {
            return CudaStatus.unavailable(describeLinkFailure(e));
        }
    }

    /** Touches JCudaDriver (loading its native library) with java.io.tmpdir pointing at a private directory. */
    private static void loadDriverBinding() {
        Path privateDir;
        String sharedTmp = System.getProperty("java.io.tmpdir");
        try {
            privateDir = Files.createTempDirectory(Path.of(sharedTmp), "exl2-jcuda-");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a directory for JCuda's native library in " + sharedTmp, e);
        }
        try {
            // JCuda reads java.io.tmpdir while its class initialises; the swap is held only for that moment.
            System.setProperty("java.io.tmpdir", privateDir.toString());
            try {
                JCudaDriver.setExceptionsEnabled(true);
            } finally {
                System.setProperty("java.io.tmpdir", sharedTmp);
            }
        } finally {
            deleteTree(privateDir);
        }
    }

    private static String describeLinkFailure(LinkageError e) {
        String text = String.valueOf(e.getMessage());
        if (text.contains("libcuda.so")) {
            return "no CUDA driver (libcuda.so.1) on this host";
        }
        String firstLine = text.lines().findFirst().orElse(text);
        return "JCuda driver binding not loadable: " + e.getClass().getSimpleName() + ": " + firstLine;
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a leftover empty temp directory is harmless; the library itself is already mapped or failed
        }
    }
}
