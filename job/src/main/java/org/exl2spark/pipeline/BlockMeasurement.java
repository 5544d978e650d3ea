package org.exl2spark.pipeline;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.Transformer.LinearWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.quant.AdaptiveGptq;
import org.exl2spark.quant.BlockCandidate;
import org.exl2spark.quant.Candidates;
import org.exl2spark.quant.GptqResult;
import org.exl2spark.quant.QParams;

/**
 * The measurement of one block (EXL2-SPEC D), independent of Spark: run the original block over the reference-path
 * states once to collect each linear input's Hessian and the reference outputs; quantize every distinct setting of
 * every projection with GPTQ; then run the block with each candidate's dequantized weights and score it by
 * {@code 1 − mean relative Frobenius error} of the block output.
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
        List<Map<String, QParams>> table = table(block);
        try (BlockWeights original = transformer.loadBlock(weights, block);
                BlockHessians hessians = new BlockHessians(backend)) {
            HiddenStates reference = runner.forward(input, original, hessians);
            Map<String, Tensor> dequantized = new HashMap<>();
            try {
                // every distinct (projection, setting) once, in parallel: they are independent GPTQ runs
                Map<String, GptqJob> jobs = new LinkedHashMap<>();
                for (LinearSpec l : block.linears()) {
                    float[] w = weights.linearWeight(l);
                    AdaptiveGptq.Preparation prep = hessians.preparation(l, input.rows());
                    for (Map<String, QParams> row : table) {
                        QParams qp = row.get(l.shortName());
                        jobs.putIfAbsent(l.shortName() + "|" + qp.describe(), new GptqJob(l, w, prep, qp));
                    }
                }
                Map<String, float[]> results = new java.util.concurrent.ConcurrentHashMap<>();
                jobs.entrySet().parallelStream().forEach(e -> results.put(e.getKey(), e.getValue().run()));
                for (Map.Entry<String, GptqJob> e : jobs.entrySet()) {
                    LinearSpec l = e.getValue().linear();
                    dequantized.put(e.getKey(), backend.upload(results.get(e.getKey()), l.outFeatures(), l.inFeatures()));
                }
                List<BlockWeights> candidates = new ArrayList<>();
                List<String> sharedKeys = new ArrayList<>();
                for (Map<String, QParams> row : table) {
                    List<LinearWeights> linears = new ArrayList<>();
                    StringBuilder shared = new StringBuilder();
                    for (LinearSpec l : block.linears()) {
                        String setting = l.shortName() + "|" + row.get(l.shortName()).describe();
                        linears.add(new LinearWeights(l, dequantized.get(setting), original.linear(l.shortName()).bias()));
                        if (!l.shortName().equals(block.outputProjection())) {
                            shared.append(setting).append(';');
                        }
                    }
                    // not closed: it borrows the original norm and biases and the cached dequantized weights
                    candidates.add(new BlockWeights(block, original.norm(), linears));
                    sharedKeys.add(shared.toString());
                }
                double[] errorSums = runner.relativeErrorSums(input, reference, candidates, sharedKeys);
                List<BlockCandidate> out = new ArrayList<>();
                for (int c = 0; c < table.size(); c++) {
                    Map<String, QParams> projections = new LinkedHashMap<>();
                    long bits = 0;
                    for (LinearSpec l : block.linears()) {
                        QParams qp = table.get(c).get(l.shortName());
                        projections.put(l.shortName(), qp);
                        bits += qp.totalBits(l.inFeatures(), l.outFeatures(), l.hasBias());
                    }
                    double error = errorSums[c] / input.rows();
                    out.add(new BlockCandidate(Math.max(1e-6, 1 - error), bits, projections));
                }
                return out;
            } finally {
                dequantized.values().forEach(Tensor::close);
            }
        }
    }

    /** One GPTQ run of the measurement: a projection quantized with one setting. */
    private record GptqJob(LinearSpec linear, float[] weight, AdaptiveGptq.Preparation prep, QParams qp) {
        float[] run() {
            return toHfLayout(AdaptiveGptq.quantize(weight, (int) linear.outFeatures(), (int) linear.inFeatures(), prep, qp));
        }
    }

    /** GPTQ's dequantized [in × out] result as a Hugging Face weight [out × in]. */
    static float[] toHfLayout(GptqResult r) {
        int rows = r.rows();
        int cols = r.columns();
        float[] src = r.dequantized();
        float[] out = new float[src.length];
        for (int k = 0; k < rows; k++) {
            for (int n = 0; n < cols; n++) {
                out[n * rows + k] = src[k * cols + n];
            }
        }
        return out;
    }
}
