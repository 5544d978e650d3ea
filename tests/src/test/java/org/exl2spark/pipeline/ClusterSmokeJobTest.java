package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Collectors;
import org.exl2spark.pipeline.ClusterSmokeJob.Exchange;
import org.exl2spark.pipeline.ClusterSmokeJob.Result;
import org.exl2spark.pipeline.ClusterSmokeJob.TaskReport;
import org.junit.jupiter.api.Test;

/** How the cluster check sums up its task reports (the job itself runs in ClusterCheckCommandTest and on a cluster). */
class ClusterSmokeJobTest {

    private static TaskReport task(int partition, String executor, String host, int gpu, String visible,
            String order, boolean kryoRequired, long start, long end) {
        return new TaskReport(partition, 0, host, executor, 100 + Long.parseLong(executor), gpu,
                gpu < 0 ? "cpu" : "cuda:" + gpu, order, visible, "KryoSerializer", kryoRequired, start, end);
    }

    private static Result summarize(List<TaskReport> tasks, List<Exchange> exchanges) {
        return ClusterSmokeJob.summarize("file:/jobs/x", "app-1", "spark://h:7077", tasks, exchanges);
    }

    @Test
    void executorsInNumericOrderWithTheirGpusAndTaskCounts() {
        Result r = summarize(List.of(
                task(0, "10", "a", 1, "unset", "PCI_BUS_ID", true, 0, 10),
                task(1, "2", "b", 0, "unset", "PCI_BUS_ID", true, 0, 10),
                task(2, "10", "a", 1, "unset", "PCI_BUS_ID", true, 20, 30)),
                List.of(new Exchange(0, "10", 1, "2", 4, 7), new Exchange(1, "2", 0, "10", 4, 7),
                        new Exchange(2, "10", 0, "10", 4, 7)));
        assertEquals(List.of("2", "10"), r.executors().stream().map(ClusterSmokeJob.ExecutorSummary::executorId)
                .collect(Collectors.toList()));
        assertEquals(List.of(1), r.executors().get(1).gpus());
        assertEquals(2, r.executors().get(1).tasks());
        assertEquals(2, r.crossExecutorReads());
        assertEquals(List.of(), r.warnings());
        String text = ClusterSmokeJob.format(r);
        assertTrue(text.contains("OK: 2 executors ran 3 tasks"), text);
        assertTrue(text.contains("2 of them read on another executor"), text);
    }

    @Test
    void twoTasksOnOneGpuAtOnceAreFlagged() {
        List<String> w = summarize(List.of(
                task(0, "1", "a", 0, "unset", "PCI_BUS_ID", true, 0, 10),
                task(1, "2", "a", 0, "unset", "PCI_BUS_ID", true, 5, 15)), List.of()).warnings();
        assertEquals(1, w.size(), w.toString());
        assertTrue(w.get(0).startsWith("tasks 0 (executor 1) and 1 (executor 2) ran on a CUDA_VISIBLE_DEVICES=unset"
                + " GPU 0 at the same time"), w.get(0));
        // the same ordinal on hosts, or behind different CUDA_VISIBLE_DEVICES, is another GPU; after each other is fine
        assertEquals(List.of(), summarize(List.of(
                task(0, "1", "a", 0, "0", "PCI_BUS_ID", true, 0, 10),
                task(1, "2", "a", 0, "1", "PCI_BUS_ID", true, 5, 15),
                task(2, "3", "b", 0, "unset", "PCI_BUS_ID", true, 5, 15),
                task(3, "1", "a", 0, "0", "PCI_BUS_ID", true, 10, 20)), List.of()).warnings());
    }

    @Test
    void settingsThatWorkButAreNotWhatWasMeantAreFlagged() {
        List<String> noGpu = summarize(List.of(task(0, "1", "a", -1, "unset", "unset", true, 0, 1)), List.of())
                .warnings();
        assertEquals(1, noGpu.size());
        assertTrue(noGpu.get(0).startsWith("no task was given a GPU"), noGpu.get(0));
        List<String> w = summarize(List.of(task(0, "1", "a", 0, "unset", "FASTEST_FIRST", false, 0, 1)), List.of())
                .warnings();
        assertEquals(2, w.size(), w.toString());
        assertTrue(w.get(0).contains("CUDA_DEVICE_ORDER=FASTEST_FIRST"), w.get(0));
        assertTrue(w.get(1).contains("without spark.kryo.registrationRequired"), w.get(1));
    }
}
