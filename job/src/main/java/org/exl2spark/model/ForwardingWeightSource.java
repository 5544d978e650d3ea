package org.exl2spark.model;

import java.io.IOException;

/**
 * A weight source that answers from another one; subclasses override only what they change (a view of the model
 * with some linears replaced, a test's perturbed weight). Closing it closes nothing: the base belongs to whoever
 * opened it.
 *
 * <p>{@link #storedLinearWeight} is deliberately not forwarded (the default: none): {@code Transformer.loadLinear}
 * asks for stored bytes before {@link #linearWeight}, so forwarding them would let the base's checkpoint bytes
 * bypass a subclass's {@code linearWeight} (FragmentWeights' quantized linears would load as the original ones).
 */
public abstract class ForwardingWeightSource implements WeightSource {
    protected final WeightSource base;

    protected ForwardingWeightSource(WeightSource base) {
        this.base = base;
    }

    @Override
    public ModelArchitecture architecture() {
        return base.architecture();
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        return base.linearWeight(linear);
    }

    @Override
    public float[] bias(LinearSpec linear) throws IOException {
        return base.bias(linear);
    }

    @Override
    public float[] norm(String tensorName) throws IOException {
        return base.norm(tensorName);
    }

    @Override
    public float[] embeddingRows(int[] ids) throws IOException {
        return base.embeddingRows(ids);
    }

    @Override
    public void close() throws IOException {
    }
}
