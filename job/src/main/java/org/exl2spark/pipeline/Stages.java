package org.exl2spark.pipeline;

import java.io.PrintStream;
import java.io.Serializable;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.spark.SparkConf;
import org.apache.spark.TaskFailedReason;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.Function;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.ResourceProfileBuilder;
import org.apache.spark.resource.TaskResourceRequests;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerStageCompleted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Runs one pass's tasks as a Spark job: one partition per task, results collected to the driver (they are small
 * reports; tasks exchange data only through the job directory). Each job runs under a readable group and
 * description (the Spark UI shows "measure layer 37 mlp"), and the driver prints done/total with an ETA and every
 * failed task attempt with its reason. Several driver threads may run stages at once (one per target bitrate). Each
 * task logs what it starts, and on which GPU, in its executor's log.
 *
 * <p>Tasks get what the session's default resource profile gives them: with {@code spark.task.resource.gpu.amount=1}
 * one GPU each. Stages that compute nothing on a GPU ({@link #runOnCpu}) run under a task resource profile that asks
 * for one CPU and no GPU, so they neither wait for a free GPU nor hold one.
 */
final class Stages {
    private static final Logger LOG = LoggerFactory.getLogger(Stages.class);
    /** The local property that ties a Spark job to its stage's progress (local properties are per driver thread). */
    private static final String PROGRESS_ID = "exl2.progress.id";

    private final JavaSparkContext jsc;
    private final PrintStream log;
    private final ProgressListener progress = new ProgressListener();
    private final AtomicLong progressIds = new AtomicLong();
    private final ResourceProfile cpuOnly;

    Stages(JavaSparkContext jsc, PrintStream log) {
        this.jsc = jsc;
        this.log = log;
        this.cpuOnly = cpuOnlyProfile(jsc.getConf());
        jsc.sc().addSparkListener(progress);
    }

    /** A stage whose tasks each take one GPU when the session gives tasks GPUs (else they run on the CPU backend). */
    <T extends Serializable, R> List<R> run(String group, String description, List<T> items, Function<T, R> task) {
        return run(group, description, items, task, true);
    }

    /** A stage whose tasks need no GPU (reading and writing files, checks): never holds one. */
    <T extends Serializable, R> List<R> runOnCpu(String group, String description, List<T> items,
            Function<T, R> task) {
        return run(group, description, items, task, false);
    }

    private <T extends Serializable, R> List<R> run(String group, String description, List<T> items,
            Function<T, R> task, boolean gpu) {
        if (items.isEmpty()) {
            return List.of();
        }
        jsc.setJobGroup(group, description, false);
        String id = Long.toString(progressIds.incrementAndGet());
        progress.running.put(id, new Progress(description, items.size()));
        jsc.setLocalProperty(PROGRESS_ID, id);
        try {
            JavaRDD<T> rdd = jsc.parallelize(items, items.size());
            if (!gpu && cpuOnly != null) {
                rdd = rdd.withResources(cpuOnly);
            }
            return rdd.map(item -> {
                // a GPU stage's task takes its device here (in local mode this may wait for a free one)
                OptionalInt device = gpu ? GpuAssignment.currentDevice() : OptionalInt.empty();
                LOG.info("{}: starting {} on {}", description, item, device.stream()
                        .mapToObj(d -> "GPU " + d).findFirst().orElse("no GPU"));
                return task.call(item);
            }).collect();
        } finally {
            progress.running.remove(id);
            jsc.setLocalProperty(PROGRESS_ID, null);
            jsc.clearJobGroup();
        }
    }

    /**
     * The profile of GPU-free stages, or null where the default profile already gives tasks no GPU. Spark (4.2)
     * accepts a task-only resource profile with dynamic allocation off on standalone, YARN and Kubernetes: its
     * tasks run on the executors the default profile started (which have GPUs) and are simply given none. With
     * dynamic allocation on it asks for executors like the default ones. Local mode accepts no profile at all, and
     * there only GPU stages' tasks take a GPU ({@link GpuAssignment#LOCAL_GPUS}).
     */
    static ResourceProfile cpuOnlyProfile(SparkConf conf) {
        if (conf.getDouble(SparkSessions.TASK_GPUS, 0) <= 0) {
            return null;
        }
        return new ResourceProfileBuilder().require(new TaskResourceRequests().cpus(conf.getInt("spark.task.cpus", 1)))
                .build();
    }

    /** Done/total of one running stage; {@link Stages#run} may be called from several driver threads at once. */
    private final class Progress {
        private final String description;
        private final int total;
        private final long startNanos = System.nanoTime();
        private final AtomicInteger done = new AtomicInteger();

        Progress(String description, int total) {
            this.description = description;
            this.total = total;
            log.printf(Locale.ROOT, "%s: %d task%s%n", description, total, total == 1 ? "" : "s");
        }

        void taskEnded(SparkListenerTaskEnd end) {
            if (!end.taskInfo().successful()) {
                String reason = end.reason() instanceof TaskFailedReason f ? f.toErrorString().lines().findFirst()
                        .orElse("") : end.reason().toString();
                log.printf(Locale.ROOT, "%s: task %d attempt %d failed on executor %s: %s%n", description,
                        end.taskInfo().index(), end.taskInfo().attemptNumber(), end.taskInfo().executorId(), reason);
                return;
            }
            int n = done.incrementAndGet();
            double elapsed = (System.nanoTime() - startNanos) / 1e9;
            double eta = n < total ? elapsed / n * (total - n) : 0;
            log.printf(Locale.ROOT, "%s: %d/%d done, %.1f s elapsed%s%n", description, n, total, elapsed,
                    n < total ? String.format(Locale.ROOT, ", ETA %.0f s", eta) : "");
        }
    }

    /** Finds a task's stage by the {@link #PROGRESS_ID} its job was submitted with. */
    private final class ProgressListener extends SparkListener {
        private final Map<String, Progress> running = new ConcurrentHashMap<>();
        private final Map<Integer, Progress> byStage = new ConcurrentHashMap<>();

        @Override
        public void onJobStart(SparkListenerJobStart start) {
            String id = start.properties() == null ? null : start.properties().getProperty(PROGRESS_ID);
            Progress p = id == null ? null : running.get(id);
            if (p != null) {
                for (Object stage : CollectionConverters.asJava(start.stageIds())) {
                    byStage.put((Integer) stage, p);
                }
            }
        }

        @Override
        public void onTaskEnd(SparkListenerTaskEnd end) {
            Progress p = byStage.get(end.stageId());
            if (p != null) {
                p.taskEnded(end);
            }
        }

        @Override
        public void onStageCompleted(SparkListenerStageCompleted completed) {
            byStage.remove(completed.stageInfo().stageId());
        }
    }
}
