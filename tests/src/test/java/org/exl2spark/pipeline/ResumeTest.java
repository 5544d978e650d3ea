package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.exl2spark.cli.Cli;
import org.exl2spark.cli.Launcher;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A conversion killed with SIGKILL (its whole process tree, as a crashed driver or a cancelled batch job leaves it)
 * and rerun with the same command finishes from what its job directory holds, and publishes the very bytes an
 * uninterrupted run does.
 */
class ResumeTest {
    private static final long RUN_LIMIT_SECONDS = 300;

    @BeforeAll
    static void needsTheJar() {
        Launcher.assumeJarBuilt();
    }

    @Test
    void killedInMeasurementThenInQuantizationResumesToIdenticalOutput() throws Exception {
        Path dir = SharedData.scratch("resume");
        Path job = dir.resolve("job");
        Path cf = dir.resolve("out");
        String[] args = Conversions.exampleArgs(job, cf, "local[2]").toArray(String[]::new);

        runUntilKilled(dir.resolve("run-1"), args, () -> visibleFiles(job.resolve("meas")) >= 1);
        assertFalse(Files.exists(job.resolve("measurement.json")), "killed before the measurement was complete");

        String second = runUntilKilled(dir.resolve("run-2"), args,
                () -> visibleFiles(job.resolve("q/4.0bpw/frag")) >= 1);
        assertTrue(second.contains("already measured"), "the second run says what it skipped:\n" + second);
        assertFalse(Files.exists(job.resolve("q/4.0bpw/frag/lm_head.safetensors")), "killed before quantization ended");
        assertFalse(Files.exists(cf), "nothing published by a killed run");

        Cli.Result third = Conversions.exl2(List.of(args)).ok();
        assertTrue(third.out().contains("already measured") && third.out().contains("already done, skipped"),
                "the third run says what it skipped:\n" + third.out());
        Conversions.assertSameFiles(Conversions.exampleBaseline(), cf, "resumed vs uninterrupted conversion");
    }

    /** Files under {@code dir} that are not a writer's hidden temporaries. */
    private static long visibleFiles(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).count();
        }
    }

    private interface Condition {
        boolean holds() throws IOException;
    }

    /**
     * Runs {@code submit/exl2 args} as its own process and kills it and all its descendants with SIGKILL as soon as
     * {@code when} holds; fails if the run ends before. Returns what it printed on stdout.
     */
    private static String runUntilKilled(Path logs, String[] args, Condition when) throws Exception {
        Files.createDirectories(logs);
        long start = System.nanoTime();
        Process p = Launcher.start(Map.of(), logs, args);
        try {
            while (!when.holds()) {
                if (!p.isAlive()) {
                    fail("submit/exl2 ended (exit " + p.exitValue() + ") before the point to kill it; stdout:\n"
                            + Launcher.stdout(logs) + "\nstderr:\n" + Files.readString(logs.resolve("err")));
                }
                if (System.nanoTime() - start > TimeUnit.SECONDS.toNanos(RUN_LIMIT_SECONDS)) {
                    fail("the point to kill submit/exl2 was not reached in " + RUN_LIMIT_SECONDS + " s; stdout:\n"
                            + Launcher.stdout(logs));
                }
                Thread.sleep(50);
            }
        } finally {
            killTree(p);
        }
        System.out.printf(Locale.ROOT, "submit/exl2 killed after %.1f s (exit %d)%n", (System.nanoTime() - start) / 1e9,
                p.exitValue());
        assertNotEquals(0, p.exitValue(), "the run was killed, not finished");
        return Launcher.stdout(logs);
    }

    private static void killTree(Process p) throws InterruptedException {
        List<ProcessHandle> tree = new ArrayList<>(p.descendants().toList());
        tree.add(p.toHandle());
        for (ProcessHandle h : tree) {
            h.destroyForcibly();
        }
        for (ProcessHandle h : tree) {
            try {
                h.onExit().get(30, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                throw new AssertionError("process " + h.pid() + " did not end after SIGKILL", e);
            }
        }
    }
}
