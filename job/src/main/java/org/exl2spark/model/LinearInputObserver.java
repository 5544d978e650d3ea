package org.exl2spark.model;

import java.util.List;
import org.exl2spark.backend.Tensor;

/**
 * Sees each distinct input that linear layers receive during a block's forward — what GPTQ accumulates its Hessian
 * from. q/k/v share one input, as do gate/up, so each input is reported once with all the linears that read it.
 */
@FunctionalInterface
public interface LinearInputObserver {
    LinearInputObserver NONE = (linears, input) -> { };

    /** {@code input} is [batch, seqLen, inFeatures] and only valid during the call. */
    void accept(List<LinearSpec> linears, Tensor input);
}
