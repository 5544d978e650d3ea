package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.io.PrintStream;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

/**
 * How a task's GPU is read from its resources (on a real cluster: StandaloneClusterTest), and lent from
 * {@code spark.exl2.localGpus} in local mode.
 */
class GpuAssignmentTest {

    private static Map<String, ResourceInformation> gpus(String... addresses) {
        return Map.of("gpu", new ResourceInformation("gpu", addresses));
    }

    @Test
    void theFirstAddressIsTheDevice() {
        assertEquals(OptionalInt.of(3), GpuAssignment.device(gpus("3")));
        assertEquals(OptionalInt.of(1), GpuAssignment.device(gpus("1", "2")));
    }

    @Test
    void noGpuResourceIsNoDevice() {
        assertEquals(OptionalInt.empty(), GpuAssignment.device(Map.of()));
        assertEquals(OptionalInt.empty(), GpuAssignment.device(gpus()));
        assertEquals(OptionalInt.empty(), GpuAssignment.device(
                Map.of("fpga", new ResourceInformation("fpga", new String[] {"0"}))));
    }

    @Test
    void outsideATaskThereIsNoDevice() {
        assertEquals(OptionalInt.empty(), GpuAssignment.currentDevice());
    }

    @Test
    void anAddressThatIsNotAnOrdinalIsAnError() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> GpuAssignment.device(gpus("GPU-8f3c2a")));
        assertTrue(e.getMessage().contains("'GPU-8f3c2a'") && e.getMessage().contains("getGpusResources.sh"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> GpuAssignment.device(gpus("-1")));
    }

    @Test
    void localGpusAreDistinctOrdinals() {
        assertEquals(List.of(0), GpuAssignment.localDevices("0"));
        assertEquals(List.of(2, 0), GpuAssignment.localDevices("2, 0"));
        for (String bad : new String[] {"", "0,", "x", "-1", "0,0", "1.5"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GpuAssignment.localDevices(bad), bad);
            assertTrue(e.getMessage().startsWith("spark.exl2.localGpus=" + bad + ": "), e.getMessage());
        }
    }

    /** Latches the local-mode tasks below share (local mode: tasks run in this JVM). */
    private static final CountDownLatch GPUS_HELD = new CountDownLatch(2);
    private static final CountDownLatch RELEASE_GPUS = new CountDownLatch(1);

    /**
     * A GPU stage in local mode with more task slots (4) than GPUs (2): every task is lent one of the two devices,
     * keeps it for the whole task, and no device ever serves two tasks at once; a CPU stage takes none.
     */
    @Test
    void localModeLendsEachGpuToOneTaskAtATime() throws Exception {
        JavaSparkContext sc = SparkSessions.start("gpu-assignment-test", "local[4]",
                Map.of(GpuAssignment.LOCAL_GPUS, "0,1"));
        try {
            Stages stages = new Stages(sc, new PrintStream(OutputStream.nullOutputStream()));
            List<long[]> spans = stages.run("t", "lend GPUs", IntStream.range(0, 8).boxed().collect(Collectors.toList()),
                    i -> {
                        long start = System.nanoTime();
                        int device = GpuAssignment.currentDevice().getAsInt();
                        Thread.sleep(100);
                        int again = GpuAssignment.currentDevice().getAsInt();
                        return new long[] {device, again, start, System.nanoTime()};
                    });
            assertEquals(8, spans.size());
            for (int device = 0; device < 2; device++) {
                int d = device;
                List<long[]> mine = spans.stream().filter(s -> s[0] == d)
                        .sorted(Comparator.comparingLong(s -> s[2])).collect(Collectors.toList());
                assertTrue(mine.size() >= 1, "GPU " + d + " was never lent");
                for (int k = 1; k < mine.size(); k++) {
                    assertTrue(mine.get(k)[2] >= mine.get(k - 1)[3], "GPU " + d + " lent to two tasks at once");
                }
            }
            spans.forEach(s -> assertEquals(s[0], s[1], "a task keeps its GPU"));

            // both GPUs held by a running GPU stage: a CPU stage must still run, not wait for them
            CompletableFuture<List<Integer>> holding = CompletableFuture.supplyAsync(() -> stages.run("t",
                    "hold GPUs", List.of(0, 1), i -> {
                        GPUS_HELD.countDown();
                        return RELEASE_GPUS.await(60, TimeUnit.SECONDS) ? i : -1;
                    }));
            assertTrue(GPUS_HELD.await(60, TimeUnit.SECONDS), "the GPU stage did not start");
            assertEquals(List.of(0, 1), stages.runOnCpu("t", "no GPU", List.of(0, 1), i -> i));
            RELEASE_GPUS.countDown();
            assertEquals(List.of(0, 1), holding.get(60, TimeUnit.SECONDS), "the CPU stage waited for the GPUs");
        } finally {
            sc.stop();
        }
    }
}
