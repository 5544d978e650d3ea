package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
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

    /**
     * A backend for the running task using every core of the executor: passes alternate between stages of many
     * tasks and stages of one (a block's quantization), and a one-task stage must not leave cores idle. With several
     * tasks running, their pools share the cores.
     */
    static Backend backend() {
        return new CpuBackend(Runtime.getRuntime().availableProcessors());
    }

    static JobDirectory jobDirectory(JobContext ctx) throws IOException {
        return JobDirectory.open(ctx.jobDirUri(), ctx.hadoopConf());
    }
}
