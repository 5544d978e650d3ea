package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Optional;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.Backend;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.pipeline.JobDirectory.CalibrationSet;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.plan.TaskPlan;
import org.exl2spark.quant.BlockCandidate;
import org.exl2spark.quant.Measurement;

/**
 * Pass 3, measurement: one task per (layer, block) not yet measured, all of them in one Spark job since they are
 * independent. A task reads the reference states entering its layer, recomputes the MLP's input with the original
 * attention where needed, measures every candidate (BlockMeasurement) and writes {@code meas/layer-L.<block>.json}.
 * The driver then assembles measurement.json.
 */
final class MeasurePass {
    /** ExLlamaV2 aborts when no candidate of a block reaches this accuracy: the calibration or model is broken. */
    static final double MIN_BEST_ACCURACY = 0.1;

    private MeasurePass() {
    }

    static Measurement run(Stages stages, JobContext ctx, JobDirectory job, ModelArchitecture arch, int rows,
            PrintStream log) throws IOException {
        List<Tasks.BlockWork> todo = new ArrayList<>();
        int total = 0;
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                total++;
                if (!job.exists(job.measurementRecord(b))) {
                    todo.add(new Tasks.BlockWork(b.layer(), b.kind()));
                }
            }
        }
        if (todo.size() < total) {
            log.printf("measure: %d of %d blocks already measured, skipped%n", total - todo.size(), total);
        }
        List<Tasks.MeasureReport> reports = stages.run("measure", "measure " + todo.size() + " blocks", todo,
                w -> measure(ctx, rows, w));
        for (Tasks.MeasureReport r : reports) {
            log.printf(Locale.ROOT, "measured %s: best accuracy %.6f (%.1f s)%n", r.block(), r.bestAccuracy(),
                    r.seconds());
        }
        Map<String, List<BlockCandidate>> blocks = new LinkedHashMap<>();
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                List<BlockCandidate> list = Measurement.parseBlock(job.read(job.measurementRecord(b)),
                        job.measurementRecord(b).toString());
                double best = list.stream().mapToDouble(BlockCandidate::accuracy).max().orElse(0);
                if (best < MIN_BEST_ACCURACY) {
                    throw new ModelFormatException(Measurement.key(b) + ": best measured accuracy " + best
                            + " is below " + MIN_BEST_ACCURACY + "; the model or its calibration data is broken");
                }
                blocks.put(Measurement.key(b), list);
            }
        }
        Measurement m = new Measurement(blocks, Measurement.lastModuleIdx(arch));
        job.write(job.measurementJson(), m.toJson(arch));
        return m;
    }

    static Tasks.MeasureReport measure(JobContext ctx, int rows, Tasks.BlockWork w) throws IOException {
        long start = System.nanoTime();
        JobDirectory job = TaskResources.jobDirectory(ctx);
        Configuration conf = ctx.hadoopConf();
        WeightSource weights = TaskResources.sourceWeights(ctx);
        ModelArchitecture arch = weights.architecture();
        BlockSpec block = w.block(arch);
        try (Backend backend = TaskResources.backend()) {
            Transformer t = new Transformer(arch, backend);
            BlockRunner runner = new BlockRunner(t, ctx.rowsPerChunk());
            HiddenStates input = layerInput(t, weights, job, ctx, w.layer(), rows, conf);
            if (block.kind() == BlockSpec.Kind.MLP) {
                try (BlockWeights attention = t.loadBlock(weights, arch.layer(w.layer()).attention())) {
                    input = runner.forward(input, attention, LinearInputObserver.NONE);
                }
            }
            int slots = Integer.MAX_VALUE;
            boolean residentStates = false;
            Optional<MemoryPlanner> planner = TaskPlans.planner(backend, arch);
            if (planner.isPresent()) {
                TaskPlan plan = TaskPlans.logged(planner.get().measureBlock(block, BlockMeasurement.table(block),
                        input.rows(), input.tokens()));
                runner = new BlockRunner(t, plan.rowChunk());
                slots = plan.dequantSlots();
                residentStates = plan.residentStates();
            }
            List<BlockCandidate> candidates = new BlockMeasurement(runner).measure(weights, block, input, slots,
                    residentStates);
            job.write(job.measurementRecord(block), Measurement.blockJson(block, candidates));
            double best = candidates.stream().mapToDouble(BlockCandidate::accuracy).max().orElse(0);
            return new Tasks.MeasureReport(w.toString(), best, (System.nanoTime() - start) / 1e9);
        }
    }

    /** All measurement rows' reference states entering {@code layer} (layer 0: their embeddings, in one go). */
    private static HiddenStates layerInput(Transformer t, WeightSource weights, JobDirectory job, JobContext ctx,
            int layer, int rows, Configuration conf) throws IOException {
        if (layer == 0) {
            return StateStore.embed(t, weights, CalibrationRows.read(job.calibration(CalibrationSet.MEASURE), conf), 0,
                    rows);
        }
        List<HiddenStates> parts = new ArrayList<>();
        for (Tasks.Partition p : Tasks.Partition.of(rows, ctx.rowsPerPartition())) {
            parts.add(HiddenStates.read(job.referenceStates(layer, p.index()), conf));
        }
        return StateStore.concat(parts);
    }
}
