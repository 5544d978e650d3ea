package org.exl2spark.cli;

import java.io.InputStream;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.Storage;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.plan.ByteSize;
import org.exl2spark.plan.DeviceRates;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.plan.TaskPlan;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code exl2 plan}: the memory planner's view of a whole conversion, from config.json alone, before any work. */
@Command(name = "plan", header = "Prints a conversion's GPU tasks: peak device memory, splits, estimated time.",
        description = "Reads only the model's config.json and plans every GPU task a conversion with these options"
                + " runs (measurement of each block, quantization of each block per target, the quantized forwards),"
                + " as the tasks will: each task's predicted peak device bytes, its row chunk and, for a"
                + " measurement, how many dequantized weights it holds, and an estimate of its device time from the"
                + " H100 rates measured in docs/BENCHMARKS.md (forwards as fp32 GEMMs). Fails, naming the module, its"
                + " shape, the bytes needed and the budget, if a task cannot fit the budget.")
final class PlanCommand implements Callable<Integer> {
    /** What a task may use when no budget is given: an 80 GB H100 less DeviceMemory's 1 GiB reserve. */
    static final String DEFAULT_BUDGET = "79g";

    @Parameters(paramLabel = "MODEL", description = "Model directory: a local path or a file:, hdfs:// or s3a:// URI.")
    String model;

    @Option(names = "--budget", paramLabel = "<bytes>", defaultValue = DEFAULT_BUDGET,
            description = "Device memory per task (spark.exl2.gpu.memoryBudget), e.g. 24g, 24000000000 (default:"
                    + " ${DEFAULT-VALUE}; a task's own default is its device's free memory less 1 GiB).")
    String budget;

    @Option(names = {"-b", "--bits"}, split = ",", paramLabel = "<bpw>", defaultValue = "4.0",
            description = "Target bitrates; each adds a quantization pass (default: ${DEFAULT-VALUE}).")
    List<Double> targets;

    @Option(names = {"-m", "--measurement"}, description = "A measurement is given: plan no measurement tasks.")
    boolean measured;

    @Mixin
    CalibrationShape shape;

    @Option(names = "--all", description = "List every task, not only layer 0's and the totals.")
    boolean all;

    @Mixin
    StorageOptions storage;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        for (int v : new int[] {shape.rows, shape.length, shape.measurementRows, shape.measurementLength,
                shape.rowsPerPartition}) {
            if (v < 1) {
                throw new IllegalArgumentException("row counts and lengths must be at least 1, got " + v);
            }
        }
        long budgetBytes = ByteSize.parse(budget, "--budget");
        ModelArchitecture arch = readArchitecture(model);
        MemoryPlanner planner = new MemoryPlanner(arch, budgetBytes, DeviceRates.H100);
        PrintWriter out = spec.commandLine().getOut();
        out.printf(Locale.ROOT, "plan for %s: %d layers, hidden %d, intermediate %d; budget per task %s%n", model,
                arch.numLayers(), arch.hiddenSize(), arch.intermediateSize(), TaskPlan.bytes(budgetBytes));
        List<Pass> passes = new ArrayList<>();
        if (!measured) {
            Pass p = new Pass("measurement (" + shape.measurementRows + " rows × " + shape.measurementLength
                    + " tokens)");
            for (LayerSpec layer : arch.layers()) {
                for (BlockSpec b : layer.blocks()) {
                    p.add(layer, planner.measureBlock(b, BlockMeasurement.table(b), shape.measurementRows,
                            shape.measurementLength));
                }
            }
            passes.add(p);
        }
        for (double bpw : targets) {
            Pass p = new Pass(String.format(Locale.ROOT, "quantization %.2f bpw (%d rows × %d tokens)", bpw,
                    shape.rows, shape.length));
            for (LayerSpec layer : arch.layers()) {
                for (BlockSpec b : layer.blocks()) {
                    p.add(layer, planner.quantizeBlock(b, shape.rows, shape.length));
                    for (int r0 = 0; r0 < shape.rows; r0 += shape.rowsPerPartition) {
                        p.add(layer, planner.forwardPartition(b, Math.min(shape.rowsPerPartition, shape.rows - r0),
                                shape.length));
                    }
                }
            }
            passes.add(p);
        }
        double total = 0;
        long peak = 0;
        for (Pass p : passes) {
            out.println();
            out.println(p.name + ":");
            // identical tasks in a row (a layer's forward partitions) print once, with their count
            String previous = null;
            int repeats = 0;
            for (Pass.Entry e : p.entries) {
                if (!all && e.layer != 0) {
                    continue;
                }
                String line = e.plan.render();
                if (line.equals(previous)) {
                    repeats++;
                    continue;
                }
                printRepeated(out, previous, repeats);
                previous = line;
                repeats = 1;
            }
            printRepeated(out, previous, repeats);
            out.printf(Locale.ROOT, "  %d tasks, largest peak %s, estimated %.1f s of device time%n",
                    p.entries.size(), TaskPlan.bytes(p.peak()), p.seconds());
            total += p.seconds();
            peak = Math.max(peak, p.peak());
        }
        out.printf(Locale.ROOT, "%nwhole job: largest task peak %s of %s; estimated %.1f s (%.2f h) of device time on"
                + " one GPU, divided by the GPUs that run tasks in parallel%n", TaskPlan.bytes(peak),
                TaskPlan.bytes(budgetBytes), total, total / 3600);
        out.flush();
        return 0;
    }

    private static void printRepeated(PrintWriter out, String line, int times) {
        if (line != null) {
            out.println("  " + line + (times > 1 ? " ×" + times : ""));
        }
    }

    private ModelArchitecture readArchitecture(String location) throws Exception {
        Path config = new Path(Storage.path(location), "config.json");
        FileSystem fs = Storage.fileSystem(config, storage.hadoopConfiguration());
        byte[] json;
        try (InputStream in = fs.open(config)) {
            json = in.readAllBytes();
        } catch (java.io.FileNotFoundException e) {
            throw new IllegalArgumentException(location + ": no config.json (not a Hugging Face model directory?)");
        }
        return ModelArchitecture.fromConfig(json, config.toString());
    }

    /** One pass's tasks, each with its layer. */
    private static final class Pass {
        record Entry(int layer, TaskPlan plan) {
        }

        final String name;
        final List<Entry> entries = new ArrayList<>();

        Pass(String name) {
            this.name = name;
        }

        void add(LayerSpec layer, TaskPlan plan) {
            entries.add(new Entry(layer.index(), plan));
        }

        long peak() {
            return entries.stream().mapToLong(e -> e.plan.peakBytes()).max().orElse(0);
        }

        double seconds() {
            return entries.stream().mapToDouble(e -> e.plan.seconds()).sum();
        }
    }
}
