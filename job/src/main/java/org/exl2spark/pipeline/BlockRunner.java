package org.exl2spark.pipeline;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
     * Only what the linears' inputs need: the block up to its output projection over every row, each input shown to
     * {@code observer} (GPTQ's Hessians do not depend on the output projection).
     */
    public void observe(HiddenStates input, BlockWeights block, LinearInputObserver observer) {
        for (int r0 = 0; r0 < input.rows(); r0 += rowsPerChunk) {
            int n = Math.min(rowsPerChunk, input.rows() - r0);
            try (Tensor h = backend.upload(Arrays.copyOfRange(input.data(), input.rowOffset(r0), input.rowOffset(r0 + n)),
                    n, input.tokens(), input.hidden());
                    Tensor projectionInput = transformer.blockUpToOutputProjection(h, block, observer)) {
                // nothing else to compute: the observer has seen every linear input
            }
        }
    }

    /**
     * {@link #relativeErrorSum} of each candidate's output against {@code reference}, the candidates running over the
     * same input. Candidates with equal {@code sharedKeys} must have equal weights up to the output projection: they
     * share that part of the forward (the same operations on the same data, so the same numbers as separate
     * forwards) and differ only in the output projection.
     */
    public double[] relativeErrorSums(HiddenStates input, HiddenStates reference, List<BlockWeights> candidates,
            List<String> sharedKeys) {
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int c = 0; c < candidates.size(); c++) {
            groups.computeIfAbsent(sharedKeys.get(c), k -> new ArrayList<>()).add(c);
        }
        double[] sums = new double[candidates.size()];
        int rowSize = input.rowSize();
        for (int r0 = 0; r0 < input.rows(); r0 += rowsPerChunk) {
            int n = Math.min(rowsPerChunk, input.rows() - r0);
            float[] chunk = Arrays.copyOfRange(input.data(), input.rowOffset(r0), input.rowOffset(r0 + n));
            // the shared part leaves h unchanged; each candidate adds its projection to its own copy
            try (Tensor h = backend.upload(chunk, n, input.tokens(), input.hidden())) {
                for (List<Integer> group : groups.values()) {
                    try (Tensor shared = transformer.blockUpToOutputProjection(h, candidates.get(group.get(0)),
                            LinearInputObserver.NONE)) {
                        for (int c : group) {
                            float[] y;
                            try (Tensor out = backend.upload(chunk.clone(), n, input.tokens(), input.hidden())) {
                                transformer.addOutputProjection(out, shared, candidates.get(c));
                                y = backend.download(out);
                            }
                            for (int r = 0; r < n; r++) {
                                sums[c] += rowRelativeError(y, r * rowSize, reference.data(),
                                        reference.rowOffset(r0 + r), rowSize);
                            }
                        }
                    }
                }
            }
        }
        return sums;
    }

    /**
     * Σ over rows of ‖y − y_ref‖_F / ‖y_ref‖_F (y clamped to the fp16 range), ExLlamaV2's block error. Rows are
     * measured in parallel (a 2048-token row of a 8192-wide model is 16.8 M values) and summed in row order, so the
     * result does not depend on the thread count.
     */
    public static double relativeErrorSum(HiddenStates y, HiddenStates reference) {
        double[] perRow = IntStream.range(0, y.rows()).parallel().mapToDouble(r -> rowRelativeError(y.data(),
                y.rowOffset(r), reference.data(), reference.rowOffset(r), y.rowSize())).toArray();
        double sum = 0;
        for (double e : perRow) {
            sum += e;
        }
        return sum;
    }

    private static double rowRelativeError(float[] y, int yOffset, float[] reference, int referenceOffset, int size) {
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < size; i++) {
            float q = Math.max(-FP16_MAX, Math.min(FP16_MAX, y[yOffset + i]));
            float b = reference[referenceOffset + i];
            double d = q - b;
            diff += d * d;
            norm += (double) b * b;
        }
        return Math.sqrt(diff) / Math.sqrt(norm);
    }
}
