package org.exl2spark.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletionService;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaSparkContext;
import org.exl2spark.calib.Calibration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.Storage;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.Candidates;
import org.exl2spark.quant.Exl2QuantizationConfig;
import org.exl2spark.quant.Measurement;

/**
 * A whole conversion, driven from the Spark driver: checks everything that can be checked cheaply first, then runs
 * the passes in order (calibrate, reference forward, measure, and per target optimize, quantize, compile: the targets
 * in parallel), each skipping what the job directory already holds. Nothing large passes through the driver.
 */
public final class ConvertJob {
    /** Version written into quantization_config. */
    public static final String VERSION = "exl2-spark-0.1.0";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ConvertOptions o;
    private final PrintStream log;
    private final Configuration conf;

    public ConvertJob(ConvertOptions options, PrintStream log) {
        this.o = options;
        this.log = log;
        this.conf = new Configuration();
        options.hadoopConf().forEach(conf::set);
    }

    public void run(JavaSparkContext jsc) throws IOException {
        checkOptions();
        try (ModelDirectory model = ModelDirectory.open(o.input(), conf)) {
            ModelArchitecture arch = model.architecture();
            ValidatePass.checkShapes(model, arch);
            Measurement given = null;
            if (o.measurementIn() != null) {
                Path p = Storage.path(o.measurementIn());
                given = Measurement.parse(ModelDirectory.readSmallFile(Storage.fileSystem(p, conf), p), p.toString());
                given.checkMatches(arch, p.toString());
                for (double bpw : o.targets()) {
                    OptimizePass.budget(arch, given, bpw);
                }
            }
            if (o.calibration() != null) {
                Calibration.checkReadable(o.calibration(), conf);
            }
            JobDirectory job = JobDirectory.open(o.jobDirectory(), conf);
            if (o.noResume() && job.exists(job.root())) {
                log.println("starting over: deleting the previous work in " + job.root());
                job.fileSystem().delete(job.root(), true);
            }
            String jobId = openJob(job, model);
            if (!o.measureOnly()) {
                for (double bpw : o.targets()) {
                    CompilePass.checkOutput(Storage.outputFileSystem(output(bpw), conf), output(bpw), jobId(jobId, bpw));
                }
            }
            JobContext ctx = new JobContext(model.path().toString(), job.root().toString(), o.hadoopConf(), 1,
                    o.rowsPerPartition());
            Stages stages = new Stages(jsc, log);
            // calibration first: a too-short calibration file is reported before every weight is read
            int[] rows = CalibratePass.run(stages, ctx, job, o.calibration() == null
                    ? new Tasks.CalibrationWork(null, arch.vocabSize(), Calibration.DEFAULT_QUANT_ROWS,
                            calibrationLength(arch), Calibration.DEFAULT_MEASURE_ROWS, measureLength(arch))
                    : new Tasks.CalibrationWork(o.calibration(), arch.vocabSize(), o.rows(), calibrationLength(arch),
                            o.measureRows(), measureLength(arch)), log);
            if (!job.exists(job.validated())) {
                ValidatePass.checkFinite(stages, ctx, model, log);
                job.write(job.validated(), new byte[0]);
            }
            Measurement m = given;
            if (m == null) {
                ReferencePass.run(stages, ctx, job, arch, rows[0], log);
                m = MeasurePass.run(stages, ctx, job, arch, rows[0], log);
                log.println("measurement: " + job.measurementJson());
            }
            if (o.measurementOut() != null) {
                Path out = Storage.path(o.measurementOut());
                org.exl2spark.io.SafetensorsWriter.writeSmallFile(Storage.outputFileSystem(out, conf), out, m.toJson(arch));
                log.println("measurement written to " + out);
            }
            if (o.measureOnly()) {
                return;
            }
            for (double bpw : o.targets()) {
                OptimizePass.budget(arch, m, bpw);
            }
            Measurement measurement = m;
            forEachTarget(jsc, bpw -> {
                OptimizePass.run(job, arch, measurement, bpw, log);
                QuantizePass.run(stages, ctx, job, arch, bpw, rows[1], o.headBits(), log);
                Exl2QuantizationConfig q = new Exl2QuantizationConfig(VERSION, bpw, o.headBits(),
                        new Exl2QuantizationConfig.Calibration(rows[1], calibrationLength(arch),
                                o.calibration() == null ? Exl2QuantizationConfig.DEFAULT_DATASET
                                        : Storage.path(o.calibration()).getName()));
                CompilePass.run(stages, ctx, job, model, arch, bpw, output(bpw), (long) o.shardSizeMb() * 1024 * 1024,
                        q, jobId(jobId, bpw), conf);
                log.println(JobDirectory.bitrateLabel(bpw) + ": model written to " + output(bpw));
            });
        }
    }

    /** What one target bitrate runs after the measurement: optimize, quantize, compile. */
    private interface TargetPipeline {
        void run(double bpw) throws IOException;
    }

    /**
     * Runs each target's pipeline, all at once, each from its own driver thread: the quantization pass is a chain of
     * small stages (one task per block), so one target alone leaves most executors idle, and the targets' stages
     * fill them. Targets are independent (own strategy, states, fragments, output), so the bytes are those of one
     * target at a time. The first failure cancels the other targets' Spark jobs and is rethrown as it was thrown
     * (their cancellations are not what went wrong).
     */
    private void forEachTarget(JavaSparkContext jsc, TargetPipeline pipeline) throws IOException {
        List<Double> targets = o.targets();
        if (targets.size() == 1) {
            pipeline.run(targets.get(0));
            return;
        }
        ExecutorService threads = Executors.newFixedThreadPool(targets.size(), r -> {
            Thread t = new Thread(r, "exl2-target");
            t.setDaemon(true);
            return t;
        });
        try {
            CompletionService<Void> running = new ExecutorCompletionService<>(threads);
            for (double bpw : targets) {
                running.submit(() -> {
                    pipeline.run(bpw);
                    return null;
                });
            }
            Throwable first = null;
            for (int finished = 0; finished < targets.size(); finished++) {
                try {
                    running.take().get();
                } catch (ExecutionException e) {
                    if (first == null) {
                        first = e.getCause();
                        jsc.sc().cancelAllJobs();
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    jsc.sc().cancelAllJobs();
                    throw new IOException("interrupted while converting " + targets, e);
                }
            }
            if (first instanceof IOException io) {
                throw io;
            } else if (first instanceof RuntimeException re) {
                throw re;
            } else if (first instanceof Error err) {
                throw err;
            }
        } finally {
            threads.shutdownNow();
        }
    }

    private void checkOptions() {
        if (!o.measureOnly() && o.targets().isEmpty()) {
            throw new IllegalArgumentException("no target bitrate (-b)");
        }
        for (double bpw : o.targets()) {
            if (!(bpw > 0 && bpw <= 16)) {
                throw new IllegalArgumentException("target bitrate " + bpw + " is not in (0, 16] bits per weight");
            }
        }
        if (o.targets().stream().distinct().count() != o.targets().size()) {
            throw new IllegalArgumentException("a target bitrate is listed twice: " + o.targets());
        }
        Candidates.headParams(o.headBits());
        if (!o.measureOnly() && o.output() == null) {
            throw new IllegalArgumentException("no output directory (-cf)");
        }
        if (o.rowsPerPartition() < 1 || o.shardSizeMb() < 1) {
            throw new IllegalArgumentException("rows per partition and shard size must be positive");
        }
        if (o.measurementIn() != null && o.measureOnly()) {
            throw new IllegalArgumentException("-m gives a measurement; there is nothing to measure");
        }
    }

    /** The model directory of one target: -cf itself for one target, -cf/&lt;bpw&gt;bpw for several. */
    Path output(double bpw) {
        Path cf = Storage.path(o.output());
        return o.targets().size() == 1 ? cf : new Path(cf, JobDirectory.bitrateLabel(bpw));
    }

    private int calibrationLength(ModelArchitecture arch) {
        return Math.min(o.length(), arch.maxPositionEmbeddings());
    }

    private int measureLength(ModelArchitecture arch) {
        return Math.min(o.measureLength(), arch.maxPositionEmbeddings());
    }

    /**
     * Writes job.json on the first run; on a rerun, refuses a job directory made for another model or other
     * calibration settings (its states and measurements would be wrong for this run). Returns the job's identity.
     */
    private String openJob(JobDirectory job, ModelDirectory model) throws IOException {
        ModelArchitecture arch = model.architecture();
        ObjectNode spec = JSON.createObjectNode();
        spec.put("model_fingerprint", ModelFingerprint.of(model));
        spec.put("calibration", o.calibration() == null ? "(default)" : Storage.path(o.calibration()).toString());
        spec.put("rows", o.calibration() == null ? Calibration.DEFAULT_QUANT_ROWS : o.rows());
        spec.put("length", calibrationLength(arch));
        spec.put("measurement_rows", o.calibration() == null ? Calibration.DEFAULT_MEASURE_ROWS : o.measureRows());
        spec.put("measurement_length", measureLength(arch));
        spec.put("head_bits", o.headBits());
        spec.put("rows_per_partition", o.rowsPerPartition());
        if (o.measurementIn() != null) {
            spec.put("measurement", Storage.path(o.measurementIn()).toString());
        }
        byte[] bytes = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(spec);
        if (job.exists(job.jobJson())) {
            ObjectNode previous = (ObjectNode) JSON.readTree(job.read(job.jobJson()));
            if (!previous.equals(spec)) {
                throw new ModelFormatException(job.jobJson() + ": the job directory holds work for another model or"
                        + " other settings (" + difference(previous, spec) + "); use another -o, or -nr to start over");
            }
            log.println("resuming the job in " + job.root());
        } else {
            if (job.exists(job.root()) && job.fileSystem().listStatus(job.root()).length > 0) {
                throw new ModelFormatException(job.root() + ": job directory is not empty and has no job.json");
            }
            job.write(job.jobJson(), bytes);
        }
        return sha256(bytes);
    }

    private static String difference(ObjectNode a, ObjectNode b) {
        StringBuilder sb = new StringBuilder();
        b.fieldNames().forEachRemaining(k -> {
            if (!b.get(k).equals(a.get(k))) {
                sb.append(sb.length() == 0 ? "" : ", ").append(k).append(": was ").append(a.get(k)).append(", now ")
                        .append(b.get(k));
            }
        });
        return sb.toString();
    }

    private static String jobId(String job, double bpw) {
        return job + "/" + JobDirectory.bitrateLabel(bpw);
    }

    static String sha256(byte[] bytes) {
        MessageDigest md = ModelFingerprint.sha256();
        return HexFormat.of().formatHex(md.digest(bytes));
    }
}
