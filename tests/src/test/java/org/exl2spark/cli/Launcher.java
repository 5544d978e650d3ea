package org.exl2spark.cli;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.exl2spark.testing.SharedData;

/**
 * Runs {@code submit/exl2} as a user would, in its own process. It needs the packaged job jar: {@code mvn verify}
 * packages the job module before the tests module runs; with a bare {@code mvn test} the tests are skipped.
 */
public final class Launcher {
    public static final Path ROOT = Paths.get(System.getProperty("exl2.repo.dir", "..")).toAbsolutePath().normalize();

    private Launcher() {
    }

    public static void assumeJarBuilt() {
        assumeTrue(Files.isRegularFile(ROOT.resolve("job/target/exl2-spark.jar"))
                && Files.isDirectory(ROOT.resolve("job/target/lib")),
                "job/target/exl2-spark.jar not built (run mvn verify, which packages it before these tests)");
    }

    public static Cli.Result run(Map<String, String> env, String... args) throws IOException, InterruptedException {
        Path logs = SharedData.scratch("launcher");
        Process p = start(env, logs, args);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("submit/exl2 " + String.join(" ", args) + " did not finish in 120 s");
        }
        return new Cli.Result(p.exitValue(), stdout(logs), Files.readString(logs.resolve("err"), StandardCharsets.UTF_8));
    }

    /** Starts {@code submit/exl2 args} with stdout and stderr going to {@code logs}/out and {@code logs}/err. */
    public static Process start(Map<String, String> env, Path logs, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(ROOT.resolve("submit/exl2").toString());
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).redirectOutput(logs.resolve("out").toFile())
                .redirectError(logs.resolve("err").toFile());
        pb.environment().remove("JAVA_OPTS");
        pb.environment().remove("HADOOP_CONF_DIR");
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.environment().putAll(env);
        return pb.start();
    }

    /** What a process {@link #start}ed with {@code logs} has printed on stdout so far. */
    public static String stdout(Path logs) throws IOException {
        return Files.readString(logs.resolve("out"), StandardCharsets.UTF_8);
    }
}
