package org.exl2spark.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A real Spark standalone cluster for tests: one Master and some Workers, each its own JVM on 127.0.0.1, run from
 * the SPARK_HOME the build lays out in tests/target/spark-home ({@code jars/} holds what a cluster provides: Spark,
 * Hadoop, Scala; the application travels in its own jar). Each Worker announces fake GPUs through a discovery script
 * and starts executors as child JVMs. Applications run as separate driver JVMs ({@link #submit}), so a test can kill
 * a driver or an executor by pid. {@link #close} kills every process it started and everything those started, and
 * deletes the jars the workers fetched; the logs stay under target/spark-cluster/ for a failed test to be read.
 */
public final class SparkStandaloneCluster implements AutoCloseable {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(90);
    /** The heap of every driver JVM: the conversion of a small model must fit in it. */
    public static final String DRIVER_HEAP = "256m";
    private static final Pattern MASTER_URL = Pattern.compile("Starting Spark master at (spark://\\S+)");
    private static final String LEADER = "I have been elected leader";
    private static final String REGISTERED = "Successfully registered with master";
    private static final String EXECUTOR_MAIN = "org.apache.spark.executor.CoarseGrainedExecutorBackend";
    /** Advertises the addresses in the worker's EXL2_FAKE_GPUS, e.g. {@code "0","1"}. */
    private static final String DISCOVERY_SCRIPT = "#!/bin/sh\necho \"{\\\"name\\\":\\\"gpu\\\",\\\"addresses\\\":"
            + "[${EXL2_FAKE_GPUS}]}\"\n";

    private final Path sparkHome;
    private final Path runDir;
    private final List<Process> daemons = new CopyOnWriteArrayList<>();
    private final List<Process> workers = new CopyOnWriteArrayList<>();
    private final List<Driver> drivers = new CopyOnWriteArrayList<>();
    private final Thread shutdownHook = new Thread(this::killAll, "spark-test-cluster-cleanup");
    private Process master;
    private String masterUrl;

    private SparkStandaloneCluster(Path sparkHome, Path runDir) {
        this.sparkHome = sparkHome;
        this.runDir = runDir;
    }

    /**
     * Starts a Master and one Worker per entry of {@code gpusPerWorker}, each Worker with as many cores as GPUs and
     * announcing those GPU addresses (e.g. {@code [["0"], ["1"]]}: two workers with one GPU each). Returns once the
     * Master leads and every Worker has registered.
     */
    public static SparkStandaloneCluster start(List<List<String>> gpusPerWorker) throws IOException {
        Path home = SharedData.targetDir().resolve("spark-home");
        try (Stream<Path> jars = Files.exists(home.resolve("jars")) ? Files.list(home.resolve("jars")) : Stream.empty()) {
            if (jars.noneMatch(p -> p.getFileName().toString().startsWith("spark-core_"))) {
                throw new IllegalStateException(home + "/jars holds no Spark: mvn generate-test-resources copies it");
            }
        }
        Path script = home.resolve("bin/gpu-discovery.sh");
        Files.createDirectories(script.getParent());
        Files.writeString(script, DISCOVERY_SCRIPT);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path base = SharedData.targetDir().resolve("spark-cluster");
        Files.createDirectories(base);
        SparkStandaloneCluster c = new SparkStandaloneCluster(home, Files.createTempDirectory(base, "run-"));
        Runtime.getRuntime().addShutdownHook(c.shutdownHook);
        try {
            c.startMaster();
            c.startWorkers(gpusPerWorker, script);
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    private void startMaster() throws IOException {
        Path log = runDir.resolve("logs/master.log");
        master = launch(List.of("-Xmx256m", "-Dspark.master.rest.enabled=false", "-cp", classpath(),
                "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"),
                Map.of(), log);
        daemons.add(master);
        Matcher url = awaitLog(master, log, MASTER_URL);
        masterUrl = url.group(1);
        awaitLog(master, log, Pattern.compile(Pattern.quote(LEADER)));
    }

    private void startWorkers(List<List<String>> gpusPerWorker, Path script) throws IOException {
        List<Path> logs = new ArrayList<>();
        for (int i = 0; i < gpusPerWorker.size(); i++) {
            List<String> gpus = gpusPerWorker.get(i);
            Path log = runDir.resolve("logs/worker-" + i + ".log");
            Path work = runDir.resolve("work-" + i);
            Files.createDirectories(work);
            String fake = gpus.stream().map(g -> "\"" + g + "\"").collect(Collectors.joining(","));
            Process w = launch(List.of("-Xmx256m", "-Dspark.worker.resource.gpu.amount=" + gpus.size(),
                    "-Dspark.worker.resource.gpu.discoveryScript=" + script, "-cp", classpath(),
                    "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                    "--cores", String.valueOf(Math.max(1, gpus.size())), "--memory", "1g", "--work-dir",
                    work.toString(), masterUrl), Map.of("EXL2_FAKE_GPUS", fake), log);
            daemons.add(w);
            workers.add(w);
            logs.add(log);
        }
        for (int i = 0; i < workers.size(); i++) {
            awaitLog(workers.get(i), logs.get(i), Pattern.compile(Pattern.quote(REGISTERED)));
        }
    }

    private String classpath() {
        return sparkHome.resolve("jars") + "/*";
    }

    /** Starts {@code java args} with the cluster's environment, output (both streams) to {@code log}. */
    private Process launch(List<String> javaArgs, Map<String, String> env, Path log) throws IOException {
        Files.createDirectories(log.getParent());
        List<String> command = new ArrayList<>();
        command.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(javaArgs);
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
        clusterEnvironment(pb.environment());
        pb.environment().putAll(env);
        return pb.start();
    }

    /**
     * What Master, Workers (and so executors) and drivers need: SPARK_HOME (a Worker builds the executor classpath
     * from it), SPARK_SCALA_VERSION (without it every executor launch fails: "Cannot find any build directories"),
     * loopback; nothing from the caller's own Spark or Hadoop setup.
     */
    private void clusterEnvironment(Map<String, String> env) {
        env.keySet().removeIf(k -> k.startsWith("SPARK_") || k.startsWith("HADOOP_") || k.equals("CUDA_VISIBLE_DEVICES"));
        env.put("SPARK_HOME", sparkHome.toString());
        env.put("SPARK_SCALA_VERSION", "2.13");
        env.put("SPARK_LOCAL_IP", "127.0.0.1");
        env.put("JAVA_HOME", System.getProperty("java.home"));
    }

    private static Matcher awaitLog(Process p, Path log, Pattern line) throws IOException {
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (true) {
            String text = Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
            Matcher m = line.matcher(text);
            if (m.find()) {
                return m;
            }
            if (!p.isAlive()) {
                throw new IOException("process " + p.pid() + " exited with " + p.exitValue() + " before logging '"
                        + line + "'; " + log + ":\n" + tail(text));
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("no '" + line + "' in " + log + " within " + START_TIMEOUT.toSeconds() + " s:\n"
                        + tail(text));
            }
            sleep(100);
        }
    }

    public String masterUrl() {
        return masterUrl;
    }

    /** The folder with this cluster's logs and the workers' work folders. */
    public Path runDir() {
        return runDir;
    }

    public long masterPid() {
        return master.pid();
    }

    public List<Long> workerPids() {
        return workers.stream().map(Process::pid).collect(Collectors.toList());
    }

    /** The live executor JVMs (CoarseGrainedExecutorBackend) the workers started, of any application. */
    public List<ProcessHandle> executors() {
        return workers.stream().flatMap(Process::descendants).filter(ProcessHandle::isAlive)
                .filter(p -> p.info().commandLine().map(c -> c.contains(EXECUTOR_MAIN)).orElse(false))
                .collect(Collectors.toList());
    }

    /** The executor id Spark gave an executor JVM ({@code --executor-id N} on its command line). */
    public static String executorId(ProcessHandle executor) {
        String line = executor.info().commandLine().orElseThrow(() -> new IllegalStateException(
                "no command line for process " + executor.pid()));
        Matcher m = Pattern.compile("--executor-id (\\S+)").matcher(line);
        if (!m.find()) {
            throw new IllegalStateException("process " + executor.pid() + " is no executor: " + line);
        }
        return m.group(1);
    }

    /** What an application's executor logged (its stderr, kept by its worker under {@code work-N/APP/ID/}). */
    public String executorLog(String applicationId, String executorId) throws IOException {
        for (int i = 0; i < workers.size(); i++) {
            Path log = runDir.resolve("work-" + i).resolve(applicationId).resolve(executorId).resolve("stderr");
            if (Files.exists(log)) {
                return Files.readString(log, StandardCharsets.UTF_8);
            }
        }
        return "";
    }

    /** The live executor JVMs of one application ({@code app-...}). */
    public List<ProcessHandle> executors(String applicationId) {
        return executors().stream()
                .filter(p -> p.info().commandLine().map(c -> c.contains("--app-id " + applicationId)).orElse(false))
                .collect(Collectors.toList());
    }

    /**
     * Runs an application as its own driver JVM, as {@code spark-submit --deploy-mode client} would: SparkSubmit on
     * the cluster's classpath, the application jar given to SparkSubmit (which loads it and ships it to the
     * executors), the project's JVM flags (conf/jvm-flags.txt). The driver has a heap of {@value #DRIVER_HEAP} (nothing
     * large may pass through it), binds to loopback, has no UI, and asks for 1-core, 512 MB executors; {@code conf}
     * adds to or overrides that.
     */
    public Driver submit(Path appJar, String mainClass, Map<String, String> conf, List<String> args)
            throws IOException {
        int n = drivers.size();
        Path local = runDir.resolve("local");
        Files.createDirectories(local);
        Map<String, String> all = new java.util.LinkedHashMap<>();
        all.put("spark.driver.host", "127.0.0.1");
        all.put("spark.driver.bindAddress", "127.0.0.1");
        all.put("spark.ui.enabled", "false");
        all.put("spark.executor.cores", "1");
        all.put("spark.executor.memory", "512m");
        all.put("spark.local.dir", local.toString());
        // Spark refuses a heap under 1.5 × the 300 MB it reserves for itself (INVALID_DRIVER_MEMORY: "System memory
        // 268435456 must be at least 471859200"), a floor made for JVMs that cache and shuffle; our drivers do
        // neither, so a smaller reserve (Spark's own key for it) lets the heap show what a driver really needs
        all.put("spark.testing.reservedMemory", String.valueOf(64L << 20));
        all.putAll(conf);
        List<String> command = new ArrayList<>(List.of("-Xmx" + DRIVER_HEAP, "-Djava.io.tmpdir=" + local,
                "@" + ProjectFiles.resolve("conf/jvm-flags.txt"), "-cp", classpath(),
                "org.apache.spark.deploy.SparkSubmit", "--master", masterUrl, "--deploy-mode", "client",
                "--class", mainClass));
        all.forEach((k, v) -> {
            command.add("--conf");
            command.add(k + "=" + v);
        });
        command.add(appJar.toString());
        command.addAll(args);
        Path out = runDir.resolve("logs/driver-" + n + ".out");
        Path err = runDir.resolve("logs/driver-" + n + ".err");
        List<String> full = new ArrayList<>();
        full.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        full.addAll(command);
        ProcessBuilder pb = new ProcessBuilder(full).redirectOutput(out.toFile()).redirectError(err.toFile());
        clusterEnvironment(pb.environment());
        Driver d = new Driver(pb.start(), out, err);
        drivers.add(d);
        return d;
    }

    /** A submitted application's driver JVM. */
    public static final class Driver {
        private final Process process;
        private final Path out;
        private final Path err;
        private final long startNanos = System.nanoTime();

        Driver(Process process, Path out, Path err) {
            this.process = process;
            this.out = out;
            this.err = err;
        }

        /** Seconds since the driver was started. */
        public double ageSeconds() {
            return (System.nanoTime() - startNanos) / 1e9;
        }

        public long pid() {
            return process.pid();
        }

        public boolean isAlive() {
            return process.isAlive();
        }

        /** Waits for the driver to exit and returns its exit code; kills it and fails if it takes longer. */
        public int waitFor(Duration timeout) throws InterruptedException {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                kill();
                throw new AssertionError("driver " + pid() + " did not finish within " + timeout.toSeconds()
                        + " s; stderr:\n" + tail(stderr()));
            }
            return process.exitValue();
        }

        public String stdout() {
            return read(out);
        }

        public String stderr() {
            return read(err);
        }

        /** The application id the driver logged ("app-..."), once it has one. */
        public java.util.Optional<String> applicationId() {
            Matcher m = Pattern.compile("Connected to Spark cluster with app ID (app-\\S+)").matcher(stderr());
            return m.find() ? java.util.Optional.of(m.group(1)) : java.util.Optional.empty();
        }

        public void kill() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            try {
                process.waitFor(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private static String read(Path p) {
            try {
                return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    @Override
    public void close() throws IOException {
        killAll();
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException shuttingDown) {
            // the hook is running or has run
        }
        // the application jars each executor fetched; logs (master, workers, drivers, executors' stderr) stay
        try (Stream<Path> files = Files.walk(runDir)) {
            for (Path p : files.filter(f -> f.getFileName().toString().endsWith(".jar")).collect(Collectors.toList())) {
                Files.deleteIfExists(p);
            }
        }
    }

    /** Drivers first, then every executor and worker, the master last; each killed outright (SIGKILL). */
    private void killAll() {
        drivers.forEach(Driver::kill);
        List<ProcessHandle> all = new ArrayList<>();
        for (Process d : daemons) {
            d.descendants().forEach(all::add);
        }
        List<Process> reversed = new ArrayList<>(daemons);
        Collections.reverse(reversed);
        reversed.forEach(p -> all.add(p.toHandle()));
        all.forEach(ProcessHandle::destroyForcibly);
        for (ProcessHandle p : all) {
            try {
                p.onExit().get(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                // already gone, or the JVM is shutting down; nothing else to do
            }
        }
    }

    private static String tail(String text) {
        return text.length() <= 6000 ? text : "..." + text.substring(text.length() - 6000);
    }

    private static void sleep(long millis) throws IOException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }
}
