package org.exl2spark.pipeline;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.apache.spark.util.TaskCompletionListener;

/**
 * Which GPU the running task was given: the one place that knows how a task's device is chosen. Spark hands each
 * task the addresses of its {@code gpu} resource ({@code spark.task.resource.gpu.amount=1}); the first address is the
 * CUDA device ordinal, because the discovery script (conf/getGpusResources.sh) prints ordinals and executors number
 * devices in PCI bus order ({@code CUDA_DEVICE_ORDER=PCI_BUS_ID}) as nvidia-smi does. A task without a GPU resource
 * (a CPU-only cluster or resource profile) gets none and runs on the CPU backend.
 *
 * <p>Local mode has no GPU resources (Spark's local scheduler offers cores only), so there the devices come from
 * {@link #LOCAL_GPUS}: a GPU stage's task borrows one of them for the rest of the task, waiting while every one is
 * lent, which gives each device one task at a time as {@code spark.task.resource.gpu.amount=1} does on a cluster.
 */
public final class GpuAssignment {
    /** The Spark resource name the confs and the discovery script use. */
    public static final String RESOURCE = "gpu";
    /** The CUDA device ordinals local-mode tasks may use, comma-separated ("0", "0,1"); unset: none. */
    public static final String LOCAL_GPUS = "spark.exl2.localGpus";
    private static final Map<String, LocalDevices> LOCAL_POOLS = new ConcurrentHashMap<>();

    private GpuAssignment() {
    }

    /**
     * The CUDA device ordinal of the running task's GPU; empty outside a task or when the task has no GPU. Only GPU
     * stages' tasks call this: in local mode with {@link #LOCAL_GPUS} it lends the task a device (blocking until one
     * is free), returned when the task ends.
     */
    public static OptionalInt currentDevice() {
        TaskContext task = TaskContext.get();
        if (task == null) {
            return OptionalInt.empty();
        }
        OptionalInt given = device(task.resourcesJMap());
        SparkEnv env = SparkEnv.get();
        if (given.isPresent() || env == null || !env.conf().contains(LOCAL_GPUS)) {
            return given;
        }
        return OptionalInt.of(LOCAL_POOLS.computeIfAbsent(env.conf().get(LOCAL_GPUS), LocalDevices::new).lend(task));
    }

    /** The ordinals a {@link #LOCAL_GPUS} value names; a clear error for anything else. */
    static List<Integer> localDevices(String setting) {
        List<Integer> devices = new ArrayList<>();
        for (String part : setting.split(",", -1)) {
            int ordinal;
            try {
                ordinal = Integer.parseInt(part.strip());
            } catch (NumberFormatException e) {
                ordinal = -1;
            }
            if (ordinal < 0 || devices.contains(ordinal)) {
                throw new IllegalArgumentException(LOCAL_GPUS + "=" + setting + ": expected distinct CUDA device"
                        + " ordinals separated by commas, such as 0 or 0,1 (nvidia-smi's indices), got '" + part + "'");
            }
            devices.add(ordinal);
        }
        return devices;
    }

    /** The devices of one {@link #LOCAL_GPUS} value, each lent to one task at a time. */
    private static final class LocalDevices {
        private final BlockingQueue<Integer> free;
        private final Map<Long, Integer> lent = new ConcurrentHashMap<>();

        LocalDevices(String setting) {
            free = new LinkedBlockingQueue<>(localDevices(setting));
        }

        int lend(TaskContext task) {
            long attempt = task.taskAttemptId();
            Integer held = lent.get(attempt);
            if (held != null) {
                return held;
            }
            int device;
            try {
                device = free.take();
            } catch (InterruptedException e) {
                // Spark interrupts a task it kills
                Thread.currentThread().interrupt();
                throw new IllegalStateException("task killed while waiting for one of the GPUs of " + LOCAL_GPUS, e);
            }
            lent.put(attempt, device);
            task.addTaskCompletionListener((TaskCompletionListener) ended -> free.add(lent.remove(attempt)));
            return device;
        }
    }

    /** The device of a task with these resources (what {@link #currentDevice} reads from the task context). */
    public static OptionalInt device(Map<String, ResourceInformation> taskResources) {
        ResourceInformation gpu = taskResources.get(RESOURCE);
        if (gpu == null || gpu.addresses().length == 0) {
            return OptionalInt.empty();
        }
        String address = gpu.addresses()[0].strip();
        try {
            int ordinal = Integer.parseInt(address);
            if (ordinal >= 0) {
                return OptionalInt.of(ordinal);
            }
        } catch (NumberFormatException notAnOrdinal) {
            // reported below
        }
        throw new IllegalStateException("Spark gave this task GPU address '" + address + "', which is not a CUDA"
                + " device ordinal; the GPU discovery script must print ordinals such as \"0\" (conf/getGpusResources.sh)");
    }
}
