package org.exl2spark.gpu;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.exl2spark.example.ExampleWeights;
import org.exl2spark.backend.CudaGptq;
import org.exl2spark.kernels.Bytes;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.plan.DequantCache;
import org.exl2spark.plan.DeviceRates;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.plan.TaskPlan;
import org.exl2spark.quant.AdaptiveGptq;
import org.exl2spark.quant.GptqResult;
import org.exl2spark.quant.QParams;

/**
 * The GPU part of measuring and quantizing one decoder layer of the model {@code exl2 example --preset P} writes
 * (default qwen1.5-110b; its weights drawn in memory by {@link ExampleWeights}, the same values), through the planner and the GPTQ code the tasks use ({@link MemoryPlanner},
 * {@link AdaptiveGptq} over {@link CudaGptq}), in a device-memory pool with the task budget: per block the upload of
 * its fp32 weights, the Hessian accumulation, the in-place preparation of each Hessian, every GPTQ run of the
 * measurement (holding as many dequantized weights as the plan allows), then the quantization pass's Hessians and one
 * GPTQ run per linear with EXL2 packing. Prints the time of each step, kernel rates, and the pool's peak against the
 * plan's prediction (exit 1 if the peak exceeds it).
 *
 * <p>The step-by-step view of {@link LayerBenchmark}'s tasks, without their block forwards: the activations fed to the
 * Hessians are seeded Gaussians with a few dominant channels (one chunk, accumulated as many times as the
 * calibration has chunks), not a forward's output.
 */
public final class GptqStepsBenchmark {
    /** H100 ceilings the rates are compared with: fp32 non-tensor FLOP/s and the copy bandwidth GpuSelfTest measured. */
    private static final double FP32_PEAK = 60e12;

    private final GpuContext ctx;
    private final WeightSource weights;
    private final MemoryPlanner planner;
    private final long budget;
    private final int tokens;
    private final SplittableRandom random;
    private boolean overBudget;
    /** Seconds of the current task spent drawing the example's weights on the host (a real task reads them). */
    private double weightSeconds;

    private GptqStepsBenchmark(GpuContext ctx, WeightSource weights, long budget, int tokens, long seed) {
        this.ctx = ctx;
        this.weights = weights;
        this.budget = budget;
        this.tokens = tokens;
        this.planner = new MemoryPlanner(weights.architecture(), budget, DeviceRates.H100);
        this.random = new SplittableRandom(seed);
    }

    public static void main(String[] args) throws Exception {
        LayerOptions o = LayerOptions.parse(args);
        long budget = o.budget();
        int measureRows = o.measurementRows();
        int quantRows = o.rows();
        int length = o.length();
        int layer = o.layer();
        GpuContext ctx = LayerOptions.deviceOrExit();
        System.out.println("device: " + ctx.device() + ", free " + Bytes.format(ctx.memoryInfo()[0]) + "; budget "
                + TaskPlan.bytes(budget) + "; measurement " + measureRows + "×" + length + ", quantization "
                + quantRows + "×" + length + " tokens");
        try (WeightSource w = o.weights()) {
            GptqStepsBenchmark bench = new GptqStepsBenchmark(ctx, w, budget, length, 20261125L);
            LayerSpec spec = w.architecture().layer(layer);
            double measured = 0;
            double quantized = 0;
            for (BlockSpec block : spec.blocks()) {
                measured += bench.measure(block, measureRows);
            }
            for (BlockSpec block : spec.blocks()) {
                quantized += bench.quantize(block, quantRows);
            }
            System.out.printf(Locale.ROOT, "%nLAYER %d: measurement's GPU steps %.1f s (ExLlamaV2's whole measurement"
                    + " 204 s per layer), quantization's GPU steps %.1f s; every peak within its plan: %s%n", layer,
                    measured, quantized, bench.overBudget ? "NO" : "yes");
            System.exit(bench.overBudget ? 1 : 0);
        }
    }

    /** The measurement task's GPU steps for one block; returns their seconds. */
    private double measure(BlockSpec block, int rows) throws Exception {
        List<Map<String, QParams>> table = BlockMeasurement.table(block);
        TaskPlan plan = planner.measureBlock(block, table, rows, tokens);
        System.out.println("\n== measure " + block.key() + "\nplan: " + plan.render());
        long start = System.nanoTime();
        try (DeviceMemory memory = new DeviceMemory(ctx, budget)) {
            CudaGptq ops = new CudaGptq(memory);
            Map<String, DeviceMatrix> w = uploadWeights(memory, block);
            Map<String, AdaptiveGptq.Preparation<DeviceMatrix>> preps = hessians(ops, block, rows, plan.rowChunk());
            Map<String, DeviceMatrix> held = new LinkedHashMap<>();
            DequantCache<String> cache = new DequantCache<>(plan.dequantSlots());
            Map<String, double[]> runTimes = new LinkedHashMap<>();
            for (Map<String, QParams> row : table) {
                List<String> needed = new ArrayList<>();
                for (LinearSpec l : block.linears()) {
                    needed.add(MemoryPlanner.settingKey(l, row.get(l.shortName())));
                }
                for (LinearSpec l : block.linears()) {
                    String key = MemoryPlanner.settingKey(l, row.get(l.shortName()));
                    if (cache.touch(key)) {
                        continue;
                    }
                    String evicted = cache.evictFor(needed);
                    if (evicted != null) {
                        memory.free(held.remove(evicted).buffer());
                    }
                    DeviceMatrix dq = memory.matrix("dequantized " + key, l.outFeatures(), l.inFeatures());
                    held.put(key, dq);
                    cache.put(key);
                    long t0 = System.nanoTime();
                    AdaptiveGptq.dequantize(ops, w.get(l.shortName()), preps.get(groupKey(block, l)),
                            row.get(l.shortName()), dq);
                    ctx.synchronize();
                    double s = (System.nanoTime() - t0) / 1e9;
                    runTimes.computeIfAbsent(l.shortName(), k -> new double[2])[0] += s;
                    runTimes.get(l.shortName())[1]++;
                }
            }
            runTimes.forEach((name, t) -> {
                LinearSpec l = block.linear(name);
                double lazyFlops = (double) l.inFeatures() * l.inFeatures() * l.outFeatures();
                System.out.printf(Locale.ROOT, "  GPTQ %-10s %5d×%-5d: %2d runs, %.3f s each (lazy updates ≈%.1f TFLOP/s"
                        + " over the whole run, %.0f%% of fp32 peak)%n", name, l.inFeatures(), l.outFeatures(),
                        (int) t[1], t[0] / t[1], lazyFlops / (t[0] / t[1]) / 1e12,
                        100 * lazyFlops / (t[0] / t[1]) / FP32_PEAK);
            });
            return finish("measure", plan, memory, start);
        }
    }

    /** The quantization task's GPU steps for one block at 4 bits, group 128, packing included. */
    private double quantize(BlockSpec block, int rows) throws Exception {
        TaskPlan plan = planner.quantizeBlock(block, rows, tokens);
        System.out.println("\n== quantize " + block.key() + " (4 bits, groups of 128)\nplan: " + plan.render());
        QParams qp = QParams.of(128, new int[] {4}, new double[] {1});
        long start = System.nanoTime();
        try (DeviceMemory memory = new DeviceMemory(ctx, budget)) {
            CudaGptq ops = new CudaGptq(memory);
            Map<String, DeviceMatrix> w = uploadWeights(memory, block);
            Map<String, AdaptiveGptq.Preparation<DeviceMatrix>> preps = hessians(ops, block, rows, plan.rowChunk());
            for (LinearSpec l : block.linears()) {
                long t0 = System.nanoTime();
                GptqResult r = AdaptiveGptq.quantize(ops, w.get(l.shortName()), preps.get(groupKey(block, l)), qp,
                        null);
                double gptq = (System.nanoTime() - t0) / 1e9;
                long t1 = System.nanoTime();
                r.toExl2(l.key(), null);
                System.out.printf(Locale.ROOT, "  GPTQ %-10s %5d×%-5d: %.3f s (codes packed on the device and"
                        + " copied back included), EXL2 tensors (CPU) %.3f s%n",
                        l.shortName(), l.inFeatures(), l.outFeatures(), gptq, (System.nanoTime() - t1) / 1e9);
            }
            return finish("quantize", plan, memory, start);
        }
    }

    /** Prints the task's time without the host's weight drawing, and its peak against the plan; returns the time. */
    private double finish(String what, TaskPlan plan, DeviceMemory memory, long start) {
        ctx.synchronize();
        double seconds = (System.nanoTime() - start) / 1e9 - weightSeconds;
        weightSeconds = 0;
        boolean within = memory.peak() <= plan.peakBytes();
        overBudget |= !within;
        System.out.printf(Locale.ROOT, "%s %s: %.1f s (not counting the weights' drawing); device peak %s, predicted"
                + " %s: %s%n", what, plan.module(), seconds, TaskPlan.bytes(memory.peak()),
                TaskPlan.bytes(plan.peakBytes()), within ? "measured ≤ predicted" : "OVER THE PREDICTION");
        return seconds;
    }

    private Map<String, DeviceMatrix> uploadWeights(DeviceMemory memory, BlockSpec block) throws Exception {
        long t0 = System.nanoTime();
        long bytes = 0;
        Map<String, DeviceMatrix> w = new LinkedHashMap<>();
        for (LinearSpec l : block.linears()) {
            DeviceMatrix m = memory.matrix(l.key(), l.outFeatures(), l.inFeatures());
            m.upload(weights.linearWeight(l));
            w.put(l.shortName(), m);
            bytes += 4 * l.outFeatures() * l.inFeatures();
            if (l.hasBias()) {
                memory.matrix(l.key() + ".bias", 1, l.outFeatures()).upload(weights.bias(l));
            }
        }
        memory.matrix(block.normName(), 1, block.linears().get(0).inFeatures()).upload(weights.norm(block.normName()));
        weightSeconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "  weights: %s drawn (fp16 → fp32) and uploaded in %.1f s%n",
                Bytes.format(bytes), weightSeconds);
        return w;
    }

    /** Each input's Hessian from rows × tokens activations in chunks of the planned size, then its preparation. */
    private Map<String, AdaptiveGptq.Preparation<DeviceMatrix>> hessians(CudaGptq ops, BlockSpec block, int rows,
            int rowChunk) {
        Map<String, AdaptiveGptq.Preparation<DeviceMatrix>> preps = new LinkedHashMap<>();
        for (List<LinearSpec> group : MemoryPlanner.inputGroups(block)) {
            LinearSpec first = group.get(0);
            int n = Math.toIntExact(first.inFeatures());
            DeviceMatrix gram = ops.zeros(n, n);
            long chunkTokens = (long) rowChunk * tokens;
            DeviceMatrix x = ops.memory().matrix("activation chunk", chunkTokens, n);
            upload(x, activations(Math.toIntExact(Math.min(chunkTokens, 1 << 14)), n), n);
            ctx.synchronize();
            long t0 = System.nanoTime();
            for (int r0 = 0; r0 < rows; r0 += rowChunk) {
                long t = (long) Math.min(rowChunk, rows - r0) * tokens;
                ops.accumulateGram(x.block(0, 0, t, n), gram);
            }
            ctx.synchronize();
            double accumulate = (System.nanoTime() - t0) / 1e9;
            ops.release(x);
            long t1 = System.nanoTime();
            ops.finishHessian(gram, rows);
            AdaptiveGptq.Preparation<DeviceMatrix> prep = AdaptiveGptq.prepare(ops, gram, first.key());
            ctx.synchronize();
            double prepare = (System.nanoTime() - t1) / 1e9;
            double flops = (double) n * (n + 1) * rows * tokens;
            double factorFlops = 2.0 * n * n * (double) n / 3;
            System.out.printf(Locale.ROOT, "  Hessian %-10s n=%d: accumulate %.3f s (%.1f TFLOP/s, %.0f%% of fp32 peak);"
                    + " prepare (act order in place, damp, inverse factor) %.3f s (%.1f TFLOP/s as 2n³/3)%n",
                    first.shortName(), n, accumulate, flops / accumulate / 1e12, 100 * flops / accumulate / FP32_PEAK,
                    prepare, factorFlops / prepare / 1e12);
            for (LinearSpec l : group) {
                preps.put(groupKey(block, l), prep);
            }
        }
        return preps;
    }

    private static String groupKey(BlockSpec block, LinearSpec l) {
        for (List<LinearSpec> g : MemoryPlanner.inputGroups(block)) {
            if (g.contains(l)) {
                return g.get(0).key();
            }
        }
        throw new IllegalArgumentException(l.key() + " is not in " + block.key());
    }

    /** Seeded activations [tokens × n]: a shared component and a few dominant channels, like a layer's inputs. */
    private float[] activations(int rows, int n) {
        float[] mix = new float[n];
        for (int j = 0; j < n; j++) {
            mix[j] = random.nextDouble() < 0.05 ? 8f : 1f;
        }
        long seed = random.nextLong();
        float[] x = new float[Math.multiplyExact(rows, n)];
        IntStream.range(0, rows).parallel().forEach(t -> {
            SplittableRandom r = new SplittableRandom(seed + t);
            double common = r.nextGaussian();
            for (int j = 0; j < n; j++) {
                x[t * n + j] = (float) ((0.6 * common + r.nextGaussian()) * mix[j]);
            }
        });
        return x;
    }

    /** Fills every row of m by repeating the rows of {@code block} (its rows n wide). */
    private static void upload(DeviceMatrix m, float[] block, int n) {
        int blockRows = block.length / n;
        for (long r = 0; r < m.rows(); r += blockRows) {
            int count = (int) Math.min(blockRows, m.rows() - r);
            m.upload(r, count, block, 0);
        }
    }
}
