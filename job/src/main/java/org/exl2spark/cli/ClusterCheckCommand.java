package org.exl2spark.cli;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.sql.SparkSession;
import org.exl2spark.pipeline.ClusterSmokeJob;
import org.exl2spark.pipeline.SparkErrors;
import org.exl2spark.pipeline.SparkSessions;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code cluster-check}: runs {@link ClusterSmokeJob} on the Spark this command was launched on and prints what each
 * executor has (host, GPU, backend) or why the cluster cannot run a conversion. Also a main class of its own, for
 * {@code spark-submit --class org.exl2spark.cli.ClusterCheckCommand}.
 */
@Command(name = "cluster-check", mixinStandardHelpOptions = true,
        description = {"Checks that a Spark cluster can run exl2 jobs: every executor runs tasks at the same time,"
            + " tasks see their GPU and exchange files through the job directory. Prints each executor's host, GPU"
            + " and backend."})
public final class ClusterCheckCommand implements Callable<Integer> {

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

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new ClusterCheckCommand());
        // a failed Spark job reports the task's own error first, on one line; the stack trace is in the Spark log
        cl.setExecutionExceptionHandler((e, line, parsed) -> {
            line.getErr().println(line.getCommandName() + ": " + SparkErrors.rootMessage(e));
            line.getErr().flush();
            return 1;
        });
        return cl;
    }

    @Override
    public Integer call() throws Exception {
        ClusterSmokeJob.Settings settings = new ClusterSmokeJob.Settings(jobDirectory,
                tasks == null ? 2 * executors : tasks, executors, Math.round(holdSeconds * 1000),
                Math.round(waitSeconds * 1000), requireGpu);
        SparkSession spark = SparkSessions.start("exl2 cluster-check", master, conf);
        try {
            PrintWriter out = spec.commandLine().getOut();
            out.print(ClusterSmokeJob.format(ClusterSmokeJob.run(SparkSessions.javaContext(spark), settings)));
            out.flush();
        } finally {
            spark.stop();
        }
        return 0;
    }
}
