package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.CudaBackend;
import org.exl2spark.kernels.CudaRuntime;
import org.exl2spark.kernels.CudaStatus;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.TensorCoreGemm.Precision;
import org.exl2spark.model.CheckpointWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.plan.ByteSize;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a task borrows from its executor JVM: the source model's weights (opened once per JVM, shared by its tasks:
 * reads are positioned and thread-safe) and a compute backend for the task.
 */
final class TaskResources {
    /** The Spark setting of a task's device-memory budget (DESIGN.md's exl2.gpu.memoryBudget). */
    static final String MEMORY_BUDGET = "spark.exl2.gpu.memoryBudget";
    private static final Logger LOG = LoggerFactory.getLogger(TaskResources.class);
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
     * The running task's backend: {@link CudaBackend} on the GPU Spark gave the task ({@link GpuAssignment}), else
     * {@link CpuBackend}. Callers close it in a finally (try-with-resources), which frees the task's device memory
     * also when the task fails.
     */
    static Backend backend() {
        return backend(GpuAssignment.currentDevice());
    }

    /**
     * The backend for a task assigned {@code device}. Without a device nothing of CUDA is touched (a host with no
     * driver loads no native code); with one, CUDA's probe decides, and a device Spark assigned on a host where CUDA
     * is unusable falls back to the CPU with a warning. The GPU backend uses the JVM's one context for that device
     * (shared by the executor's tasks, made current on this thread).
     */
    static Backend backend(OptionalInt device) {
        String task = taskName();
        if (device.isEmpty()) {
            Backend cpu = cpuBackend();
            LOG.info("{}: no GPU assigned, backend {}", task, cpu.describe());
            return cpu;
        }
        CudaStatus status = CudaRuntime.status();
        if (!status.available()) {
            Backend cpu = cpuBackend();
            LOG.warn("{}: assigned GPU {} but CUDA is not usable ({}); backend {}", task, device.getAsInt(),
                    status.reason(), cpu.describe());
            return cpu;
        }
        // fp32-accurate linears (split TF32) for the reference, Hessian and quantized-layer forwards; the measurement's
        // candidates run in the FAST mode (fp16 operands, BlockRunner#relativeErrorSums), which ranked every candidate
        // of the tiny model's layer 0 as the CPU does (BENCHMARKS.md)
        CudaBackend gpu;
        try {
            GpuContext context = GpuContext.forDevice(device.getAsInt());
            gpu = new CudaBackend(context, memoryBudget().orElseGet(() -> DeviceMemory.defaultBudget(context)),
                    Precision.TF32X3);
        } catch (IllegalStateException e) {
            // e.g. a kernels jar built without nvcc: no kernel images to load
            Backend cpu = cpuBackend();
            LOG.warn("{}: assigned GPU {} but the CUDA backend cannot start ({}); backend {}", task,
                    device.getAsInt(), e.getMessage(), cpu.describe());
            return cpu;
        }
        LOG.info("{}: backend {}", task, gpu.describe());
        return gpu;
    }

    /**
     * The device memory a task may use, {@code spark.exl2.gpu.memoryBudget} (e.g. 24g), if the job sets it; otherwise
     * the device's free memory less {@link DeviceMemory#DEFAULT_RESERVE}. The memory planner sizes the tasks to it.
     */
    static java.util.OptionalLong memoryBudget() {
        SparkEnv env = SparkEnv.get();
        if (env == null || !env.conf().contains(MEMORY_BUDGET)) {
            return java.util.OptionalLong.empty();
        }
        return java.util.OptionalLong.of(ByteSize.parse(env.conf().get(MEMORY_BUDGET), MEMORY_BUDGET));
    }

    /**
     * The CPU backend using every core of the executor: passes alternate between stages of many tasks and stages of
     * one (a block's quantization), and a one-task stage must not leave cores idle. With several tasks running, their
     * pools share the cores.
     */
    private static Backend cpuBackend() {
        return new CpuBackend(Runtime.getRuntime().availableProcessors());
    }

    private static String taskName() {
        TaskContext t = TaskContext.get();
        return t == null ? "driver" : "stage " + t.stageId() + " task " + t.partitionId() + " (attempt "
                + t.attemptNumber() + ")";
    }

    static JobDirectory jobDirectory(JobContext ctx) throws IOException {
        return JobDirectory.open(ctx.jobDirUri(), ctx.hadoopConf());
    }
}
