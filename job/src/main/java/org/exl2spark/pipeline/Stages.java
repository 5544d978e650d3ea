package org.exl2spark.pipeline;

import java.io.PrintStream;
import java.io.Serializable;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

/**
 * Runs one pass's tasks as a Spark job: one partition per task, results collected to the driver (they are small
 * reports; tasks exchange data only through the job directory). Each job runs under a readable group and
 * description (the Spark UI shows "measure layer 37 mlp"), and the driver prints done/total with an ETA.
 */
final class Stages {
    private final JavaSparkContext jsc;
    private final PrintStream log;
    private final ProgressListener progress = new ProgressListener();

    Stages(JavaSparkContext jsc, PrintStream log) {
        this.jsc = jsc;
        this.log = log;
        jsc.sc().addSparkListener(progress);
    }

    <T extends Serializable, R> List<R> run(String group, String description, List<T> items, Function<T, R> task) {
        if (items.isEmpty()) {
            return List.of();
        }
        jsc.setJobGroup(group, description, false);
        progress.start(description, items.size());
        try {
            return jsc.parallelize(items, items.size()).map(task).collect();
        } finally {
            progress.stop();
            jsc.clearJobGroup();
        }
    }

    /** CPU time of this JVM's threads so far, or -1 where the JVM does not report it. */
    private static long processCpuNanos() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? os.getProcessCpuTime() : -1;
    }

    private final class ProgressListener extends SparkListener {
        private volatile String description;
        private volatile int total;
        private volatile long startNanos;
        private volatile long startCpuNanos;
        private final AtomicInteger done = new AtomicInteger();

        void start(String what, int tasks) {
            description = what;
            total = tasks;
            done.set(0);
            startNanos = System.nanoTime();
            startCpuNanos = processCpuNanos();
            log.printf(Locale.ROOT, "%s: %d task%s%n", what, tasks, tasks == 1 ? "" : "s");
        }

        void stop() {
            description = null;
        }

        @Override
        public void onTaskEnd(SparkListenerTaskEnd end) {
            String what = description;
            if (what == null || !end.taskInfo().successful()) {
                return;
            }
            int n = done.incrementAndGet();
            double elapsed = (System.nanoTime() - startNanos) / 1e9;
            double eta = n < total ? elapsed / n * (total - n) : 0;
            String tail;
            if (n < total) {
                tail = String.format(Locale.ROOT, ", ETA %.0f s", eta);
            } else if (jsc.isLocal() && startCpuNanos >= 0) {
                // the executors run in this JVM: its CPU time is the stage's, steadier than wall time on a shared machine
                tail = String.format(Locale.ROOT, ", %.1f s CPU", (processCpuNanos() - startCpuNanos) / 1e9);
            } else {
                tail = "";
            }
            log.printf(Locale.ROOT, "%s: %d/%d done, %.1f s elapsed%s%n", what, n, total, elapsed, tail);
        }
    }
}
