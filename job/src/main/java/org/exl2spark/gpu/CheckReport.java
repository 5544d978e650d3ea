package org.exl2spark.gpu;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.GpuTimer;

/**
 * The PASS / FAIL / PERF lines of a device self-test as they happen, and its summary: what the device machine's log
 * shows and what its exit code says.
 */
final class CheckReport {
    /** The memory bandwidth rates are compared with: the H100's device-to-device copy as GpuSelfTest measures it. */
    static final double PEAK_BYTES = 3.0e12;

    private int passed;
    private final List<String> failures = new ArrayList<>();
    private final List<String> perfLines = new ArrayList<>();

    void expect(boolean ok, String name, String detail) {
        if (ok) {
            passed++;
            System.out.println("PASS  " + name + ": " + detail);
        } else {
            fail(name, detail);
        }
    }

    void fail(String name, String detail) {
        failures.add(name + ": " + detail);
        System.out.println("FAIL  " + name + ": " + detail);
    }

    void perf(String line) {
        perfLines.add(line);
        System.out.println("PERF  " + line);
    }

    void perfBytes(String what, double bytes, double ms) {
        double rate = bytes / (ms / 1e3);
        perf(String.format(Locale.ROOT, "%s: %.3f ms, %.0f GB/s = %.0f%% of %.1f TB/s", what, ms, rate / 1e9,
                100 * rate / PEAK_BYTES, PEAK_BYTES / 1e12));
    }

    /** Prints the PERF lines again and the PASS/FAIL counts; returns the exit code (1 when anything failed). */
    int summarize(String device, long seed) {
        System.out.println();
        System.out.println("PERF summary (device " + device + "):");
        perfLines.forEach(l -> System.out.println("  " + l));
        System.out.println("SUMMARY: " + passed + " PASS, " + failures.size() + " FAIL, seed " + seed);
        failures.forEach(f -> System.out.println("  FAILED: " + f));
        return failures.isEmpty() ? 0 : 1;
    }

    /** Median device time in ms of {@code reps} runs of {@code work}, after one warm-up run. */
    static double median(GpuContext ctx, int reps, Runnable work) {
        work.run();
        ctx.synchronize();
        double[] ms = new double[reps];
        try (GpuTimer timer = new GpuTimer(ctx)) {
            for (int i = 0; i < reps; i++) {
                timer.start();
                work.run();
                ms[i] = timer.stopMillis();
            }
        }
        Arrays.sort(ms);
        return ms[reps / 2];
    }
}
