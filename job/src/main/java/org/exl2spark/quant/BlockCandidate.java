package org.exl2spark.quant;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One measured setting of a block: a QParams per projection (in the block's projection order), the block's storage
 * bits and its accuracy {@code 1 − mean relative Frobenius error} of the block output.
 */
public record BlockCandidate(double accuracy, long totalBits, Map<String, QParams> projections) {

    public BlockCandidate {
        projections = Collections.unmodifiableMap(new LinkedHashMap<>(projections));
    }

    /** The error the optimizer minimises, {@code 1 − accuracy}. */
    public double error() {
        return 1.0 - accuracy;
    }
}
