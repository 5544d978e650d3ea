package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.junit.jupiter.api.Test;

/**
 * Which backend a task gets. On a host without a CUDA driver (CI) every task runs on the CPU backend, and a task
 * without a GPU touches nothing of CUDA: checked in a fresh JVM, where the class-loading log and the process's
 * mapped libraries show what was loaded.
 */
class TaskResourcesBackendTest {

    private static boolean hostHasDriver() {
        return Stream.of("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64",
                        "/usr/lib/wsl/lib")
                .anyMatch(dir -> Files.exists(Path.of(dir, "libcuda.so.1")));
    }

    @Test
    void aTaskWithoutAGpuRunsOnTheCpu() {
        try (Backend b = TaskResources.backend(OptionalInt.empty())) {
            assertInstanceOf(CpuBackend.class, b);
        }
    }

    @Test
    void withoutADriverATaskGivenAGpuFallsBackToTheCpu() {
        assumeFalse(hostHasDriver(), "this host has a CUDA driver");
        try (Backend b = TaskResources.backend(OptionalInt.of(0))) {
            assertInstanceOf(CpuBackend.class, b);
        }
    }

    @Test
    void aTaskWithoutAGpuLoadsNothingOfCuda() throws Exception {
        List<String> out = runTask("none");
        assertTrue(out.contains("backend cpu"), String.join("\n", out));
        List<String> cuda = out.stream().filter(l -> l.contains("jcuda.") || l.contains("exl2spark.kernels.")
                || l.contains("JCudaDriver")).collect(Collectors.toList());
        assertTrue(cuda.isEmpty(), "loaded: " + cuda);
    }

    @Test
    void withoutADriverATaskGivenAGpuMapsNoNativeLibrary() throws Exception {
        assumeFalse(hostHasDriver(), "this host has a CUDA driver");
        List<String> out = runTask("0");
        assertTrue(out.contains("backend cpu"), String.join("\n", out));
        assertTrue(out.stream().anyMatch(l -> l.contains("jcuda.driver.JCudaDriver")), "the probe ran");
        assertFalse(out.stream().anyMatch(l -> l.startsWith("mapped ")), String.join("\n", out));
    }

    /** Runs {@link Task} in a fresh JVM logging every class it loads; returns its output lines. */
    private static List<String> runTask(String device) throws IOException, InterruptedException {
        Path log = Files.createTempFile("task-backend", ".log");
        try {
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-Xlog:class+load=info", "-cp", System.getProperty("java.class.path"), Task.class.getName(), device)
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the task JVM did not finish in 60 s");
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), String.join("\n", lines));
            return lines;
        } finally {
            Files.deleteIfExists(log);
        }
    }

    /** A task's view: picks the backend for the device given ("none" or an ordinal) and reports what it got. */
    public static final class Task {
        public static void main(String[] args) throws IOException {
            OptionalInt device = args[0].equals("none") ? OptionalInt.empty() : OptionalInt.of(Integer.parseInt(args[0]));
            try (Backend b = TaskResources.backend(device)) {
                System.out.println(b instanceof CpuBackend ? "backend cpu" : "backend " + b.describe());
            }
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                if (line.contains("JCuda") || line.contains("libcuda")) {
                    System.out.println("mapped " + line);
                }
            }
        }
    }
}
