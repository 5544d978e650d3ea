package org.exl2spark.pipeline;

import java.io.PrintStream;
import java.io.Serializable;
import java.lang.management.ManagementFactory;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Runs one pass's tasks as a Spark job: one partition per task, results collected to the driver (they are small
 * reports; tasks exchange data only through the job directory). Each job runs under a readable group and
 * description (the Spark UI shows "measure layer 37 mlp"), and the driver prints done/total with an ETA, and at the
 * end the stage's wall time (and, in local mode, its CPU time).
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
        long startNanos = System.nanoTime();
        long startCpuNanos = processCpuNanos();
        progress.start(description, items.size());
        List<R> results;
        try {
            results = jsc.parallelize(items, items.size()).map(task).collect();
        } finally {
            progress.stop();
            jsc.clearJobGroup();
        }
        // printed here, not by the listener: Spark delivers listener events asynchronously, the last one may come late
        String cpu = "";
        if (jsc.isLocal() && startCpuNanos >= 0) {
            // the executors run in this JVM: its CPU time is the stage's, steadier than wall time on a shared machine
            cpu = String.format(Locale.ROOT, ", %.1f s CPU", (processCpuNanos() - startCpuNanos) / 1e9);
        }
        log.printf(Locale.ROOT, "%s: %d/%d done, %.1f s elapsed%s%n", description, items.size(), items.size(),
                (System.nanoTime() - startNanos) / 1e9, cpu);
        return results;
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
        /** The stages of the job run() started; empty until Spark reports it. */
        private volatile Set<Object> stages = Set.of();
        private final AtomicInteger done = new AtomicInteger();

        void start(String what, int tasks) {
            stages = Set.of();
            description = what;
            total = tasks;
            done.set(0);
            startNanos = System.nanoTime();
            log.printf(Locale.ROOT, "%s: %d task%s%n", what, tasks, tasks == 1 ? "" : "s");
        }

        void stop() {
            description = null;
        }

        @Override
        public void onJobStart(SparkListenerJobStart start) {
            // events come in order, so a late task end of the previous job arrives before this and is not counted
            stages = new HashSet<>(CollectionConverters.asJava(start.stageIds()));
        }

        @Override
        public void onTaskEnd(SparkListenerTaskEnd end) {
            String what = description;
            if (what == null || !end.taskInfo().successful() || !stages.contains(end.stageId())) {
                return;
            }
            int n = done.incrementAndGet();
            if (n >= total) {
                return; // run() prints the last line
            }
            double elapsed = (System.nanoTime() - startNanos) / 1e9;
            log.printf(Locale.ROOT, "%s: %d/%d done, %.1f s elapsed, ETA %.0f s%n", what, n, total, elapsed,
                    elapsed / n * (total - n));
        }
    }
}
