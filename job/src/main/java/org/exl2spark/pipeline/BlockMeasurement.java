package org.exl2spark.pipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.Transformer.LinearWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.plan.DequantCache;
import org.exl2spark.plan.MemoryPlanner;
import org.exl2spark.quant.AdaptiveGptq;
import org.exl2spark.quant.BlockCandidate;
import org.exl2spark.quant.Candidates;
import org.exl2spark.quant.QParams;

/**
 * The measurement of one block (EXL2-SPEC D), independent of Spark: run the original block over the reference-path
 * states once to collect each linear input's Hessian and the reference outputs; quantize every distinct setting of
 * every projection with GPTQ; then run the block with each candidate's dequantized weights and score it by
 * {@code 1 − mean relative Frobenius error} of the block output. Candidates with the same settings for every
 * projection but the output one share the forward up to it when scored in one pass (BlockRunner#relativeErrorSums).
 */
public final class BlockMeasurement {
    private final BlockRunner runner;
    private final Transformer transformer;
    private final Backend backend;

    public BlockMeasurement(BlockRunner runner) {
        this.runner = runner;
        this.transformer = runner.transformer();
        this.backend = transformer.backend();
    }

    /** The candidate table ExLlamaV2 measures for a block of this kind. */
    public static List<Map<String, QParams>> table(BlockSpec block) {
        return block.kind() == BlockSpec.Kind.ATTENTION ? Candidates.ATTENTION : Candidates.MLP;
    }

    public List<BlockCandidate> measure(WeightSource weights, BlockSpec block, HiddenStates input) throws IOException {
        return measure(weights, block, input, Integer.MAX_VALUE, false);
    }

    /** {@link #measure(WeightSource, BlockSpec, HiddenStates, int, boolean)} uploading the states for each pass. */
    public List<BlockCandidate> measure(WeightSource weights, BlockSpec block, HiddenStates input, int dequantSlots)
            throws IOException {
        return measure(weights, block, input, dequantSlots, false);
    }

    /**
     * Measures with at most {@code dequantSlots} dequantized projection weights held at once (the memory planner's
     * choice on a device; at least the block's projection count), fp16 tensors that only the candidates' FAST
     * linears read. Candidates are scored in the planner's passes ({@link MemoryPlanner#scoringPasses}): the
     * settings a pass needs are quantized unless held (a setting evicted earlier is quantized again), then its
     * candidates are scored together. With {@code residentStates} the input and reference states stay on the device
     * for every pass; otherwise they go up once per pass. The candidates' scores do not depend on either choice.
     */
    public List<BlockCandidate> measure(WeightSource weights, BlockSpec block, HiddenStates input, int dequantSlots,
            boolean residentStates) throws IOException {
        List<Map<String, QParams>> table = table(block);
        if (dequantSlots < block.linears().size()) {
            throw new IllegalArgumentException(block.key() + ": " + dequantSlots + " dequantized-weight slots, a"
                    + " candidate needs " + block.linears().size());
        }
        try (BlockWeights original = transformer.loadBlock(weights, block);
                BlockHessians hessians = new BlockHessians(backend)) {
            HiddenStates reference = runner.forward(input, original, hessians);
            Map<String, Tensor> dequantized = new HashMap<>();
            Map<String, GptqJob> jobs = new LinkedHashMap<>();
            for (LinearSpec l : block.linears()) {
                AdaptiveGptq.Preparation<Tensor> prep = hessians.preparation(l, input.rows());
                Tensor w = original.linear(l.shortName()).weight();
                for (Map<String, QParams> row : table) {
                    QParams qp = row.get(l.shortName());
                    jobs.putIfAbsent(MemoryPlanner.settingKey(l, qp), new GptqJob(l, w, prep, qp));
                }
            }
            int slots = Math.min(dequantSlots, jobs.size());
            DequantCache<String> held = new DequantCache<>(slots);
            double[] errorSums = new double[table.size()];
            try (BlockRunner.ScoringStates states = runner.scoringStates(input, reference, residentStates)) {
                for (List<Integer> pass : MemoryPlanner.scoringPasses(block, table, slots)) {
                    List<String> needed = MemoryPlanner.passSettings(block, table, pass);
                    List<String> missing = new ArrayList<>();
                    for (String key : needed) {
                        if (!held.touch(key)) {
                            String evicted = held.evictFor(needed);
                            if (evicted != null) {
                                dequantized.remove(evicted).close();
                            }
                            GptqJob job = jobs.get(key);
                            dequantized.put(key, backend.halfZeros(job.linear().outFeatures(),
                                    job.linear().inFeatures()));
                            held.put(key);
                            missing.add(key);
                        }
                    }
                    // independent GPTQ runs: in parallel on the CPU's cores; a GPU queues them on one stream anyway
                    var runs = backend instanceof CpuBackend ? missing.parallelStream() : missing.stream();
                    runs.forEach(key -> jobs.get(key).run(backend, dequantized.get(key)));
                    List<BlockWeights> candidates = new ArrayList<>();
                    List<String> sharedKeys = new ArrayList<>();
                    for (int c : pass) {
                        candidates.add(candidate(block, original, table.get(c), dequantized));
                        sharedKeys.add(sharedKey(block, table.get(c)));
                    }
                    double[] sums = runner.relativeErrorSums(states, candidates, sharedKeys);
                    for (int i = 0; i < pass.size(); i++) {
                        errorSums[pass.get(i)] = sums[i];
                    }
                }
            } finally {
                dequantized.values().forEach(Tensor::close);
            }
            List<BlockCandidate> out = new ArrayList<>();
            for (int c = 0; c < table.size(); c++) {
                Map<String, QParams> projections = new LinkedHashMap<>();
                long bits = 0;
                for (LinearSpec l : block.linears()) {
                    QParams qp = table.get(c).get(l.shortName());
                    projections.put(l.shortName(), qp);
                    bits += qp.totalBits(l.inFeatures(), l.outFeatures(), l.hasBias());
                }
                out.add(new BlockCandidate(Math.max(1e-6, 1 - errorSums[c] / input.rows()), bits, projections));
            }
            return out;
        }
    }

    /**
     * A candidate's block: the original norm and biases with its dequantized weights. Not to be closed: it borrows
     * them all.
     */
    private static BlockWeights candidate(BlockSpec block, BlockWeights original, Map<String, QParams> row,
            Map<String, Tensor> dequantized) {
        List<LinearWeights> linears = new ArrayList<>();
        for (LinearSpec l : block.linears()) {
            String setting = MemoryPlanner.settingKey(l, row.get(l.shortName()));
            linears.add(new LinearWeights(l, dequantized.get(setting), original.linear(l.shortName()).bias()));
        }
        return new BlockWeights(block, original.norm(), linears);
    }

    /** Equal for candidates whose settings agree on every projection but the output one (their shared forward). */
    private static String sharedKey(BlockSpec block, Map<String, QParams> row) {
        StringBuilder shared = new StringBuilder();
        for (LinearSpec l : block.linears()) {
            if (!l.shortName().equals(block.outputProjection())) {
                shared.append(MemoryPlanner.settingKey(l, row.get(l.shortName()))).append(';');
            }
        }
        return shared.toString();
    }

    /** One GPTQ run of the measurement: a projection quantized with one setting into its dequantized weight. */
    private record GptqJob(LinearSpec linear, Tensor weight, AdaptiveGptq.Preparation<Tensor> prep, QParams qp) {
        void run(Backend backend, Tensor dequantized) {
            AdaptiveGptq.dequantize(backend, weight, prep, qp, dequantized);
        }
    }
}
