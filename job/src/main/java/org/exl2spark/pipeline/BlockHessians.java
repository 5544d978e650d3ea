package org.exl2spark.pipeline;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.quant.AdaptiveGptq;

/**
 * Collects, during a block's forward, the Gram matrix XᵀX of each distinct linear input on the backend (q/k/v share
 * one, gate/up share one), X rounded to fp16 values as ExLlamaV2's activations are, and turns each into GPTQ's
 * preparation (act order + inverse factor) once, in place.
 */
final class BlockHessians implements LinearInputObserver, AutoCloseable {
    private final Backend backend;
    private final Map<String, Tensor> grams = new LinkedHashMap<>();
    private final Map<String, String> groupOf = new LinkedHashMap<>();
    private final Map<String, AdaptiveGptq.Preparation<Tensor>> prepared = new LinkedHashMap<>();

    BlockHessians(Backend backend) {
        this.backend = backend;
    }

    @Override
    public void accept(List<LinearSpec> linears, Tensor input) {
        String group = linears.get(0).key();
        for (LinearSpec l : linears) {
            groupOf.put(l.key(), group);
        }
        long n = linears.get(0).inFeatures();
        Tensor gram = grams.computeIfAbsent(group, g -> backend.zeros(n, n));
        // ExLlamaV2's Hessians see its fp16 activations (EXL2-SPEC F.1); the input itself stays as it is
        backend.accumulateHalfGram(input, gram);
    }

    /** GPTQ preparation of the Hessian {@code (1/rows) Σ XᵀX} (EXL2-SPEC F.1) of the input {@code linear} reads. */
    AdaptiveGptq.Preparation<Tensor> preparation(LinearSpec linear, int rows) {
        String group = groupOf.get(linear.key());
        if (group == null) {
            throw new IllegalStateException(linear.key() + ": no input was observed for it");
        }
        return prepared.computeIfAbsent(group, g -> {
            // the Gram matrix becomes the preparation's inverse factor: one n × n matrix per input, not two
            Tensor gram = grams.remove(g);
            try {
                backend.finishHessian(gram, rows);
            } catch (RuntimeException e) {
                gram.close();
                throw e;
            }
            return AdaptiveGptq.prepare(backend, gram, linear.key());
        });
    }

    @Override
    public void close() {
        grams.values().forEach(Tensor::close);
        grams.clear();
        prepared.values().forEach(AdaptiveGptq.Preparation::close);
        prepared.clear();
    }
}
