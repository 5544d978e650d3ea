package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.fs.FileSystem;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.testing.MiniHdfs;
import org.exl2spark.testing.ProjectFiles;
import org.exl2spark.testing.S3ProxyServer;
import org.exl2spark.testing.SharedData;
import org.exl2spark.testing.SparkStandaloneCluster;
import org.exl2spark.testing.SparkStandaloneCluster.Driver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The whole conversion on a real multi-JVM standalone cluster (a Master and two Workers with one fake GPU each, the
 * driver in its own JVM with a {@value SparkStandaloneCluster#DRIVER_HEAP} heap, the cluster jar shipped to the
 * executors), reading the model from HDFS (MiniDFSCluster) and keeping the job directory and the output on S3
 * (s3proxy): it publishes the very bytes a local-mode run of the same command does, also when an executor is killed
 * in the middle of the measurement and when the driver is killed during quantization and the command rerun; a task
 * that fails every attempt fails the job with its own message.
 */
class ClusterConversionTest {
    private static final String EXL2 = "org.exl2spark.cli.Exl2";
    private static final Duration JOB_TIMEOUT = Duration.ofSeconds(400);
    private static final String BPW = "4.0";
    /**
     * What a GPU job is submitted with (conf/spark-defaults.conf.template), and: stages start once both executors
     * have registered, so the measurement's tasks spread over both.
     */
    private static final Map<String, String> CLUSTER_CONF = Map.of(
            "spark.executor.resource.gpu.amount", "1",
            "spark.executorEnv.CUDA_DEVICE_ORDER", "PCI_BUS_ID",
            "spark.scheduler.minRegisteredResourcesRatio", "1.0");
    private static final Pattern MEASURE_TASK_STARTED = Pattern.compile("measure \\d+ blocks: starting layer \\d+ \\w+"
            + " on GPU (\\d+)");

    private static SparkStandaloneCluster cluster;
    private static MiniHdfs hdfs;
    private static S3ProxyServer s3;
    private static String model;

    @BeforeAll
    static void start() throws IOException {
        ProjectFiles.clusterJar();
        long t0 = System.nanoTime();
        cluster = SparkStandaloneCluster.start(List.of(List.of("0"), List.of("1")));
        hdfs = new MiniHdfs();
        s3 = new S3ProxyServer();
        System.out.printf(Locale.ROOT, "cluster, HDFS and S3 up in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        org.apache.hadoop.fs.Path onHdfs = hdfs.path("/models/tiny-2-layers");
        hdfs.fileSystem().copyFromLocalFile(new org.apache.hadoop.fs.Path(Conversions.exampleModel(2).toUri()),
                onHdfs);
        model = onHdfs.toString();
    }

    @AfterAll
    static void stop() throws IOException {
        try (AutoCloseable c = cluster; AutoCloseable s = s3; AutoCloseable h = hdfs) {
            // closed in reverse order: the cluster (whose executors use HDFS and S3) first
        } catch (Exception e) {
            throw new IOException(e);
        }
    }

    @Test
    void convertsFromHdfsToS3WithTheBytesOfLocalMode() throws Exception {
        Driver driver = convert("clean");
        assertEquals(0, driver.waitFor(JOB_TIMEOUT), driver.stderr());
        String out = driver.stdout();
        assertTrue(out.contains(BPW + "bpw: model written to " + s3.path("exl2/clean")), out);
        Conversions.assertSameFiles(Conversions.exampleBaseline(), download("exl2/clean"), "cluster vs local mode");

        // both executors worked; GPU stages held their executor's GPU, the GPU-free ones (tokenize, weight check,
        // compile) none
        String app = driver.applicationId().orElseThrow();
        List<String> gpus = new ArrayList<>();
        StringBuilder allLogs = new StringBuilder();
        for (String executor : List.of("0", "1")) {
            String log = cluster.executorLog(app, executor);
            allLogs.append(log);
            Matcher m = MEASURE_TASK_STARTED.matcher(log);
            assertTrue(m.find(), "executor " + executor + " measured a block:\n" + log);
            gpus.add(m.group(1));
            for (String line : log.lines().filter(l -> l.contains("INFO Stages: ")).toList()) {
                boolean gpuFree = line.contains("tokenize calibration data") || line.contains("check weights are finite")
                        || line.contains("compile " + BPW);
                assertTrue(line.endsWith(gpuFree ? " on no GPU" : " on GPU " + m.group(1)), line);
            }
        }
        assertEquals(List.of("0", "1"), gpus.stream().sorted().toList(), "one GPU per executor");
        assertTrue(allLogs.toString().contains("check weights are finite"), "the weight check ran on the executors");
        assertTrue(allLogs.toString().contains("compile " + BPW), "compile ran on the executors");
        assertTrue(allLogs.toString().contains("tokenize calibration data"), "tokenizing ran on the executors");
    }

    @Test
    void anExecutorKilledDuringMeasurementIsRetriedToTheSameBytes() throws Exception {
        Driver driver = convert("executor-kill");
        String app = awaitApplicationId(driver);
        ProcessHandle victim = null;
        while (victim == null) {
            for (ProcessHandle e : cluster.executors(app)) {
                if (MEASURE_TASK_STARTED.matcher(cluster.executorLog(app, SparkStandaloneCluster.executorId(e)))
                        .find()) {
                    victim = e;
                    break;
                }
            }
            awaitStep(driver, "a measurement task to start");
        }
        String victimId = SparkStandaloneCluster.executorId(victim);
        victim.destroyForcibly();
        assertEquals(0, driver.waitFor(JOB_TIMEOUT), driver.stderr());

        String out = driver.stdout();
        assertTrue(Pattern.compile("measure \\d+ blocks: task \\d+ attempt 0 failed on executor " + victimId
                + ": ExecutorLostFailure").matcher(out).find(), "a measurement task was lost with its executor:\n" + out);
        Conversions.assertSameFiles(Conversions.exampleBaseline(), download("exl2/executor-kill"),
                "cluster run with a killed executor vs local mode");
    }

    @Test
    void aDriverKilledDuringQuantizationResumesSkippingFinishedWork() throws Exception {
        String job = "jobs/driver-kill";
        Driver first = convert("driver-kill");
        String app = awaitApplicationId(first);
        FileSystem fs = s3.fileSystem();
        JobDirectory dir = JobDirectory.open(s3.path(job).toString(), s3.configuration());
        ModelArchitecture arch;
        try (ModelDirectory m = ModelDirectory.open(model, hdfs.configuration())) {
            arch = m.architecture();
        }
        BlockSpec firstLayerMlp = arch.layer(0).mlp();
        while (!QuantizePass.fragmentsDone(dir, Double.parseDouble(BPW), firstLayerMlp)) {
            awaitStep(first, "layer 0 to be quantized");
        }
        first.kill();
        // a task still running when its driver died may finish its write; count once every executor is gone
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (!cluster.executors(app).isEmpty()) {
            assertTrue(System.nanoTime() < deadline, "executors of " + app + " still alive 60 s after their driver");
            Thread.sleep(100);
        }
        assertFalse(fs.exists(s3.path("exl2/driver-kill")), "nothing published by a killed driver");
        int doneBlocks = 0;
        int doneParts = 0;
        List<Tasks.Partition> parts = Tasks.Partition.of(4, 2);
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                doneBlocks += QuantizePass.fragmentsDone(dir, Double.parseDouble(BPW), b) ? 1 : 0;
                for (Tasks.Partition p : parts) {
                    doneParts += dir.exists(QuantizePass.output(dir, Double.parseDouble(BPW), b, p.index())) ? 1 : 0;
                }
            }
        }
        assertTrue(doneBlocks >= 2 && doneBlocks < 2 * arch.numLayers(), "killed mid-quantization: " + doneBlocks
                + " blocks quantized");

        Driver second = convert("driver-kill");
        assertEquals(0, second.waitFor(JOB_TIMEOUT), second.stderr());
        String out = second.stdout();
        assertTrue(out.contains("resuming the job in " + s3.path(job)), out);
        assertTrue(out.contains("measure: 4 of 4 blocks already measured, skipped"), out);
        assertTrue(out.contains(String.format(Locale.ROOT, "%sbpw: %d quantized blocks and %d state partitions already"
                + " done, skipped", BPW, doneBlocks, doneParts)), "skipped " + doneBlocks + " blocks and " + doneParts
                + " partitions:\n" + out);
        Conversions.assertSameFiles(Conversions.exampleBaseline(), download("exl2/driver-kill"),
                "cluster run resumed after a driver kill vs local mode");
    }

    @Test
    void aTaskThatFailsEveryAttemptFailsTheJobWithItsOwnMessage() throws Exception {
        org.apache.hadoop.fs.Path text = hdfs.path("/calibration/three-words.txt");
        try (var out = hdfs.fileSystem().create(text)) {
            out.write("Only three words.\n".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        }
        List<String> args = convertArgs("too-few-tokens");
        args.set(args.indexOf("-c") + 1, text.toString());
        Driver driver = cluster.submit(ProjectFiles.clusterJar(), EXL2, CLUSTER_CONF, args);
        assertEquals(1, driver.waitFor(JOB_TIMEOUT), driver.stderr());
        String err = driver.stderr();
        assertTrue(driver.stdout().contains("tokenize calibration data: task 0 attempt 3 failed"),
                "Spark tried the tokenizing task 4 times:\n" + driver.stdout());
        List<String> reported = err.lines().filter(l -> l.startsWith("exl2 convert: ")).toList();
        assertEquals(1, reported.size(), err);
        // the task's own message (as local mode reports it, BadInputTest), not Spark's "Job aborted due to stage failure"
        assertTrue(reported.get(0).contains("three-words.txt") && reported.get(0).contains("tokens")
                && !reported.get(0).contains("stage failure"), reported.get(0));
        assertFalse(s3.fileSystem().exists(s3.path("exl2/too-few-tokens")), "nothing published");
    }

    /**
     * Submits {@code exl2 convert} of the HDFS model with the job directory {@code jobs/NAME} and the output
     * {@code exl2/NAME} on S3, with the small calibration of the local baseline ({@link Conversions#exampleArgs}).
     */
    private static Driver convert(String name) throws IOException {
        return cluster.submit(ProjectFiles.clusterJar(), EXL2, CLUSTER_CONF, convertArgs(name));
    }

    private static List<String> convertArgs(String name) throws IOException {
        List<String> args = new ArrayList<>(List.of("convert", "-i", model, "-o", s3.path("jobs/" + name).toString(),
                "-cf", s3.path("exl2/" + name).toString(), "-b", BPW));
        args.addAll(Conversions.smallCalibration());
        s3.s3aSettings().forEach((k, v) -> args.addAll(List.of("--conf", k + "=" + v)));
        return args;
    }

    /** A copy of an S3 folder on local disk. */
    private static Path download(String key) throws IOException {
        Path local = SharedData.scratch("from-s3-" + key.replace('/', '-'));
        s3.fileSystem().copyToLocalFile(false, s3.path(key), new org.apache.hadoop.fs.Path(local.toUri()), true);
        return local.resolve(s3.path(key).getName());
    }

    private static String awaitApplicationId(Driver driver) throws InterruptedException {
        while (true) {
            Optional<String> app = driver.applicationId();
            if (app.isPresent()) {
                return app.get();
            }
            awaitStep(driver, "the application to register");
        }
    }

    /** Sleeps a little while {@code driver} runs; fails, with its output, once it has ended or run too long. */
    private static void awaitStep(Driver driver, String what) throws InterruptedException {
        if (!driver.isAlive()) {
            fail("the driver ended before " + what + "; stdout:\n" + driver.stdout() + "\nstderr:\n" + driver.stderr());
        }
        if (driver.ageSeconds() > JOB_TIMEOUT.toSeconds()) {
            driver.kill();
            fail("no " + what + " within " + JOB_TIMEOUT.toSeconds() + " s; stdout:\n" + driver.stdout());
        }
        Thread.sleep(50);
    }
}
