package org.exl2spark.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The CUDA probe on whatever host runs the tests: on CI (no driver) it must say "not usable" cleanly, once, and leave
 * no extracted native library behind; on a GPU host it must find the devices.
 */
class CudaRuntimeTest {

    private static boolean hostHasDriver() {
        return Stream.of("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64",
                        "/usr/lib/wsl/lib")
                .anyMatch(dir -> Files.exists(Path.of(dir, "libcuda.so.1")));
    }

    @Test
    void probeAnswersOnceFromEveryThreadAndNeverThrows() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Callable<CudaStatus>> probes = IntStream.range(0, 8)
                    .mapToObj(i -> (Callable<CudaStatus>) CudaRuntime::status).collect(Collectors.toList());
            List<Future<CudaStatus>> answers = pool.invokeAll(probes);
            CudaStatus first = answers.get(0).get();
            for (Future<CudaStatus> f : answers) {
                assertSame(first, f.get(), "the probe runs once and its answer is cached");
            }
            assertSame(first, CudaRuntime.status());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void withoutADriverCudaIsReportedUnusableAndEverythingRefusesCleanly() {
        CudaStatus status = CudaRuntime.status();
        if (hostHasDriver()) {
            // a GPU host: the driver loads; a device may or may not be visible
            assertEquals(status.available(), status.deviceCount() > 0, status.toString());
            return;
        }
        assertFalse(status.available());
        assertFalse(CudaRuntime.isAvailable());
        assertTrue(status.reason().contains("libcuda.so.1"), status.reason());
        assertEquals(0, CudaDevices.count());
        assertTrue(CudaDevices.list().isEmpty());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> GpuContext.forDevice(0));
        assertTrue(e.getMessage().contains("CUDA is not usable") && e.getMessage().contains("libcuda.so.1"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> GpuContext.forAddress("0"));
        // asking again touches no native code: same answer, no LinkageError
        assertSame(status, CudaRuntime.status());
        assertThrows(IllegalStateException.class, CudaRuntime::require);
    }

    @Test
    void theNativeLibraryIsNotLeftInTheSharedTempDirectory() throws IOException {
        CudaRuntime.status();
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        try (Stream<Path> files = Files.list(tmp)) {
            List<String> leftovers = files.map(p -> p.getFileName().toString())
                    .filter(n -> n.startsWith("libJCudaDriver") || n.startsWith("exl2-jcuda-"))
                    .collect(Collectors.toList());
            assertTrue(leftovers.isEmpty(), "left in " + tmp + ": " + leftovers);
        }
        assertEquals(tmp.toString(), System.getProperty("java.io.tmpdir"), "java.io.tmpdir restored");
    }

    @Test
    void badGpuAddressesAreNamed() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GpuContext.forAddress("gpu-a"));
        assertTrue(e.getMessage().contains("gpu-a"), e.getMessage());
    }
}
