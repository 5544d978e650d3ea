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
final class Launcher {
    static final Path ROOT = Paths.get(System.getProperty("exl2.repo.dir", "..")).toAbsolutePath().normalize();

    private Launcher() {
    }

    static void assumeJarBuilt() {
        assumeTrue(Files.isRegularFile(ROOT.resolve("job/target/exl2-spark.jar"))
                && Files.isDirectory(ROOT.resolve("job/target/lib")),
                "job/target/exl2-spark.jar not built (run mvn verify, which packages it before these tests)");
    }

    static Cli.Result run(Map<String, String> env, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(ROOT.resolve("submit/exl2").toString());
        command.addAll(List.of(args));
        Path logs = SharedData.scratch("launcher");
        ProcessBuilder pb = new ProcessBuilder(command).redirectOutput(logs.resolve("out").toFile())
                .redirectError(logs.resolve("err").toFile());
        pb.environment().remove("JAVA_OPTS");
        pb.environment().remove("HADOOP_CONF_DIR");
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.environment().putAll(env);
        Process p = pb.start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("submit/exl2 " + String.join(" ", args) + " did not finish in 120 s");
        }
        return new Cli.Result(p.exitValue(), Files.readString(logs.resolve("out"), StandardCharsets.UTF_8),
                Files.readString(logs.resolve("err"), StandardCharsets.UTF_8));
    }
}
