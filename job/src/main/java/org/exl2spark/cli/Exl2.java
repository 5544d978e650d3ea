package org.exl2spark.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

/** The {@code exl2} command line: a top command that dispatches to the subcommands in {@link #SUBCOMMANDS}. */
@Command(name = "exl2", mixinStandardHelpOptions = true, versionProvider = Exl2.Version.class,
        scope = ScopeType.INHERIT, usageHelpAutoWidth = true,
        description = {"Converts Hugging Face safetensors models to ExLlamaV2's EXL2 format on Apache Spark.",
            "Model locations are local paths or Hadoop URIs (file:, hdfs://, s3a://). Run 'exl2 COMMAND --help'"
                + " for a command's options."})
public final class Exl2 implements Callable<Integer> {

    /**
     * Every subcommand, in the order help lists them. A new command is a class annotated with {@code @Command}
     * (implementing {@code Callable<Integer>}) added here; error handling and --help/--verbose come with it.
     */
    static final List<Supplier<Object>> SUBCOMMANDS = List.of(
            ConvertCommand::new,
            MeasureCommand::new,
            EvalCommand::new,
            InspectCommand::new,
            ExampleCommand::new,
            PlanCommand::new,
            DemoCommand::new,
            ClusterCheckCommand::new);

    /** Inherited by every subcommand; read back from the parse result by {@link ErrorReporting}. */
    @Option(names = {"-v", "--verbose"}, scope = ScopeType.INHERIT,
            description = "Print stack traces of errors (normally one line).")
    boolean verbose;

    @Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs one command line and returns its exit code; {@code out}/{@code err} receive everything it prints. */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        int code = commandLine(out, err).execute(args);
        out.flush();
        err.flush();
        return code;
    }

    static CommandLine commandLine(PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new Exl2());
        for (Supplier<Object> sub : SUBCOMMANDS) {
            cl.addSubcommand(sub.get());
        }
        cl.setOut(out);
        cl.setErr(err);
        cl.setExecutionExceptionHandler(ErrorReporting::executionError);
        cl.setParameterExceptionHandler(ErrorReporting::parameterError);
        return cl;
    }

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return CommandLine.ExitCode.USAGE;
    }

    /** Version of this build and of the stack it was built against, from the build's filtered properties. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() throws IOException {
            Properties p = new Properties();
            try (InputStream in = Exl2.class.getResourceAsStream("version.properties")) {
                if (in == null) {
                    throw new IOException("version.properties missing from the build");
                }
                p.load(in);
            }
            return new String[] {
                "exl2-spark " + p.getProperty("version"),
                "Spark " + p.getProperty("spark") + " (Scala " + p.getProperty("scala") + "), Hadoop "
                        + p.getProperty("hadoop") + ", Java " + System.getProperty("java.version")};
        }
    }
}
