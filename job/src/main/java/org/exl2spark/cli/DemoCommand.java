package org.exl2spark.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code exl2 demo}: the whole tool end to end on a fresh machine without input files: write the tiny example
 * model into a temporary directory, inspect it, convert it to EXL2 at 4.0 bits per weight in an embedded local
 * Spark with the built-in calibration, and inspect the result.
 */
@Command(name = "demo", header = "Converts a tiny example model to EXL2 in a temporary directory.",
        description = "Writes the tiny example model into a new temporary directory, inspects it, converts it to"
                + " EXL2 at 4.0 bpw (embedded local Spark, built-in calibration with 512-token rows), inspects the"
                + " EXL2 model, and removes everything again (unless --keep): a self-contained check that the tool"
                + " works on this machine.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--keep", description = "Keep the temporary model directory and print where it is.")
    boolean keep;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "0", description = "Seed of the weights (default: 0).")
    long seed;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Path work = Files.createTempDirectory("exl2-demo-");
        String model = work.resolve("tiny").toString();
        try {
            Configuration conf = new StorageOptions().hadoopConfiguration();
            ExampleCommand.write(ExampleModel.of(ExamplePreset.TINY, null, seed), model, null, conf, out);
            out.println();
            InspectCommand.inspect(model, conf, false, out);
            out.println();
            out.flush();
            String exl2 = work.resolve("tiny-4.0bpw").toString();
            int code = Exl2.run(out, spec.commandLine().getErr(), "convert", "-i", model, "-o",
                    work.resolve("job").toString(), "-cf", exl2, "-b", "4.0", "-l", "512", "-ml", "512");
            if (code != 0) {
                return code;
            }
            out.println();
            code = Exl2.run(out, spec.commandLine().getErr(), "inspect", exl2);
            if (code != 0) {
                return code;
            }
        } finally {
            if (keep) {
                out.println("Kept " + model);
            } else {
                deleteTree(work);
            }
        }
        return 0;
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> all = Files.walk(root)) {
            for (Path p : (Iterable<Path>) all.sorted(Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
