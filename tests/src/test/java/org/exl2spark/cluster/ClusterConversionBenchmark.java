package org.exl2spark.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.exl2spark.testing.ProjectFiles;
import org.exl2spark.testing.SharedData;
import org.exl2spark.testing.SparkStandaloneCluster;
import org.exl2spark.testing.SparkStandaloneCluster.Driver;
import org.junit.jupiter.api.Test;

/**
 * Figures for docs/BENCHMARKS.md ("The conversion on a standalone cluster"), not a test: the name keeps it out of the
 * default test run. The conversion of ../shared/models/tiny-llama-16m with a small calibration on a standalone
 * cluster of 1 and of 2 Workers (one 1-core executor each, CPU backend: no GPU is requested), as
 * {@code exl2 convert} submitted from its own driver JVM. For each: wall time, CPU time of the driver and of the
 * executor JVMs, and per pass (from Spark's event log) the time its jobs were open, the tasks' run time summed, and
 * the part of the jobs' time in which their busiest executor ran none of their tasks (scheduling, task launch,
 * shipping results: the cluster's overhead).
 * {@code mvn -o -B -q -pl tests -am verify -Dtest=ClusterConversionBenchmark -Dsurefire.failIfNoSpecifiedTests=false}
 */
class ClusterConversionBenchmark {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> CALIBRATION = List.of("-c", SharedData.heldoutText().toString(), "-r", "16",
            "-l", "512", "-mr", "4", "-ml", "512", "--rows-per-partition", "4");
    private static final List<String> PASSES = List.of("validate", "reference", "measure", "quantize 4.0bpw",
            "compile 4.0bpw");

    @Test
    void tinyModelOnOneAndTwoWorkers() throws Exception {
        Map<Integer, String> tables = new LinkedHashMap<>();
        Map<Integer, Path> outputs = new HashMap<>();
        for (int workers : List.of(1, 2)) {
            List<List<String>> gpus = new ArrayList<>();
            for (int i = 0; i < workers; i++) {
                gpus.add(List.of(Integer.toString(i)));
            }
            try (SparkStandaloneCluster cluster = SparkStandaloneCluster.start(gpus)) {
                Path dir = SharedData.scratch("cluster-bench-" + workers);
                Path events = Files.createDirectories(dir.resolve("events"));
                outputs.put(workers, dir.resolve("out"));
                String before = Files.readString(Path.of("/proc/loadavg")).strip();
                CpuSampler cpu = new CpuSampler();
                long start = System.nanoTime();
                Driver driver = cluster.submit(ProjectFiles.clusterJar(), "org.exl2spark.cli.Exl2", Map.of(
                        "spark.eventLog.enabled", "true", "spark.eventLog.dir", events.toUri().toString(),
                        "spark.eventLog.rolling.enabled", "false", "spark.eventLog.compress", "false",
                        "spark.scheduler.minRegisteredResourcesRatio", "1.0"),
                        args(dir.resolve("job"), dir.resolve("out")));
                while (driver.isAlive()) {
                    cpu.sample(driver, cluster);
                    Thread.sleep(200);
                }
                double wall = (System.nanoTime() - start) / 1e9;
                assertEquals(0, driver.waitFor(Duration.ofSeconds(10)), driver.stderr());
                String after = Files.readString(Path.of("/proc/loadavg")).strip();
                tables.put(workers, report(workers, wall, cpu, eventLog(events), before, after));
            }
        }
        tables.values().forEach(System.out::println);
        Path one = outputs.get(1);
        Path two = outputs.get(2);
        try (Stream<Path> files = Files.list(one)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                assertEquals(-1L, Files.mismatch(f, two.resolve(f.getFileName())), "1 vs 2 workers: " + f.getFileName());
            }
        }
    }

    private static List<String> args(Path job, Path out) {
        List<String> args = new ArrayList<>(List.of("convert", "-i", SharedData.tinyModel().toString(), "-o",
                job.toString(), "-cf", out.toString(), "-b", "4.0"));
        args.addAll(CALIBRATION);
        return args;
    }

    /** The largest CPU time seen for each process (the driver and every executor JVM) while the driver ran. */
    private static final class CpuSampler {
        private final Map<Long, Double> executors = new ConcurrentHashMap<>();
        private double driver;

        void sample(Driver d, SparkStandaloneCluster cluster) {
            ProcessHandle.of(d.pid()).flatMap(h -> h.info().totalCpuDuration())
                    .ifPresent(c -> driver = Math.max(driver, c.toNanos() / 1e9));
            for (ProcessHandle e : cluster.executors()) {
                e.info().totalCpuDuration().ifPresent(c -> executors.merge(e.pid(), c.toNanos() / 1e9, Math::max));
            }
        }

        double executorSeconds() {
            return executors.values().stream().mapToDouble(Double::doubleValue).sum();
        }
    }

    private static List<JsonNode> eventLog(Path dir) throws IOException {
        List<JsonNode> events = new ArrayList<>();
        try (Stream<Path> files = Files.list(dir)) {
            Path log = files.filter(p -> p.getFileName().toString().startsWith("app-")).findFirst().orElseThrow();
            for (String line : Files.readAllLines(log)) {
                events.add(JSON.readTree(line));
            }
        }
        return events;
    }

    /** Per pass (Spark job group): jobs' open time, tasks' run time, and the busiest executor's idle time in jobs. */
    private static String report(int workers, double wall, CpuSampler cpu, List<JsonNode> events, String loadBefore,
            String loadAfter) {
        Map<Integer, String> jobGroup = new HashMap<>();
        Map<Integer, Integer> stageJob = new HashMap<>();
        Map<Integer, long[]> jobSpan = new HashMap<>();
        Map<Integer, Map<String, Long>> jobBusy = new HashMap<>();
        Map<String, double[]> passes = new LinkedHashMap<>();
        PASSES.forEach(p -> passes.put(p, new double[4]));
        for (JsonNode e : events) {
            switch (e.path("Event").asText()) {
                case "SparkListenerJobStart" -> {
                    int job = e.path("Job ID").asInt();
                    jobGroup.put(job, e.path("Properties").path("spark.jobGroup.id").asText());
                    jobSpan.put(job, new long[] {e.path("Submission Time").asLong(), 0});
                    e.path("Stage IDs").forEach(s -> stageJob.put(s.asInt(), job));
                }
                case "SparkListenerJobEnd" -> jobSpan.get(e.path("Job ID").asInt())[1] = e.path("Completion Time")
                        .asLong();
                case "SparkListenerTaskEnd" -> {
                    int job = stageJob.get(e.path("Stage ID").asInt());
                    JsonNode info = e.path("Task Info");
                    jobBusy.computeIfAbsent(job, j -> new HashMap<>()).merge(info.path("Executor ID").asText(),
                            info.path("Finish Time").asLong() - info.path("Launch Time").asLong(), Long::sum);
                    double[] p = passes.get(jobGroup.get(job));
                    if (p != null) {
                        p[1] += e.path("Task Metrics").path("Executor Run Time").asLong() / 1e3;
                        p[3]++;
                    }
                }
                default -> {
                }
            }
        }
        double inJobs = 0;
        for (Map.Entry<Integer, long[]> j : jobSpan.entrySet()) {
            double open = (j.getValue()[1] - j.getValue()[0]) / 1e3;
            double busiest = jobBusy.getOrDefault(j.getKey(), Map.of()).values().stream().mapToLong(Long::longValue)
                    .max().orElse(0) / 1e3;
            inJobs += open;
            double[] p = passes.get(jobGroup.get(j.getKey()));
            if (p != null) {
                p[0] += open;
                p[2] += open - busiest;
            }
        }
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%n%d worker%s: wall %.1f s, CPU: driver %.1f s, executors %.1f s;"
                + " driver outside Spark jobs %.1f s; load average before %s, after %s%n", workers,
                workers == 1 ? "" : "s", wall, cpu.driver, cpu.executorSeconds(), wall - inJobs, loadBefore, loadAfter));
        sb.append("| pass | tasks | jobs open (s) | task run time, summed (s) | busiest executor idle in jobs (s) |\n");
        sb.append("|---|---|---|---|---|\n");
        passes.forEach((name, p) -> sb.append(String.format(Locale.ROOT, "| %s | %d | %.1f | %.1f | %.1f |%n", name,
                (int) p[3], p[0], p[1], p[2])));
        return sb.toString();
    }
}
