package org.exl2spark.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import org.exl2spark.testing.ProjectFiles;
import org.exl2spark.testing.SharedData;
import org.exl2spark.testing.SparkStandaloneCluster;
import org.exl2spark.testing.SparkStandaloneCluster.Driver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The cluster check ({@code exl2 cluster-check}, pipeline/ClusterSmokeJob) on a real multi-JVM standalone cluster: a
 * Master and two Workers with one fake GPU each ("0" and "1"), the application submitted as its cluster jar from a
 * driver JVM of its own, executors started by the Workers.
 */
class StandaloneClusterTest {
    private static final String EXL2 = "org.exl2spark.cli.Exl2";
    private static final Duration JOB_TIMEOUT = Duration.ofSeconds(150);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** What an exl2 job on GPUs is submitted with (conf/spark-defaults.conf.template); the rest is the job's own. */
    private static final Map<String, String> GPU_CONF = Map.of(
            "spark.executor.resource.gpu.amount", "1",
            "spark.executorEnv.CUDA_DEVICE_ORDER", "PCI_BUS_ID");

    private static SparkStandaloneCluster cluster;

    @BeforeAll
    static void startCluster() throws IOException {
        long t0 = System.nanoTime();
        cluster = SparkStandaloneCluster.start(List.of(List.of("0"), List.of("1")));
        System.out.printf("standalone cluster (master + 2 workers) up in %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    @AfterAll
    static void stopCluster() throws IOException {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void everyExecutorRunsTasksOnItsOwnGpuAndTasksExchangeFiles() throws Exception {
        Path jobDir = SharedData.scratch("cluster-check");
        Driver driver = cluster.submit(ProjectFiles.clusterJar(), EXL2, GPU_CONF, List.of("cluster-check",
                "-o", jobDir.toString(), "--executors", "2", "--tasks", "4", "--hold", "0.5", "--wait", "60",
                "--require-gpu"));
        Set<Long> executorPids = watchExecutors(driver);
        int exit = driver.waitFor(JOB_TIMEOUT);
        assertEquals(0, exit, driver.stderr());

        JsonNode report = report(jobDir);
        JsonNode executors = report.get("executors");
        assertEquals(2, executors.size(), report.toPrettyString());
        Set<Long> pids = new HashSet<>();
        Set<Integer> gpus = new TreeSet<>();
        for (JsonNode e : executors) {
            pids.add(e.get("pid").asLong());
            assertEquals(1, e.get("gpus").size(), "one GPU per executor: " + e);
            gpus.add(e.get("gpus").get(0).asInt());
            assertEquals("PCI_BUS_ID", e.get("cudaDeviceOrder").asText(), "spark.executorEnv reached the executor");
            assertEquals("KryoSerializer", e.get("serializer").asText());
            assertTrue(e.get("kryoRegistrationRequired").asBoolean(), "Kryo registration required on " + e);
        }
        assertEquals(Set.of(0, 1), gpus, "both GPUs used");
        assertTrue(executorPids.containsAll(pids), "the tasks ran in the cluster's executor JVMs " + executorPids
                + ", reported " + pids);
        assertFalse(pids.contains(driver.pid()) || pids.contains(cluster.masterPid())
                || cluster.workerPids().stream().anyMatch(pids::contains), "no task ran in the driver or a daemon");

        JsonNode checkIns = report.get("checkIns");
        assertEquals(4, checkIns.size());
        for (JsonNode t : checkIns) {
            assertEquals("cuda:" + t.get("gpu").asInt(), t.get("backend").asText(), "task bound to its GPU: " + t);
        }
        // each exchange task read and verified a file written on the other executor; the CRCs it reported are the
        // files' own
        JsonNode exchanges = report.get("exchanges");
        assertEquals(4, exchanges.size());
        for (JsonNode x : exchanges) {
            assertNotEquals(x.get("executorId").asText(), x.get("writerExecutorId").asText(), x.toString());
            assertEquals(crc32(dataFile(jobDir, x.get("readPartition").asInt())), x.get("crc32").asLong(),
                    x.toString());
        }
        assertEquals(4, report.get("crossExecutorReads").asInt());
        assertTrue(report.get("warnings").isEmpty(), report.get("warnings").toString());

        String out = driver.stdout();
        assertTrue(out.contains("serializer: KryoSerializer, registration required"), out);
        assertTrue(out.contains("OK: 2 executors ran 4 tasks"), out);
        // the task's hand-off with Spark is only the records above; no shuffle, no driver-side data
        assertFalse(driver.stderr().contains("ShuffleMapStage"), "no shuffle stage");
    }

    @Test
    void anExecutorKilledMidTaskIsReplacedAndTheJobCompletes() throws Exception {
        Path jobDir = SharedData.scratch("cluster-kill");
        Driver driver = cluster.submit(ProjectFiles.clusterJar(), EXL2, GPU_CONF, List.of("cluster-check",
                "-o", jobDir.toString(), "--executors", "2", "--tasks", "4", "--hold", "3", "--wait", "60",
                "--require-gpu"));
        // a check-in is written when the task starts to hold its GPU, so the kill lands mid-task
        JsonNode victim = firstCheckIn(jobDir, driver);
        long pid = victim.get("pid").asLong();
        String app = driver.applicationId().orElseThrow();
        List<Long> live = cluster.executors(app).stream().map(ProcessHandle::pid).collect(Collectors.toList());
        assertTrue(live.contains(pid), "checked-in task runs in executor " + pid + " of " + app + "'s " + live
                + " (logs in " + cluster.runDir() + ")");
        ProcessHandle.of(pid).orElseThrow().destroyForcibly();

        int exit = driver.waitFor(JOB_TIMEOUT);
        assertEquals(0, exit, driver.stderr());
        JsonNode report = report(jobDir);
        int partition = victim.get("partition").asInt();
        JsonNode retried = null;
        for (JsonNode t : report.get("checkIns")) {
            assertNotEquals(pid, t.get("pid").asLong(), "no successful task ran in the killed executor: " + t);
            if (t.get("partition").asInt() == partition) {
                retried = t;
            }
        }
        assertEquals(4, report.get("checkIns").size());
        assertTrue(retried != null && retried.get("attempt").asInt() >= 1, "task " + partition + " retried: "
                + retried);
        for (JsonNode x : report.get("exchanges")) {
            assertEquals(crc32(dataFile(jobDir, x.get("readPartition").asInt())), x.get("crc32").asLong());
        }
        assertTrue(driver.stderr().contains("Lost executor " + victim.get("executorId").asText()),
                "the driver saw the executor go");
    }

    @Test
    void aTaskThatKeepsFailingFailsTheJobWithItsOwnMessageFirst() throws Exception {
        Path jobDir = SharedData.scratch("cluster-fail");
        // no GPU settings: executors get no GPU, and --require-gpu fails every attempt of every task
        Driver driver = cluster.submit(ProjectFiles.clusterJar(), EXL2, Map.of(), List.of("cluster-check",
                "-o", jobDir.toString(), "--executors", "2", "--wait", "60", "--require-gpu"));
        int exit = driver.waitFor(JOB_TIMEOUT);
        String err = driver.stderr();
        assertEquals(1, exit, err);
        assertTrue(err.contains("failed 4 times"), "Spark retried the task: " + err);
        List<String> reported = err.lines().filter(l -> l.startsWith("exl2 cluster-check: "))
                .collect(Collectors.toList());
        assertEquals(1, reported.size(), err);
        assertTrue(Pattern.matches("exl2 cluster-check: task \\d+ on executor \\d+ \\(\\S+\\) was given no GPU: submit"
                + " with spark\\.executor\\.resource\\.gpu\\.amount=1, .*\\(conf/spark-defaults\\.conf\\.template\\)",
                reported.get(0)), reported.get(0));
        assertFalse(Files.exists(jobDir.resolve("cluster-check/report.json")), "no report for a failed check");
    }

    /** Pids of the cluster's executor JVMs while the driver runs (executors exit with their application). */
    private static Set<Long> watchExecutors(Driver driver) throws InterruptedException {
        Set<Long> seen = new HashSet<>();
        while (driver.isAlive()) {
            cluster.executors().forEach(p -> seen.add(p.pid()));
            Thread.sleep(100);
        }
        return seen;
    }

    private static JsonNode firstCheckIn(Path jobDir, Driver driver) throws Exception {
        Path folder = jobDir.resolve("cluster-check");
        long deadline = System.nanoTime() + JOB_TIMEOUT.toNanos();
        while (System.nanoTime() < deadline && driver.isAlive()) {
            if (Files.isDirectory(folder)) {
                try (Stream<Path> files = Files.list(folder)) {
                    Optional<Path> in = files.filter(p -> p.getFileName().toString().matches("in-\\d+-0\\.json"))
                            .findFirst();
                    if (in.isPresent()) {
                        return JSON.readTree(in.get().toFile());
                    }
                }
            }
            Thread.sleep(50);
        }
        throw new AssertionError("no task checked in; driver stderr:\n" + driver.stderr());
    }

    private static JsonNode report(Path jobDir) throws IOException {
        return JSON.readTree(jobDir.resolve("cluster-check/report.json").toFile());
    }

    private static Path dataFile(Path jobDir, int partition) {
        return jobDir.resolve(String.format("cluster-check/data-%05d.bin", partition));
    }

    private static long crc32(Path file) throws IOException {
        CRC32 crc = new CRC32();
        crc.update(Files.readAllBytes(file));
        return crc.getValue();
    }
}
