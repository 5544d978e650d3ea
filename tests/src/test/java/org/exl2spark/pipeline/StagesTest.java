package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.resource.ResourceProfile;
import org.apache.spark.resource.TaskResourceProfile;
import org.junit.jupiter.api.Test;

/** Which resource profile GPU-free stages get (the cluster tests show where their tasks run). */
class StagesTest {

    @Test
    void gpuFreeStagesAskForOneCpuAndNoGpuWhenTasksHaveGpus() {
        SparkConf conf = SparkSessions.conf("t", "spark://head:7077", Map.of(SparkSessions.EXECUTOR_GPUS, "1",
                "spark.task.cpus", "2"));
        ResourceProfile p = Stages.cpuOnlyProfile(conf);
        // a task-only profile: Spark runs it on the default profile's executors when dynamic allocation is off
        assertInstanceOf(TaskResourceProfile.class, p);
        assertTrue(p.executorResourcesJMap().isEmpty(), p.toString());
        assertEquals(Map.of("cpus", 2.0), Map.of("cpus", p.taskResourcesJMap().get("cpus").amount()));
        assertEquals(1, p.taskResourcesJMap().size(), "no GPU requested: " + p);
    }

    @Test
    void withoutTaskGpusEveryStageUsesTheDefaultProfile() {
        assertNull(Stages.cpuOnlyProfile(SparkSessions.conf("t", "local[2]", Map.of())));
        assertNull(Stages.cpuOnlyProfile(SparkSessions.conf("t", "spark://head:7077", Map.of())));
    }
}
