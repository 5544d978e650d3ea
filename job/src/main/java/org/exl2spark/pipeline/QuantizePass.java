package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.backend.Backend;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.pipeline.JobDirectory.CalibrationSet;
import org.exl2spark.pipeline.JobDirectory.StateStage;
import org.exl2spark.quant.Candidates;
import org.exl2spark.quant.Exl2Linear;
import org.exl2spark.quant.Measurement;
import org.exl2spark.quant.QParams;

/**
 * Pass 5, quantization of one target, layer after layer and block after block (EXL2-SPEC G): (a) one task gathers
 * the block's Hessians by running the original block over the quantized-path states, quantizes each projection
 * with the chosen setting and writes its EXL2 fragment {@code q/<bpw>/frag/<module>.safetensors}; (b) one task per
 * row partition runs the quantized block, writes the states the next block reads and reports ExLlamaV2's error.
 * Last, the output head is quantized from the final states. Finished fragments and state files are skipped.
 */
final class QuantizePass {
    static final String ERROR_SUM = "rfn_error_sum";
    static final String ERROR_ROWS = "rfn_error_rows";
    /**
     * The logged block error is measured on the first rows only (the partitions holding them), as ExLlamaV2 logs its
     * calibration perplexity over the first measurement rows: it needs a second, unquantized forward.
     */
    static final int ERROR_SAMPLE_ROWS = 16;

    private QuantizePass() {
    }

    static void run(Stages stages, JobContext ctx, JobDirectory job, ModelArchitecture arch, double bpw, int rows,
            int headBits, PrintStream log) throws IOException {
        String label = JobDirectory.bitrateLabel(bpw);
        List<Tasks.Partition> parts = Tasks.Partition.of(rows, ctx.rowsPerPartition());
        Configuration conf = ctx.hadoopConf();
        int skippedBlocks = 0;
        int skippedParts = 0;
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec block : layer.blocks()) {
                Tasks.BlockWork work = new Tasks.BlockWork(block.layer(), block.kind());
                if (fragmentsDone(job, bpw, block)) {
                    skippedBlocks++;
                } else {
                    stages.run("quantize " + label, "quantize " + label + " " + work, List.of(work),
                            w -> quantizeBlock(ctx, bpw, rows, w));
                }
                List<Tasks.PartitionWork> todo = new ArrayList<>();
                double errorSum = 0;
                int errorRows = 0;
                for (Tasks.Partition p : parts) {
                    Path out = output(job, bpw, block, p.index());
                    if (job.exists(out)) {
                        skippedParts++;
                        Map<String, String> meta = HiddenStates.metadata(out, conf);
                        errorSum += Double.parseDouble(meta.getOrDefault(ERROR_SUM, "0"));
                        errorRows += Integer.parseInt(meta.getOrDefault(ERROR_ROWS, "0"));
                    } else {
                        todo.add(new Tasks.PartitionWork(block.layer(), p));
                    }
                }
                BlockSpec.Kind kind = block.kind();
                List<Tasks.ForwardReport> reports = stages.run("quantize " + label,
                        "forward " + label + " " + work + " (quantized)", todo, w -> forwardBlock(ctx, bpw, kind, w));
                for (Tasks.ForwardReport r : reports) {
                    errorSum += r.errorSum();
                    errorRows += r.rows();
                }
                log.printf(Locale.ROOT, "%s %s: rfn_error %.6f (first %d rows)%n", label, work, errorSum / errorRows,
                        errorRows);
            }
        }
        if (job.exists(job.fragment(bpw, arch.lmHead().key()))) {
            skippedBlocks++;
        } else {
            stages.run("quantize " + label, "quantize " + label + " lm_head", List.of(arch.numLayers()),
                    l -> quantizeHead(ctx, bpw, rows, headBits));
        }
        if (skippedBlocks + skippedParts > 0) {
            log.printf("%s: %d quantized blocks and %d state partitions already done, skipped%n", label, skippedBlocks,
                    skippedParts);
        }
    }

    static boolean fragmentsDone(JobDirectory job, double bpw, BlockSpec block) throws IOException {
        for (LinearSpec l : block.linears()) {
            if (!job.exists(job.fragment(bpw, l.key()))) {
                return false;
            }
        }
        return true;
    }

    /** Where the states entering {@code block} live: layer input for attention, the attention's output for the MLP. */
    static Path input(JobDirectory job, double bpw, BlockSpec block, int part) {
        return block.kind() == BlockSpec.Kind.ATTENTION ? job.quantizedStates(bpw, block.layer(), StateStage.LAYER_INPUT, part)
                : job.quantizedStates(bpw, block.layer(), StateStage.MLP_INPUT, part);
    }

    static Path output(JobDirectory job, double bpw, BlockSpec block, int part) {
        return block.kind() == BlockSpec.Kind.ATTENTION ? job.quantizedStates(bpw, block.layer(), StateStage.MLP_INPUT, part)
                : job.quantizedStates(bpw, block.layer() + 1, StateStage.LAYER_INPUT, part);
    }

    /** The quantized-path states entering {@code block} for one partition (embeddings for layer 0's attention). */
    static HiddenStates readInput(Transformer t, WeightSource weights, JobDirectory job, double bpw, BlockSpec block,
            Tasks.Partition p, Configuration conf) throws IOException {
        if (block.kind() == BlockSpec.Kind.ATTENTION) {
            return StateStore.input(t, weights, job.calibration(CalibrationSet.QUANTIZE), input(job, bpw, block, p.index()),
                    block.layer(), p, conf);
        }
        return HiddenStates.read(input(job, bpw, block, p.index()), conf);
    }

    /** All partitions' inputs, read one at a time as they are consumed. */
    static Iterable<HiddenStates> inputs(Transformer t, WeightSource weights, JobDirectory job, double bpw,
            BlockSpec block, List<Tasks.Partition> parts, Configuration conf) {
        return () -> new Iterator<>() {
            private int next;

            @Override
            public boolean hasNext() {
                return next < parts.size();
            }

            @Override
            public HiddenStates next() {
                try {
                    return readInput(t, weights, job, bpw, block, parts.get(next++), conf);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }
        };
    }

    static Map<String, QParams> strategy(JobDirectory job, double bpw, BlockSpec block) throws IOException {
        Path file = job.strategy(bpw);
        return Measurement.parse(job.read(file), file.toString()).candidates(block).get(0).projections();
    }

    static Integer quantizeBlock(JobContext ctx, double bpw, int rows, Tasks.BlockWork w) throws IOException {
        JobDirectory job = TaskResources.jobDirectory(ctx);
        Configuration conf = ctx.hadoopConf();
        WeightSource weights = TaskResources.sourceWeights(ctx);
        ModelArchitecture arch = weights.architecture();
        BlockSpec block = w.block(arch);
        try (Backend backend = TaskResources.backend()) {
            Transformer t = new Transformer(arch, backend);
            Iterator<HiddenStates> parts = inputs(t, weights, job, bpw, block,
                    Tasks.Partition.of(rows, ctx.rowsPerPartition()), conf).iterator();
            // the first partition tells the row length the plan needs; it is then consumed like the others
            HiddenStates first = parts.next();
            int chunk = TaskPlans.planner(backend, arch).map(p -> TaskPlans.logged(p.quantizeBlock(block, rows,
                    first.tokens())).rowChunk()).orElse(ctx.rowsPerChunk());
            Iterable<HiddenStates> all = () -> new Iterator<>() {
                private boolean firstGiven;

                @Override
                public boolean hasNext() {
                    return !firstGiven || parts.hasNext();
                }

                @Override
                public HiddenStates next() {
                    if (!firstGiven) {
                        firstGiven = true;
                        return first;
                    }
                    return parts.next();
                }
            };
            BlockQuantization q = new BlockQuantization(new BlockRunner(t, chunk));
            Map<String, Exl2Linear> linears = q.quantize(weights, block, strategy(job, bpw, block), all);
            for (Map.Entry<String, Exl2Linear> e : linears.entrySet()) {
                writeFragment(job, bpw, e.getKey(), e.getValue());
            }
        }
        return block.linears().size();
    }

    static Tasks.ForwardReport forwardBlock(JobContext ctx, double bpw, BlockSpec.Kind kind, Tasks.PartitionWork w)
            throws IOException {
        JobDirectory job = TaskResources.jobDirectory(ctx);
        Configuration conf = ctx.hadoopConf();
        WeightSource weights = TaskResources.sourceWeights(ctx);
        ModelArchitecture arch = weights.architecture();
        BlockSpec block = new Tasks.BlockWork(w.layer(), kind).block(arch);
        try (Backend backend = TaskResources.backend()) {
            Transformer t = new Transformer(arch, backend);
            HiddenStates in = readInput(t, weights, job, bpw, block, w.partition(), conf);
            int chunk = TaskPlans.planner(backend, arch).map(p -> TaskPlans.logged(p.forwardPartition(block,
                    in.rows(), in.tokens())).rowChunk()).orElse(ctx.rowsPerChunk());
            BlockRunner runner = new BlockRunner(t, chunk);
            HiddenStates quantized;
            try (BlockWeights q = t.loadBlock(new FragmentWeights(weights, job, bpw, conf), block)) {
                quantized = runner.forward(in, q, LinearInputObserver.NONE);
            }
            double errorSum = 0;
            int errorRows = 0;
            if (w.partition().firstRow() < ERROR_SAMPLE_ROWS) {
                try (BlockWeights original = t.loadBlock(weights, block)) {
                    errorSum = BlockRunner.relativeErrorSum(quantized, runner.forward(in, original, LinearInputObserver.NONE));
                    errorRows = in.rows();
                }
            }
            quantized.write(job.fileSystem(), output(job, bpw, block, w.partition().index()),
                    Map.of(ERROR_SUM, Double.toString(errorSum), ERROR_ROWS, Integer.toString(errorRows)));
            return new Tasks.ForwardReport(errorSum, errorRows);
        }
    }

    static Integer quantizeHead(JobContext ctx, double bpw, int rows, int headBits) throws IOException {
        JobDirectory job = TaskResources.jobDirectory(ctx);
        Configuration conf = ctx.hadoopConf();
        WeightSource weights = TaskResources.sourceWeights(ctx);
        ModelArchitecture arch = weights.architecture();
        List<Tasks.Partition> parts = Tasks.Partition.of(rows, ctx.rowsPerPartition());
        try (Backend backend = TaskResources.backend()) {
            Transformer t = new Transformer(arch, backend);
            Iterable<HiddenStates> finalStates = () -> parts.stream().map(p -> {
                try {
                    return HiddenStates.read(job.quantizedStates(bpw, arch.numLayers(), StateStage.LAYER_INPUT,
                            p.index()), conf);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            }).iterator();
            Exl2Linear head = new BlockQuantization(new BlockRunner(t, ctx.rowsPerChunk()))
                    .quantizeHead(weights, Candidates.headParams(headBits), finalStates);
            writeFragment(job, bpw, arch.lmHead().key(), head);
        }
        return 1;
    }

    static void writeFragment(JobDirectory job, double bpw, String key, Exl2Linear linear) throws IOException {
        SafetensorsWriter.writeFile(job.fileSystem(), job.fragment(bpw, key), linear.tensorSpecs(), Map.of(),
                linear::writeTensor);
    }
}
