package org.exl2spark.cli;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.api.java.JavaSparkContext;
import org.exl2spark.pipeline.ClusterSmokeJob;
import org.exl2spark.pipeline.SparkErrors;
import org.exl2spark.pipeline.SparkSessions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code cluster-check}: runs {@link ClusterSmokeJob} on the Spark given by {@code --master}, else by spark-submit,
 * else on a local Spark, and prints what each executor has (host, GPU, backend), or, exiting with
 * {@link #CHECK_FAILED}, why the cluster cannot run a conversion.
 */
@Command(name = "cluster-check", mixinStandardHelpOptions = true,
        description = {"Checks that a Spark cluster can run exl2 jobs: every executor runs tasks at the same time,"
            + " tasks see their GPU and exchange files through the job directory. Prints each executor's host, GPU"
            + " and backend."})
public final class ClusterCheckCommand implements Callable<Integer> {
    /** The exit code when the check finds the cluster unfit; the line on stderr says why. */
    static final int CHECK_FAILED = 1;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "<job-dir-uri>",
            description = "Job directory (file:, hdfs:, s3a:) every executor can reach; the check writes into its"
                    + " cluster-check/ folder only.")
    String jobDirectory;

    @Option(names = "--executors", defaultValue = "1", paramLabel = "<n>",
            description = "Executors that must run tasks at the same time, default ${DEFAULT-VALUE}.")
    int executors;

    @Option(names = "--tasks", paramLabel = "<n>", description = "Tasks per stage, default 2 per executor.")
    Integer tasks;

    @Option(names = "--hold", defaultValue = "0", paramLabel = "<seconds>",
            description = "Seconds each task keeps its GPU after all executors checked in, default ${DEFAULT-VALUE}.")
    double holdSeconds;

    @Option(names = "--wait", defaultValue = "120", paramLabel = "<seconds>",
            description = "Seconds to wait for executors to register and check in, default ${DEFAULT-VALUE}.")
    double waitSeconds;

    @Option(names = "--require-gpu", description = "Fail when a task is given no GPU.")
    boolean requireGpu;

    @Option(names = "--master", paramLabel = "<url>",
            description = "Spark master; default: the one spark-submit gave, else " + SparkSessions.DEFAULT_MASTER + ".")
    String master;

    @Option(names = "--conf", paramLabel = "<key=value>", description = "Spark setting, repeatable.")
    Map<String, String> conf = new LinkedHashMap<>();

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        ClusterSmokeJob.Settings settings = new ClusterSmokeJob.Settings(jobDirectory,
                tasks == null ? 2 * executors : tasks, executors, Math.round(holdSeconds * 1000),
                Math.round(waitSeconds * 1000), requireGpu);
        JavaSparkContext spark = SparkSessions.start("exl2 cluster-check", master, conf);
        ClusterSmokeJob.Result result;
        try {
            result = ClusterSmokeJob.run(spark, settings);
        } catch (Exception e) {
            if (!(SparkErrors.taskError(e) instanceof ClusterSmokeJob.CheckFailed)) {
                throw e;
            }
            // a finding, not a failure of the tool: what is wrong, as the task (or the driver) saw it
            PrintWriter err = spec.commandLine().getErr();
            err.println(spec.qualifiedName() + ": " + SparkErrors.rootMessage(e));
            err.flush();
            return CHECK_FAILED;
        } finally {
            spark.stop();
        }
        PrintWriter out = spec.commandLine().getOut();
        out.print(ClusterSmokeJob.format(result));
        out.flush();
        return 0;
    }
}
