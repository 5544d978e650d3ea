package org.exl2spark.pipeline;

import java.util.Optional;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CudaBackend;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.plan.DeviceRates;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.plan.TaskPlan;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Where a task's split comes from: on a GPU the memory planner sizes it to the task's device-memory pool (and fails
 * the task before any work when it cannot fit); on the CPU, whose memory is the JVM heap, the job's row chunk and
 * no limit on held weights.
 */
final class TaskPlans {
    private static final Logger LOG = LoggerFactory.getLogger(TaskPlans.class);

    private TaskPlans() {
    }

    static Optional<MemoryPlanner> planner(Backend backend, ModelArchitecture arch) {
        if (backend instanceof CudaBackend gpu) {
            return Optional.of(new MemoryPlanner(arch, gpu.memory().budget(), DeviceRates.H100));
        }
        return Optional.empty();
    }

    static TaskPlan logged(TaskPlan plan) {
        LOG.info("plan: {}", plan.render());
        return plan;
    }
}
