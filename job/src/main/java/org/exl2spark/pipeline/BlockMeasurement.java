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
 * projection but the output one share the forward up to it (BlockRunner#relativeErrorSums).
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
        return measure(weights, block, input, Integer.MAX_VALUE);
    }

    /**
     * Measures with at most {@code dequantSlots} dequantized projection weights held at once (the memory planner's
     * choice on a device; at least the block's projection count). With room for every distinct setting, all GPTQ
     * runs go first, in parallel; with less, candidates are evaluated in order and a setting evicted earlier is
     * quantized again. Either way the candidates' scores are the same.
     */
    public List<BlockCandidate> measure(WeightSource weights, BlockSpec block, HiddenStates input, int dequantSlots)
            throws IOException {
        List<Map<String, QParams>> table = table(block);
        if (dequantSlots < block.linears().size()) {
            throw new IllegalArgumentException(block.key() + ": " + dequantSlots + " dequantized-weight slots, a"
                    + " candidate needs " + block.linears().size());
        }
        try (BlockWeights original = transformer.loadBlock(weights, block);
                BlockHessians hessians = new BlockHessians(backend)) {
            HiddenStates reference = runner.forward(input, original, hessians);
            Map<String, Tensor> dequantized = new HashMap<>();
            try {
                Map<String, GptqJob> jobs = new LinkedHashMap<>();
                for (LinearSpec l : block.linears()) {
                    AdaptiveGptq.Preparation<Tensor> prep = hessians.preparation(l, input.rows());
                    Tensor w = original.linear(l.shortName()).weight();
                    for (Map<String, QParams> row : table) {
                        QParams qp = row.get(l.shortName());
                        jobs.putIfAbsent(MemoryPlanner.settingKey(l, qp), new GptqJob(l, w, prep, qp));
                    }
                }
                DequantCache<String> held = new DequantCache<>(Math.min(dequantSlots, jobs.size()));
                if (dequantSlots >= jobs.size()) {
                    // every distinct (projection, setting) once: independent GPTQ runs, in parallel on the CPU's
                    // cores; a GPU queues them on one stream anyway
                    jobs.forEach((key, job) -> dequantized.put(key, backend.zeros(job.linear().outFeatures(),
                            job.linear().inFeatures())));
                    var runs = backend instanceof CpuBackend ? jobs.entrySet().parallelStream()
                            : jobs.entrySet().stream();
                    runs.forEach(e -> e.getValue().run(backend, dequantized.get(e.getKey())));
                    jobs.keySet().forEach(held::put);
                }
                // with every setting held, all candidates are scored together, sharing the forward up to the output
                // projection among those with the same other settings; otherwise each is scored while its weights
                // are held (the same numbers either way)
                boolean allHeld = dequantSlots >= jobs.size();
                List<BlockWeights> candidates = new ArrayList<>();
                List<String> sharedKeys = new ArrayList<>();
                double[] errorSums = new double[table.size()];
                for (int c = 0; c < table.size(); c++) {
                    Map<String, QParams> row = table.get(c);
                    List<String> needed = new ArrayList<>();
                    for (LinearSpec l : block.linears()) {
                        needed.add(MemoryPlanner.settingKey(l, row.get(l.shortName())));
                    }
                    for (String key : needed) {
                        if (!held.touch(key)) {
                            String evicted = held.evictFor(needed);
                            if (evicted != null) {
                                dequantized.remove(evicted).close();
                            }
                            GptqJob job = jobs.get(key);
                            Tensor dq = backend.zeros(job.linear().outFeatures(), job.linear().inFeatures());
                            dequantized.put(key, dq);
                            held.put(key);
                            job.run(backend, dq);
                        }
                    }
                    List<LinearWeights> linears = new ArrayList<>();
                    StringBuilder shared = new StringBuilder();
                    for (LinearSpec l : block.linears()) {
                        String setting = MemoryPlanner.settingKey(l, row.get(l.shortName()));
                        linears.add(new LinearWeights(l, dequantized.get(setting), original.linear(l.shortName()).bias()));
                        if (!l.shortName().equals(block.outputProjection())) {
                            shared.append(setting).append(';');
                        }
                    }
                    // not closed: it borrows the original norm and biases and the cached dequantized weights
                    BlockWeights candidate = new BlockWeights(block, original.norm(), linears);
                    if (allHeld) {
                        candidates.add(candidate);
                        sharedKeys.add(shared.toString());
                    } else {
                        errorSums[c] = runner.relativeErrorSums(input, reference, List.of(candidate),
                                List.of(shared.toString()))[0];
                    }
                }
                if (allHeld) {
                    errorSums = runner.relativeErrorSums(input, reference, candidates, sharedKeys);
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
            } finally {
                dequantized.values().forEach(Tensor::close);
            }
        }
    }

    /** One GPTQ run of the measurement: a projection quantized with one setting into its dequantized weight. */
    private record GptqJob(LinearSpec linear, Tensor weight, AdaptiveGptq.Preparation<Tensor> prep, QParams qp) {
        void run(Backend backend, Tensor dequantized) {
            AdaptiveGptq.dequantize(backend, weight, prep, qp, dequantized);
        }
    }
}
