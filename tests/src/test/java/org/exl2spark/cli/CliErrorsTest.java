package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.Supplier;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;

class CliErrorsTest {

    @Test
    void missingModelDirectory() {
        Cli.Result r = Cli.run("inspect", "target/no-such-model");
        String line = r.oneLineError(1, "exl2 inspect");
        assertTrue(line.endsWith("/no-such-model: model directory not found"), line);
        assertEquals("", r.out());
    }

    @Test
    void fileInsteadOfDirectory() {
        String line = Cli.run("inspect", SharedData.tinyModel().resolve("config.json").toString())
                .oneLineError(1, "exl2 inspect");
        assertTrue(line.endsWith("config.json: not a directory"), line);
    }

    @Test
    void unsupportedArchitecture() throws IOException {
        Path model = InspectCommandTest.tinyWithConfig("gpt2", c -> c.putArray("architectures").add("GPT2LMHeadModel"));
        String line = Cli.run("inspect", model.toString()).oneLineError(1, "exl2 inspect");
        assertTrue(line.endsWith("config.json: unsupported architecture 'GPT2LMHeadModel'; supported: LlamaForCausalLM,"
                + " MistralForCausalLM, Qwen2ForCausalLM"), line);
    }

    @Test
    void corruptShard() throws IOException {
        Path dir = SharedData.scratch("corrupt");
        Files.copy(SharedData.tinyModel().resolve("config.json"), dir.resolve("config.json"));
        Files.write(dir.resolve("model.safetensors"), new byte[] {(byte) 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9});
        String line = Cli.run("inspect", dir.toString()).oneLineError(1, "exl2 inspect");
        assertTrue(line.contains("model.safetensors: header length"), line);
    }

    @Test
    void wrongOptionsAreUsageErrors() {
        String unknown = Cli.run("inspect", "--frobnicate", "x").oneLineError(2, "exl2 inspect");
        assertEquals("exl2 inspect: Unknown option: '--frobnicate' (see 'exl2 inspect --help')", unknown);
        String missing = Cli.run("inspect").oneLineError(2, "exl2 inspect");
        assertTrue(missing.contains("Missing required parameter: 'MODEL'"), missing);
        String conf = Cli.run("inspect", "--conf", "fs.s3a.endpoint", "x").oneLineError(2, "exl2 inspect");
        assertTrue(conf.contains("KEY=VALUE"), conf);
        String command = Cli.run("frobnicate").oneLineError(2, "exl2");
        assertTrue(command.contains("Unmatched argument at index 0: 'frobnicate'"), command);
    }

    @Test
    void verboseShowsTheStackTraceWhereverItIsGiven() {
        for (String[] args : new String[][] {{"inspect", "--verbose", "target/nope"}, {"-v", "inspect", "target/nope"}}) {
            Cli.Result r = Cli.run(args);
            assertEquals(1, r.code());
            assertTrue(r.errLines().get(0).endsWith("model directory not found"), r.err());
            assertTrue(r.err().contains("org.exl2spark.io.ModelFormatException"), r.err());
            assertTrue(r.err().contains("\tat org.exl2spark.io.ModelDirectory.open"), r.err());
        }
    }

    @Test
    void helpAndVersionEverywhere() {
        Cli.Result top = Cli.run("--help").ok();
        for (Supplier<Object> s : Exl2.SUBCOMMANDS) {
            String name = s.get().getClass().getAnnotation(Command.class).name();
            assertTrue(top.out().contains("  " + name + "  "), top.out());
            String help = Cli.run(name, "--help").ok().out();
            assertTrue(help.contains("Usage: exl2 " + name + " "), help);
            assertTrue(help.contains("--verbose"), help);
        }
        String version = Cli.run("--version").ok().out();
        assertTrue(version.startsWith("exl2-spark 0.1.0"), version);
        assertTrue(version.contains("Spark 4.2.0 (Scala 2.13), Hadoop 3.5.0"), version);
        assertEquals(version, Cli.run("inspect", "--version").ok().out());
    }

    @Test
    void noCommandPrintsUsage() {
        Cli.Result r = Cli.run();
        assertEquals(CommandLine.ExitCode.USAGE, r.code());
        assertTrue(r.err().startsWith("Usage: exl2 "), r.err());
    }

    /** A bug in a command is reported as an internal error, still in one line, with its own exit code. */
    @Command(name = "boom")
    static final class Boom implements java.util.concurrent.Callable<Integer> {
        @Override
        public Integer call() {
            throw new IllegalStateException("it broke\nover two lines");
        }
    }

    @Test
    void internalErrorsAreOneLineToo() {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = Exl2.commandLine(new PrintWriter(out, true), new PrintWriter(err, true));
        cl.addSubcommand(new Boom());
        cl.setErr(new PrintWriter(err, true));
        assertEquals(ErrorReporting.INTERNAL_ERROR, cl.execute("boom"));
        assertEquals("exl2 boom: internal error: java.lang.IllegalStateException: it broke over two lines (rerun with"
                + " --verbose for the stack trace)\n", err.toString());
    }

    /** A Spark job whose task failed, as the driver sees it. */
    @Command(name = "job")
    static final class FailedSparkJob implements java.util.concurrent.Callable<Integer> {
        private final Exception taskError;

        FailedSparkJob(Exception taskError) {
            this.taskError = taskError;
        }

        @Override
        public Integer call() throws Exception {
            throw new org.apache.spark.SparkException("Job aborted due to stage failure: Task 0 in stage 1.0 failed 4"
                    + " times, most recent failure: Lost task 0.3 in stage 1.0 (TID 7) (10.0.0.5 executor 1): "
                    + taskError + "\n\tat org.exl2spark.X.y(X.java:1)\n\nDriver stacktrace:", taskError);
        }
    }

    @Test
    void aFailedSparkJobIsReportedAndJudgedByItsTasksError() {
        StringWriter err = new StringWriter();
        CommandLine cl = Exl2.commandLine(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true));
        cl.addSubcommand(new FailedSparkJob(new IOException("s3a://b/m/model-00002.safetensors: truncated")));
        cl.setErr(new PrintWriter(err, true));
        assertEquals(ErrorReporting.INPUT_ERROR, cl.execute("job"));
        assertEquals("exl2 job: s3a://b/m/model-00002.safetensors: truncated\n", err.toString());

        StringWriter err2 = new StringWriter();
        CommandLine bug = Exl2.commandLine(new PrintWriter(new StringWriter(), true), new PrintWriter(err2, true));
        bug.addSubcommand(new FailedSparkJob(new IllegalStateException("row 3 out of range")));
        bug.setErr(new PrintWriter(err2, true));
        assertEquals(ErrorReporting.INTERNAL_ERROR, bug.execute("job"));
        assertEquals("exl2 job: internal error: java.lang.IllegalStateException: row 3 out of range (rerun with"
                + " --verbose for the stack trace)\n", err2.toString());
    }

    @Test
    void confKeysReachHadoopAndSpark() throws IOException {
        Path site = SharedData.scratch("hadoop-conf");
        Files.writeString(site.resolve("core-site.xml"), "<configuration>"
                + "<property><name>exl2.test.site</name><value>from-site</value></property>"
                + "<property><name>exl2.test.both</name><value>from-site</value></property></configuration>");
        Map<String, String> conf = new java.util.LinkedHashMap<>();
        conf.put("exl2.test.both", "from-option");
        conf.put("spark.hadoop.exl2.test.prefixed", "stripped");
        conf.put("spark.executor.memory", "8g");
        var hadoop = StorageOptions.hadoopConfiguration(site.toString(), conf);
        assertEquals("from-site", hadoop.get("exl2.test.site"));
        assertEquals("from-option", hadoop.get("exl2.test.both"));
        assertEquals("stripped", hadoop.get("exl2.test.prefixed"));
        assertEquals(null, hadoop.get("spark.executor.memory"));
        StorageOptions options = new StorageOptions();
        options.conf.putAll(conf);
        assertEquals(Map.of("spark.hadoop.exl2.test.both", "from-option", "spark.hadoop.exl2.test.prefixed", "stripped",
                "spark.executor.memory", "8g"), options.sparkSettings());
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> StorageOptions.hadoopConfiguration(site.resolve("nope").toString(), Map.of()));
        assertTrue(e.getMessage().startsWith("HADOOP_CONF_DIR="), e.getMessage());
    }
}
