package org.exl2spark.gpu;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CudaBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.example.ExampleWeights;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.TensorCoreGemm.Precision;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.pipeline.BlockQuantization;
import org.exl2spark.pipeline.BlockRunner;
import org.exl2spark.pipeline.HiddenStates;
import org.exl2spark.plan.DeviceRates;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.plan.TaskPlan;
import org.exl2spark.quant.BlockCandidate;
import org.exl2spark.quant.QParams;

/**
 * One decoder layer of the model {@code exl2 example --preset P} writes (default qwen1.5-110b: hidden 8192,
 * intermediate 49152; with {@code --model DIR} read from its safetensors as tasks read them, else drawn in memory by
 * {@link ExampleWeights}, the same values) measured and quantized
 * by the task code the Spark stages run ({@link BlockMeasurement}, {@link BlockQuantization}), in process, on
 * {@link CudaBackend} with the tasks' precision and a pool of the given budget. Each block is planned first
 * ({@link MemoryPlanner}: row chunk, dequantized weights held) and run as planned; prints each block's time, the
 * pool's peak against the plan's prediction (exit 1 if a peak exceeds it) and the ratio to ExLlamaV2's figures.
 *
 * <p>The block inputs are seeded Gaussian hidden states (the layer's real inputs would need the layers before it);
 * everything after them, Hessians included, comes from the blocks' own forwards.
 */
public final class LayerBenchmark {
    /** ExLlamaV2 0.2.x on the same shapes, H100 (issue 5): seconds per layer's measurement, attention and MLP. */
    private static final double EXLLAMA_ATTENTION = 29;
    private static final double EXLLAMA_MLP = 175;

    private LayerBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        LayerOptions o = LayerOptions.parse(args);
        long budget = o.budget();
        int measureRows = o.measurementRows();
        int quantRows = o.rows();
        int length = o.length();
        int partRows = o.rowsPerPartition();
        GpuContext ctx = LayerOptions.deviceOrExit();
        boolean within = true;
        try (WeightSource weights = o.weights()) {
            MemoryPlanner planner = new MemoryPlanner(weights.architecture(), budget, DeviceRates.H100);
            LayerSpec layer = weights.architecture().layer(o.layer());
            int hidden = weights.architecture().hiddenSize();
            System.out.println("device: " + ctx.device() + "; budget " + TaskPlan.bytes(budget) + "; measurement "
                    + measureRows + "×" + length + ", quantization " + quantRows + "×" + length + " tokens");
            HiddenStates measureInput = states(measureRows, length, hidden, 1);
            double measured = 0;
            Map<String, Map<String, QParams>> chosen = new LinkedHashMap<>();
            for (BlockSpec block : layer.blocks()) {
                TaskPlan plan = planner.measureBlock(block, BlockMeasurement.table(block), measureRows, length);
                System.out.println("\nplan: " + plan.render());
                try (CudaBackend backend = new CudaBackend(ctx, budget, Precision.TF32X3)) {
                    Transformer transformer = new Transformer(weights.architecture(), backend);
                    BlockRunner runner = new BlockRunner(transformer, plan.rowChunk());
                    timeOneForward(transformer, runner, weights, block, measureInput);
                    BlockMeasurement m = new BlockMeasurement(runner);
                    long t0 = System.nanoTime();
                    List<BlockCandidate> candidates = m.measure(weights, block, measureInput, plan.dequantSlots(),
                            plan.residentStates());
                    ctx.synchronize();
                    double s = (System.nanoTime() - t0) / 1e9;
                    measured += s;
                    within &= report("measure", block, s, backend, plan,
                            block.kind() == BlockSpec.Kind.ATTENTION ? EXLLAMA_ATTENTION : EXLLAMA_MLP);
                    BlockCandidate best = candidates.get(candidates.size() / 2);
                    System.out.printf(Locale.ROOT, "  %d candidates, e.g. %s: accuracy %.6f%n", candidates.size(),
                            best.projections().values().iterator().next(), best.accuracy());
                    chosen.put(block.key(), best.projections());
                }
            }
            List<HiddenStates> parts = new ArrayList<>();
            for (int r0 = 0; r0 < quantRows; r0 += partRows) {
                parts.add(states(Math.min(partRows, quantRows - r0), length, hidden, 2 + r0));
            }
            double quantized = 0;
            for (BlockSpec block : layer.blocks()) {
                TaskPlan plan = planner.quantizeBlock(block, quantRows, length);
                System.out.println("\nplan: " + plan.render());
                try (CudaBackend backend = new CudaBackend(ctx, budget, Precision.TF32X3)) {
                    BlockRunner runner = new BlockRunner(new Transformer(weights.architecture(), backend),
                            plan.rowChunk());
                    timeHessianForward(ctx, runner, weights, block, parts);
                    BlockQuantization q = new BlockQuantization(runner);
                    long t0 = System.nanoTime();
                    var linears = q.quantize(weights, block, chosen.get(block.key()), parts);
                    ctx.synchronize();
                    double s = (System.nanoTime() - t0) / 1e9;
                    quantized += s;
                    within &= report("quantize", block, s, backend, plan, Double.NaN);
                    System.out.println("  " + linears.size() + " EXL2 linears written, settings of the measurement's"
                            + " middle candidate");
                }
            }
            System.out.printf(Locale.ROOT, "%nLAYER: measurement %.1f s (ExLlamaV2 %.0f s: %.1f× faster),"
                    + " quantization %.1f s; every peak within its plan: %s%n", measured,
                    EXLLAMA_ATTENTION + EXLLAMA_MLP, (EXLLAMA_ATTENTION + EXLLAMA_MLP) / measured, quantized,
                    within ? "yes" : "NO");
        }
        System.exit(within ? 0 : 1);
    }

    /**
     * What the measurement's parts cost apart: loading the block (reading the shards with {@code --model}, else
     * drawing the example's weights) and one forward over the calibration rows (the measurement runs one per candidate and one reference),
     * and one candidate's scoring as the measurement runs it (states and error on the device).
     */
    private static void timeOneForward(Transformer transformer, BlockRunner runner, WeightSource weights,
            BlockSpec block, HiddenStates input) throws Exception {
        long t0 = System.nanoTime();
        try (Transformer.BlockWeights w = transformer.loadBlock(weights, block)) {
            double load = (System.nanoTime() - t0) / 1e9;
            runner.forward(input, w, LinearInputObserver.NONE);
            transformer.backend().download(w.norm());
            long t1 = System.nanoTime();
            HiddenStates out = runner.forward(input, w, LinearInputObserver.NONE);
            double forward = (System.nanoTime() - t1) / 1e9;
            long t2 = System.nanoTime();
            runner.relativeErrorSums(input, out, List.of(w), List.of(""));
            double scored = (System.nanoTime() - t2) / 1e9;
            System.out.printf(Locale.ROOT, "  load block %.1f s; one reference forward over %d×%d tokens %.2f s"
                    + " (incl. host copies); one candidate scored (fast linears, error on the device) %.2f s%n", load,
                    input.rows(), input.tokens(), forward, scored);
            timeHalfWeightScoring(transformer, runner, w, input, out);
        }
    }

    /**
     * One candidate scored as the measurement scores it now: fp16 weights (the block's own, rounded), the states
     * already on the device (resident), so only its forward and error count.
     */
    private static void timeHalfWeightScoring(Transformer transformer, BlockRunner runner,
            Transformer.BlockWeights w, HiddenStates input, HiddenStates reference) {
        var backend = transformer.backend();
        List<Transformer.LinearWeights> halfLinears = new ArrayList<>();
        try (BlockRunner.ScoringStates states = runner.scoringStates(input, reference, true)) {
            for (Transformer.LinearWeights l : w.linears()) {
                var half = backend.halfZeros(l.weight().shape());
                backend.roundToHalf(l.weight(), half);
                halfLinears.add(new Transformer.LinearWeights(l.spec(), half, l.bias()));
            }
            Transformer.BlockWeights halfBlock = new Transformer.BlockWeights(w.spec(), w.norm(), halfLinears);
            long t0 = System.nanoTime();
            runner.relativeErrorSums(states, List.of(halfBlock), List.of(""));
            double scored = (System.nanoTime() - t0) / 1e9;
            System.out.printf(Locale.ROOT, "  one candidate scored with fp16 weights, states on the device %.2f s%n",
                    scored);
        } finally {
            halfLinears.forEach(l -> l.weight().close());
        }
    }

    /**
     * The quantization pass's Hessian forward apart, as BlockQuantization runs it (FAST linears, up to the output
     * projection): the block loaded from the weights, then the forward over every part with the fp16 Grams, then
     * without them.
     */
    private static void timeHessianForward(GpuContext ctx, BlockRunner runner, WeightSource weights, BlockSpec block,
            List<HiddenStates> parts) throws Exception {
        Transformer transformer = runner.transformer();
        Backend backend = transformer.backend();
        long t0 = System.nanoTime();
        try (Transformer.BlockWeights w = transformer.loadBlock(weights, block);
                Backend.ModeScope fast = backend.linearMode(Backend.LinearMode.FAST)) {
            ctx.synchronize();
            long t1 = System.nanoTime();
            Map<String, Tensor> grams = new LinkedHashMap<>();
            LinearInputObserver gram = (linears, input) -> backend.accumulateHalfGram(input, grams.computeIfAbsent(
                    linears.get(0).key(), k -> backend.zeros(input.cols(), input.cols())));
            for (HiddenStates part : parts) {
                runner.observe(part, w, gram);
            }
            ctx.synchronize();
            long t2 = System.nanoTime();
            grams.values().forEach(Tensor::close);
            for (HiddenStates part : parts) {
                runner.observe(part, w, LinearInputObserver.NONE);
            }
            ctx.synchronize();
            long t3 = System.nanoTime();
            System.out.printf(Locale.ROOT, "  load block %.1f s; Hessian forward (FAST linears, fp16 Grams) %.2f s,"
                    + " of which the forward alone %.2f s%n", (t1 - t0) / 1e9, (t2 - t1) / 1e9, (t3 - t2) / 1e9);
        }
    }

    private static boolean report(String what, BlockSpec block, double seconds, CudaBackend backend, TaskPlan plan,
            double exllama) {
        long peak = backend.memory().peak();
        boolean within = peak <= plan.peakBytes();
        System.out.printf(Locale.ROOT, "%s %s: %.1f s%s; device peak %s, predicted %s: %s%n", what, block.key(),
                seconds, Double.isNaN(exllama) ? "" : String.format(Locale.ROOT, " (ExLlamaV2 %.0f s: %.1f× faster)",
                        exllama, exllama / seconds), TaskPlan.bytes(peak), TaskPlan.bytes(plan.peakBytes()),
                within ? "measured ≤ predicted" : "OVER THE PREDICTION");
        return within;
    }

    /** Seeded Gaussian hidden states [rows × tokens × hidden]. */
    private static HiddenStates states(int rows, int tokens, int hidden, long seed) {
        float[] data = new float[Math.multiplyExact(Math.multiplyExact(rows, tokens), hidden)];
        IntStream.range(0, rows * tokens).parallel().forEach(t -> {
            SplittableRandom r = new SplittableRandom(seed * 1_000_003L + t);
            for (int j = 0; j < hidden; j++) {
                data[t * hidden + j] = (float) r.nextGaussian();
            }
        });
        return new HiddenStates(data, rows, tokens, hidden);
    }
}
