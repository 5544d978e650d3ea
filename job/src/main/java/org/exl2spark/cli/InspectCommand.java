package org.exl2spark.cli;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.quant.Exl2ModelInfo;
import org.exl2spark.quant.TensorSource;
import org.exl2spark.io.ModelFormatException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code exl2 inspect}: what a model directory holds, read from config.json and the safetensors headers only. */
@Command(name = "inspect", header = "Describes a Hugging Face model and checks its tensors against config.json.",
        description = "Prints the architecture, parameter count, per-linear shapes, dtypes and shards of a model,"
                + " reading only config.json and the safetensors headers. Checks every tensor against what"
                + " config.json implies and fails, naming the tensor, if one is missing, mis-shaped or unexpected.")
final class InspectCommand implements Callable<Integer> {
    /** How many tensor problems the one-line error names before it counts the rest. */
    private static final int PROBLEMS_NAMED = 3;

    @Parameters(paramLabel = "MODEL", description = "Model directory: a local path or a file:, hdfs:// or s3a:// URI.")
    String model;

    @Option(names = "--json", description = "Print the report as JSON (for notebooks and scripts).")
    boolean json;

    @Mixin
    StorageOptions storage;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Configuration conf = storage.hadoopConfiguration();
        try (ModelDirectory m = ModelDirectory.open(model, conf)) {
            if (Exl2ModelInfo.isExl2(m.config(), TensorSource.of(m))) {
                if (json) {
                    throw new IllegalArgumentException("--json describes unquantized models; " + model
                            + " is an EXL2 model, whose report is text");
                }
                // quantized linears have EXL2 tensors instead of .weight: a bits-per-weight report, not a shape check
                out.print(Exl2ModelInfo.of(m).render());
                out.flush();
                return 0;
            }
        }
        inspect(model, conf, json, out);
        return 0;
    }

    /** Prints the report, then fails if the tensors do not match config.json. Shared with {@code demo}. */
    static ModelReport inspect(String location, Configuration conf, boolean json, PrintWriter out) throws Exception {
        ModelReport report;
        try (ModelDirectory m = ModelDirectory.open(location, conf)) {
            report = ModelReport.of(m);
        }
        out.print(json ? report.json() : report.text());
        out.flush();
        List<String> problems = report.problems();
        if (!problems.isEmpty()) {
            StringBuilder msg = new StringBuilder(location).append(": ").append(problems.size())
                    .append(problems.size() == 1 ? " tensor problem: " : " tensor problems: ");
            msg.append(String.join("; ", problems.subList(0, Math.min(PROBLEMS_NAMED, problems.size()))));
            if (problems.size() > PROBLEMS_NAMED) {
                msg.append("; and ").append(problems.size() - PROBLEMS_NAMED).append(" more (listed above)");
            }
            throw new ModelFormatException(msg.toString());
        }
        return report;
    }
}
