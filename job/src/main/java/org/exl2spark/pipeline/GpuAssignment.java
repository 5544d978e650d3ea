package org.exl2spark.pipeline;

import java.util.Map;
import java.util.OptionalInt;
import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;

/**
 * Which GPU the running task was given: the one place that knows how a task's device is chosen. Spark hands each
 * task the addresses of its {@code gpu} resource ({@code spark.task.resource.gpu.amount=1}); the first address is the
 * CUDA device ordinal, because the discovery script (conf/getGpusResources.sh) prints ordinals and executors number
 * devices in PCI bus order ({@code CUDA_DEVICE_ORDER=PCI_BUS_ID}) as nvidia-smi does. A task without a GPU resource
 * (local mode, a CPU-only cluster or resource profile) gets none and runs on the CPU backend.
 */
public final class GpuAssignment {
    /** The Spark resource name the confs and the discovery script use. */
    public static final String RESOURCE = "gpu";

    private GpuAssignment() {
    }

    /** The CUDA device ordinal of the running task's GPU; empty outside a task or when the task has no GPU. */
    public static OptionalInt currentDevice() {
        TaskContext task = TaskContext.get();
        return task == null ? OptionalInt.empty() : device(task.resourcesJMap());
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
