package org.exl2spark.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.Serializable;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.zip.CRC32;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkEnv;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.util.SerializableConfiguration;
import org.exl2spark.backend.CpuBackend;

/**
 * The cluster check ({@code exl2 cluster-check}): a small job run the way the conversion passes run theirs, which
 * shows what each executor has — host, JVM, GPU, backend, serializer — and fails, saying why, where a pass would.
 * <ol>
 * <li><b>check in</b> (one task per partition): each task writes a data file and a check-in record into the job
 * directory, then waits until tasks of {@code executors} different executors have checked in. That proves the
 * executors run at the same time and see the same job directory; it fails, naming both causes, when they don't.
 * Each task then keeps its GPU for {@code hold}, so that tasks of a stage overlap as long-running passes do.</li>
 * <li><b>exchange</b>: each task reads the data file of the next partition, usually written on another executor,
 * and checks it byte for byte.</li>
 * </ol>
 * Only small reports travel through Spark (as Kryo-registered records); the data travels through files, as in the
 * passes. Everything lives under {@code <job directory>/cluster-check/}, which a new run replaces; the driver writes
 * {@code report.json} there last.
 */
public final class ClusterSmokeJob {
    static final String FOLDER = "cluster-check";
    static final int DATA_BYTES = 256 << 10;
    private static final long POLL_MILLIS = 100;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private ClusterSmokeJob() {
    }

    /**
     * What to check.
     *
     * @param jobDirectory where tasks exchange files (any Hadoop URI every executor can reach)
     * @param tasks tasks per stage, at least {@code executors}
     * @param executors how many executors must run tasks at the same time
     * @param holdMillis how long each check-in task keeps its slot (and GPU) after all executors checked in
     * @param waitMillis how long the driver waits for executors to register, and each task for the others' check-ins
     * @param requireGpu fail any task that was given no GPU
     */
    public record Settings(String jobDirectory, int tasks, int executors, long holdMillis, long waitMillis,
            boolean requireGpu) implements Serializable {
        public Settings {
            if (executors < 1 || tasks < executors) {
                throw new IllegalArgumentException("need at least one executor and at least as many tasks as executors"
                        + " (got " + tasks + " tasks for " + executors + " executors)");
            }
            if (holdMillis < 0 || waitMillis < 0) {
                throw new IllegalArgumentException("hold and wait times must not be negative");
            }
        }
    }

    /** What the check found wrong with the cluster; the message says what and what to do. */
    public static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        public CheckFailed(String message) {
            super(message);
        }
    }

    /** What one task attempt found on its executor; written as its check-in and returned to the driver. */
    public record TaskReport(int partition, int attempt, String host, String executorId, long pid, int gpu,
            String backend, String cudaDeviceOrder, String cudaVisibleDevices, String serializer,
            boolean kryoRegistrationRequired, long startMillis, long endMillis) {

        /** {@code gpu} is the ordinal of the task's GPU, or -1 when it got none. */
        public boolean hasGpu() {
            return gpu >= 0;
        }

        TaskReport endedAt(long millis) {
            return new TaskReport(partition, attempt, host, executorId, pid, gpu, backend, cudaDeviceOrder,
                    cudaVisibleDevices, serializer, kryoRegistrationRequired, startMillis, millis);
        }
    }

    /** One exchange task: which data file it read and verified, on which executor, written on which. */
    public record Exchange(int partition, String executorId, int readPartition, String writerExecutorId, long bytes,
            long crc32) {
    }

    /** One executor as the tasks saw it. */
    public record ExecutorSummary(String executorId, String host, long pid, List<Integer> gpus, String backend,
            String cudaDeviceOrder, String cudaVisibleDevices, String serializer, boolean kryoRegistrationRequired,
            int tasks) {
    }

    /**
     * The outcome: the successful attempt of every check-in and exchange task, per-executor summaries, and warnings
     * (a configuration that works but is probably not what was meant).
     */
    public record Result(String jobDirectory, String applicationId, String master, List<ExecutorSummary> executors,
            List<TaskReport> checkIns, List<Exchange> exchanges, int crossExecutorReads, List<String> warnings) {
    }

    public static Result run(JavaSparkContext sc, Settings settings) throws IOException, InterruptedException {
        Configuration hadoopConf = sc.hadoopConfiguration();
        JobDirectory dir = JobDirectory.open(settings.jobDirectory(), hadoopConf);
        Path folder = new Path(dir.root(), FOLDER);
        dir.fileSystem().delete(folder, true);
        dir.fileSystem().mkdirs(folder);
        awaitExecutors(sc, settings);

        Broadcast<SerializableConfiguration> conf = sc.broadcast(new SerializableConfiguration(hadoopConf));
        String root = dir.root().toString();
        List<Integer> partitions = IntStream.range(0, settings.tasks()).boxed().collect(Collectors.toList());

        sc.setJobGroup("cluster-check", "cluster check: check in (" + settings.tasks() + " tasks)", true);
        List<TaskReport> checkIns = sc.parallelize(partitions, settings.tasks())
                .map(p -> checkIn(root, conf.value().value(), settings))
                .collect();
        sc.setJobGroup("cluster-check", "cluster check: exchange files", true);
        List<Exchange> exchanges = sc.parallelize(partitions, settings.tasks())
                .map(p -> exchange(root, conf.value().value(), settings.tasks()))
                .collect();
        sc.clearJobGroup();

        Result result = summarize(dir.root().toString(), sc.sc().applicationId(), sc.master(), checkIns, exchanges);
        dir.write(new Path(folder, "report.json"), JSON.writeValueAsBytes(result));
        return result;
    }

    /**
     * Executors register with the driver after it starts; waiting for all of them spreads the first tasks over every
     * executor instead of queueing them on the first to arrive.
     */
    private static void awaitExecutors(JavaSparkContext sc, Settings settings) throws InterruptedException {
        long deadline = System.currentTimeMillis() + settings.waitMillis();
        while (true) {
            int registered = sc.isLocal() ? 1 : sc.sc().statusTracker().getExecutorInfos().length - 1;
            if (registered >= settings.executors()) {
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new CheckFailed(String.format(Locale.ROOT, "only %d of %d executors registered within"
                        + " %d s: does the cluster have free slots (cores, memory, one GPU each) for that many?",
                        registered, settings.executors(), settings.waitMillis() / 1000));
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    static Path checkInFile(Path root, int partition, int attempt) {
        return new Path(root, String.format(Locale.ROOT, "%s/in-%05d-%d.json", FOLDER, partition, attempt));
    }

    static Path dataFile(Path root, int partition) {
        return new Path(root, String.format(Locale.ROOT, "%s/data-%05d.bin", FOLDER, partition));
    }

    /** The bytes partition {@code p} writes: the same in every attempt, as a pass's outputs are. */
    static byte[] payload(int partition) {
        byte[] b = new byte[DATA_BYTES];
        new SplittableRandom(0x5EEDL * 31 + partition).nextBytes(b);
        return b;
    }

    private static TaskReport checkIn(String root, Configuration conf, Settings settings)
            throws IOException, InterruptedException {
        long start = System.currentTimeMillis();
        TaskContext task = TaskContext.get();
        int partition = task.partitionId();
        TaskReport me = describeTask(task, start);
        if (settings.requireGpu() && !me.hasGpu()) {
            throw new CheckFailed(String.format(Locale.ROOT, "task %d on executor %s (%s) was given no GPU:"
                    + " submit with spark.executor.resource.gpu.amount=1, spark.task.resource.gpu.amount=1 and a GPU"
                    + " discovery script (conf/spark-defaults.conf.template)", partition, me.executorId(), me.host()));
        }
        JobDirectory dir = JobDirectory.open(root, conf);
        dir.write(dataFile(dir.root(), partition), payload(partition));
        dir.write(checkInFile(dir.root(), partition, task.attemptNumber()), JSON.writeValueAsBytes(me));
        awaitCheckIns(dir, settings, me);
        Thread.sleep(settings.holdMillis());
        return me.endedAt(System.currentTimeMillis());
    }

    private static void awaitCheckIns(JobDirectory dir, Settings settings, TaskReport me)
            throws IOException, InterruptedException {
        Path folder = new Path(dir.root(), FOLDER);
        Set<String> read = new HashSet<>();
        Set<String> executors = new HashSet<>();
        long deadline = System.currentTimeMillis() + settings.waitMillis();
        while (true) {
            for (Path p : dir.list(folder, "in-")) {
                if (read.add(p.getName())) {
                    executors.add(JSON.readValue(dir.read(p), TaskReport.class).executorId());
                }
            }
            if (executors.size() >= settings.executors()) {
                return;
            }
            if (System.currentTimeMillis() > deadline) {
                throw new CheckFailed(String.format(Locale.ROOT, "task %d on executor %s (%s) saw check-ins"
                        + " of %d of %d executors in %s within %d s (executors %s): are that many executors running,"
                        + " and is the job directory on storage all of them share?", me.partition(), me.executorId(),
                        me.host(), executors.size(), settings.executors(), folder, settings.waitMillis() / 1000,
                        new TreeSet<>(executors)));
            }
            Thread.sleep(POLL_MILLIS);
        }
    }

    /**
     * Reads and verifies the next partition's data file that another executor wrote (by the check-ins; with one
     * executor, simply the next partition's).
     */
    private static Exchange exchange(String root, Configuration conf, int tasks) throws IOException {
        TaskContext task = TaskContext.get();
        int partition = task.partitionId();
        String me = SparkEnv.get().executorId();
        JobDirectory dir = JobDirectory.open(root, conf);
        Map<Integer, String> writers = new TreeMap<>();
        for (Path p : dir.list(new Path(dir.root(), FOLDER), "in-")) {
            TaskReport t = JSON.readValue(dir.read(p), TaskReport.class);
            if (!t.executorId().equals(me) || !writers.containsKey(t.partition())) {
                writers.put(t.partition(), t.executorId());
            }
        }
        int source = (partition + 1) % tasks;
        for (int step = 1; step <= tasks; step++) {
            int p = (partition + step) % tasks;
            if (!me.equals(writers.get(p))) {
                source = p;
                break;
            }
        }
        Path file = dataFile(dir.root(), source);
        byte[] content = dir.read(file);
        if (!Arrays.equals(content, payload(source))) {
            throw new CheckFailed(file + " as read by task " + partition + " on executor " + me + " is not what task "
                    + source + " wrote (" + content.length + " bytes, expected " + DATA_BYTES
                    + "): does every executor see the same job directory?");
        }
        CRC32 crc = new CRC32();
        crc.update(content);
        return new Exchange(partition, me, source, writers.get(source), content.length, crc.getValue());
    }

    private static TaskReport describeTask(TaskContext task, long start) {
        SparkEnv env = SparkEnv.get();
        OptionalInt gpu = GpuAssignment.currentDevice();
        return new TaskReport(task.partitionId(), task.attemptNumber(), hostName(), env.executorId(),
                ProcessHandle.current().pid(), gpu.orElse(-1), backend(gpu),
                System.getenv().getOrDefault("CUDA_DEVICE_ORDER", "unset"),
                System.getenv().getOrDefault("CUDA_VISIBLE_DEVICES", "unset"),
                env.serializer().getClass().getSimpleName(),
                env.conf().getBoolean("spark.kryo.registrationRequired", false), start, 0);
    }

    /** What the passes would run this task's math on. */
    private static String backend(OptionalInt gpu) {
        if (gpu.isPresent()) {
            return "cuda:" + gpu.getAsInt();
        }
        try (CpuBackend cpu = new CpuBackend()) {
            return cpu.describe();
        }
    }

    private static String hostName() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return System.getenv().getOrDefault("HOSTNAME", "unknown host");
        }
    }

    static Result summarize(String jobDirectory, String applicationId, String master, List<TaskReport> checkIns,
            List<Exchange> exchanges) {
        Map<String, List<TaskReport>> byExecutor = new TreeMap<>(Comparator.comparing(ClusterSmokeJob::executorOrder)
                .thenComparing(Comparator.naturalOrder()));
        for (TaskReport t : checkIns) {
            byExecutor.computeIfAbsent(t.executorId(), e -> new ArrayList<>()).add(t);
        }
        List<ExecutorSummary> executors = new ArrayList<>();
        for (List<TaskReport> tasks : byExecutor.values()) {
            TaskReport first = tasks.get(0);
            List<Integer> gpus = tasks.stream().filter(TaskReport::hasGpu).map(TaskReport::gpu).distinct().sorted()
                    .collect(Collectors.toList());
            executors.add(new ExecutorSummary(first.executorId(), first.host(), first.pid(), gpus, first.backend(),
                    first.cudaDeviceOrder(), first.cudaVisibleDevices(), first.serializer(),
                    first.kryoRegistrationRequired(), tasks.size()));
        }
        int crossReads = (int) exchanges.stream().filter(x -> !x.executorId().equals(x.writerExecutorId())).count();
        return new Result(jobDirectory, applicationId, master, executors, checkIns, exchanges, crossReads,
                warnings(checkIns, executors));
    }

    /** Numeric executor ids in numeric order ("driver" in local mode first). */
    private static long executorOrder(String id) {
        return id.chars().allMatch(Character::isDigit) && !id.isEmpty() ? Long.parseLong(id) : -1;
    }

    private static List<String> warnings(List<TaskReport> checkIns, List<ExecutorSummary> executors) {
        List<String> warnings = new ArrayList<>();
        if (executors.stream().noneMatch(e -> !e.gpus().isEmpty())) {
            warnings.add("no task was given a GPU, so every pass would run on the CPU backend: submit with"
                    + " spark.executor.resource.gpu.amount=1 and spark.task.resource.gpu.amount=1");
        }
        for (ExecutorSummary e : executors) {
            if (!e.gpus().isEmpty() && !"PCI_BUS_ID".equals(e.cudaDeviceOrder())) {
                warnings.add("executor " + e.executorId() + " has CUDA_DEVICE_ORDER=" + e.cudaDeviceOrder() + ": set"
                        + " spark.executorEnv.CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers GPUs as the discovery"
                        + " script does");
            }
            if (!e.kryoRegistrationRequired()) {
                warnings.add("executor " + e.executorId() + " runs without spark.kryo.registrationRequired");
            }
        }
        // one physical GPU is (host, visible devices, ordinal); two tasks on it at once share its memory
        Map<String, List<TaskReport>> byDevice = checkIns.stream().filter(TaskReport::hasGpu).collect(Collectors
                .groupingBy(t -> t.host() + " CUDA_VISIBLE_DEVICES=" + t.cudaVisibleDevices() + " GPU " + t.gpu()));
        byDevice.forEach((device, tasks) -> {
            for (int i = 0; i < tasks.size(); i++) {
                for (int j = i + 1; j < tasks.size(); j++) {
                    TaskReport a = tasks.get(i);
                    TaskReport b = tasks.get(j);
                    if (a.startMillis() < b.endMillis() && b.startMillis() < a.endMillis()) {
                        warnings.add(String.format(Locale.ROOT, "tasks %d (executor %s) and %d (executor %s) ran on"
                                + " %s at the same time: each GPU must go to one task (spark.task.resource.gpu.amount=1,"
                                + " distinct GPU addresses per executor)", a.partition(), a.executorId(),
                                b.partition(), b.executorId(), device));
                        return;
                    }
                }
            }
        });
        return warnings;
    }

    /** The report a user reads: one line per executor, the exchange, the warnings, and a verdict. */
    public static String format(Result r) {
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "cluster check of %s (%s), job directory %s%n", r.master(),
                r.applicationId(), r.jobDirectory()));
        s.append(String.format(Locale.ROOT, "%-9s %-20s %-8s %-5s %-17s %-10s %s%n", "executor", "host", "pid", "gpu",
                "CUDA_DEVICE_ORDER", "tasks", "backend"));
        for (ExecutorSummary e : r.executors()) {
            String gpus = e.gpus().isEmpty() ? "-"
                    : e.gpus().stream().map(String::valueOf).collect(Collectors.joining(","));
            s.append(String.format(Locale.ROOT, "%-9s %-20s %-8d %-5s %-17s %-10d %s%n", e.executorId(), e.host(),
                    e.pid(), gpus, e.cudaDeviceOrder(), e.tasks(), e.backend()));
        }
        TaskReport any = r.checkIns().get(0);
        s.append(String.format(Locale.ROOT, "serializer: %s, registration %s%n", any.serializer(),
                r.executors().stream().allMatch(ExecutorSummary::kryoRegistrationRequired) ? "required" : "optional"));
        s.append(String.format(Locale.ROOT, "files: %d data files written and verified by their readers, %d of them"
                + " read on another executor%n", r.exchanges().size(), r.crossExecutorReads()));
        for (String w : r.warnings()) {
            s.append("warning: ").append(w).append(System.lineSeparator());
        }
        s.append(String.format(Locale.ROOT, "OK: %d executor%s ran %d tasks%n", r.executors().size(),
                r.executors().size() == 1 ? "" : "s", r.checkIns().size()));
        return s.toString();
    }
}
