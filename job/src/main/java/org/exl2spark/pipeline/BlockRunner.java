package org.exl2spark.pipeline;

import java.util.Arrays;
import java.util.stream.IntStream;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;

/** Runs one block over host-side states a few rows at a time, so memory stays bounded whatever the row count. */
public final class BlockRunner {
    /** The largest magnitude fp16 holds; outputs are clamped to it when compared, as fp16 states would be. */
    static final float FP16_MAX = 65504f;

    private final Transformer transformer;
    private final Backend backend;
    private final int rowsPerChunk;

    public BlockRunner(Transformer transformer, int rowsPerChunk) {
        this.transformer = transformer;
        this.backend = transformer.backend();
        this.rowsPerChunk = Math.max(1, rowsPerChunk);
    }

    public Transformer transformer() {
        return transformer;
    }

    /** The block's output for every row; linear inputs go to {@code observer}. */
    public HiddenStates forward(HiddenStates input, BlockWeights block, LinearInputObserver observer) {
        float[] out = new float[input.data().length];
        for (int r0 = 0; r0 < input.rows(); r0 += rowsPerChunk) {
            int n = Math.min(rowsPerChunk, input.rows() - r0);
            int from = input.rowOffset(r0);
            int to = input.rowOffset(r0 + n);
            try (Tensor h = backend.upload(Arrays.copyOfRange(input.data(), from, to), n, input.tokens(), input.hidden())) {
                transformer.block(h, block, observer);
                System.arraycopy(backend.download(h), 0, out, from, to - from);
            }
        }
        return new HiddenStates(out, input.rows(), input.tokens(), input.hidden());
    }

    /**
     * Σ over rows of ‖y − y_ref‖_F / ‖y_ref‖_F (y clamped to the fp16 range), ExLlamaV2's block error. Rows are
     * measured in parallel (a 2048-token row of a 8192-wide model is 16.8 M values) and summed in row order, so the
     * result does not depend on the thread count.
     */
    public static double relativeErrorSum(HiddenStates y, HiddenStates reference) {
        int rowSize = y.rowSize();
        float[] a = y.data();
        float[] b = reference.data();
        double[] perRow = IntStream.range(0, y.rows()).parallel().mapToDouble(r -> {
            double diff = 0;
            double norm = 0;
            for (int i = r * rowSize, end = i + rowSize; i < end; i++) {
                float q = Math.max(-FP16_MAX, Math.min(FP16_MAX, a[i]));
                double d = q - b[i];
                diff += d * d;
                norm += (double) b[i] * b[i];
            }
            return Math.sqrt(diff) / Math.sqrt(norm);
        }).toArray();
        double sum = 0;
        for (double e : perRow) {
            sum += e;
        }
        return sum;
    }
}
