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
 * {@code exl2 demo}: what works end to end today, on a fresh machine and without input files: write the tiny
 * example model into a temporary directory and inspect it. Later steps of the pipeline join it as they land.
 */
@Command(name = "demo", header = "Writes the tiny example model to a temporary directory and inspects it.",
        description = "Writes the tiny example model into a new temporary directory, inspects it, and removes it"
                + " again (unless --keep): a self-contained check that the tool works on this machine.")
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
