package org.exl2spark.pipeline;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.io.Half;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.quant.AdaptiveGptq;
import org.exl2spark.quant.Exl2Linear;
import org.exl2spark.quant.GptqResult;
import org.exl2spark.quant.QParams;

/**
 * The quantization of one block for one target (EXL2-SPEC G), independent of Spark: the original block runs over
 * the quantized-path states (up to its output projection, whose output no Hessian needs, with FAST linears) to
 * collect every Hessian of the block first, then each projection is quantized with the setting the optimizer chose
 * and packed as EXL2 tensors.
 */
public final class BlockQuantization {
    private final BlockRunner runner;
    private final Transformer transformer;
    private final Backend backend;

    public BlockQuantization(BlockRunner runner) {
        this.runner = runner;
        this.transformer = runner.transformer();
        this.backend = transformer.backend();
    }

    /** Quantized linears of {@code block} by module key, in the block's order. */
    public Map<String, Exl2Linear> quantize(WeightSource weights, BlockSpec block, Map<String, QParams> strategy,
            Iterable<HiddenStates> inputs) throws IOException {
        try (BlockWeights original = transformer.loadBlock(weights, block);
                BlockHessians hessians = new BlockHessians(backend)) {
            int rows = 0;
            // This forward only feeds the Hessians, which see its linear inputs rounded to fp16 anyway, and the
            // checkpoint's weights are fp16 values: FAST (fp16 operands, fp32 accumulation) changes a linear's output
            // only by rounding its input to fp16 first, as ExLlamaV2's fp16 forward does (EXL2-SPEC F.1).
            try (Backend.ModeScope fast = backend.linearMode(Backend.LinearMode.FAST)) {
                for (HiddenStates part : inputs) {
                    runner.observe(part, original, hessians);
                    rows += part.rows();
                }
            }
            Map<String, AdaptiveGptq.Preparation<Tensor>> preps = new LinkedHashMap<>();
            for (LinearSpec l : block.linears()) {
                if (strategy.get(l.shortName()) == null) {
                    throw new IllegalArgumentException(block.key() + ": the strategy has no setting for " + l.shortName());
                }
                preps.put(l.key(), hessians.preparation(l, rows));
            }
            Map<String, Exl2Linear> done = new java.util.concurrent.ConcurrentHashMap<>();
            // independent once the Hessians exist: in parallel on the CPU's cores, one after another on a GPU's stream
            var linears = backend instanceof CpuBackend ? block.linears().parallelStream() : block.linears().stream();
            linears.forEach(l -> {
                try {
                    done.put(l.key(), quantizeLinear(weights, l, original.linear(l.shortName()).weight(),
                            preps.get(l.key()), strategy.get(l.shortName())));
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            Map<String, Exl2Linear> out = new LinkedHashMap<>();
            for (LinearSpec l : block.linears()) {
                out.put(l.key(), done.get(l.key()));
            }
            return out;
        }
    }

    /** The output head: its Hessian comes from the final-norm output of the quantized path (EXL2-SPEC G). */
    public Exl2Linear quantizeHead(WeightSource weights, QParams headParams, Iterable<HiddenStates> inputs)
            throws IOException {
        ModelArchitecture arch = transformer.architecture();
        LinearSpec head = arch.lmHead();
        int rows = 0;
        try (BlockHessians hessians = new BlockHessians(backend);
                Tensor norm = backend.upload(weights.norm(ModelArchitecture.FINAL_NORM), arch.hiddenSize())) {
            for (HiddenStates part : inputs) {
                try (Tensor h = backend.upload(part.data().clone(), part.rows(), part.tokens(), part.hidden());
                        Tensor x = backend.zeros(part.rows(), part.tokens(), part.hidden())) {
                    backend.rmsNorm(h, norm, (float) arch.rmsNormEps(), x);
                    hessians.accept(List.of(head), x);
                }
                rows += part.rows();
            }
            try (Tensor w = backend.upload(weights.linearWeight(head), head.outFeatures(), head.inFeatures())) {
                return quantizeLinear(weights, head, w, hessians.preparation(head, rows), headParams);
            }
        }
    }

    /** GPTQ of one linear whose weight is already on the backend, packed as EXL2 tensors with its fp16 bias. */
    private Exl2Linear quantizeLinear(WeightSource weights, LinearSpec l, Tensor weight,
            AdaptiveGptq.Preparation<Tensor> prep, QParams qp) throws IOException {
        GptqResult r = AdaptiveGptq.quantize(backend, weight, prep, qp, null);
        float[] bias = weights.bias(l);
        short[] biasHalf = null;
        if (bias != null) {
            biasHalf = new short[bias.length];
            for (int i = 0; i < bias.length; i++) {
                biasHalf[i] = Half.fromFloat(bias[i]);
            }
        }
        return r.toExl2(l.key(), biasHalf);
    }
}
