package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.TaskContext;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.model.CheckpointWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.io.ModelDirectory;

/**
 * What a task borrows from its executor JVM: the source model's weights (opened once per JVM, shared by its tasks:
 * reads are positioned and thread-safe) and a compute backend for the task.
 */
final class TaskResources {
    private static final Map<String, WeightSource> MODELS = new ConcurrentHashMap<>();

    private TaskResources() {
    }

    static WeightSource sourceWeights(JobContext ctx) {
        return MODELS.computeIfAbsent(ctx.modelUri(), uri -> {
            try {
                return new CheckpointWeights(ModelDirectory.open(uri, ctx.hadoopConf()));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** A backend for the running task, sized to the cores Spark gave it. */
    static Backend backend() {
        TaskContext tc = TaskContext.get();
        int threads = tc != null ? Math.max(1, tc.cpus()) : Runtime.getRuntime().availableProcessors();
        return new CpuBackend(threads);
    }

    static JobDirectory jobDirectory(JobContext ctx) throws IOException {
        return JobDirectory.open(ctx.jobDirUri(), ctx.hadoopConf());
    }
}
