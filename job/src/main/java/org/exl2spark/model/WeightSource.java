package org.exl2spark.model;

import java.io.Closeable;
import java.io.IOException;
import org.exl2spark.backend.Backend;

/**
 * Where a forward pass gets a model's weights, as fp32 arrays in Hugging Face layout. One implementation reads an
 * unquantized checkpoint ({@link CheckpointWeights}); another decodes EXL2 tensors back to dense weights.
 */
public interface WeightSource extends Closeable {

    ModelArchitecture architecture();

    /** The weight of a linear layer, [outFeatures, inFeatures] row-major. */
    float[] linearWeight(LinearSpec linear) throws IOException;

    /**
     * The weight of a linear layer as stored, when that is fp16 or bf16 ([outFeatures, inFeatures] row-major,
     * little-endian), for {@link Backend#uploadWidened} to widen where the backend computes; null when this source has
     * no such bytes (then {@link #linearWeight}).
     */
    default StoredWeight storedLinearWeight(LinearSpec linear) throws IOException {
        return null;
    }

    /** 16-bit stored weights: fp16, or bfloat16 when {@code bf16}. */
    record StoredWeight(boolean bf16, Backend.StoredBytes bytes) {
    }

    /** The bias of a linear layer, [outFeatures], or null when it has none. */
    float[] bias(LinearSpec linear) throws IOException;

    /** An RMSNorm weight, [hiddenSize], by tensor name ({@link BlockSpec#normName()}, {@link ModelArchitecture#FINAL_NORM}). */
    float[] norm(String tensorName) throws IOException;

    /**
     * Rows {@code ids} (ascending, distinct token ids) of the token embedding table: [ids.length, hiddenSize]
     * row-major. Only those rows are read: a 70B model's table is gigabytes, a task needs a few thousand rows.
     */
    float[] embeddingRows(int[] ids) throws IOException;
}
