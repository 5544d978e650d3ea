package org.exl2spark.pipeline;

import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;

/**
 * Reads the states entering a layer for one partition of calibration rows. Layer 0's input is the token embedding,
 * recomputed from the stored token rows rather than stored.
 */
final class StateStore {
    private StateStore() {
    }

    /** The embeddings of rows [first, first + n) of {@code tokens}; ids beyond the vocabulary become 0 (as ExLlamaV2). */
    static HiddenStates embed(Transformer t, WeightSource weights, TokenRows tokens, int first, int n) throws IOException {
        int vocab = t.architecture().vocabSize();
        int[][] rows = tokens.rows(first, first + n);
        for (int[] row : rows) {
            for (int i = 0; i < row.length; i++) {
                if (row[i] < 0 || row[i] >= vocab) {
                    row[i] = 0;
                }
            }
        }
        try (Tensor h = t.embed(weights, rows)) {
            return new HiddenStates(t.backend().download(h), n, tokens.length(), t.architecture().hiddenSize());
        }
    }

    /** States of {@code part} entering {@code layer}, from {@code file} or, for layer 0, from the token rows. */
    static HiddenStates input(Transformer t, WeightSource weights, Path tokensFile, Path file, int layer,
            Tasks.Partition part, Configuration conf) throws IOException {
        if (layer == 0) {
            return embed(t, weights, CalibrationRows.read(tokensFile, conf), part.firstRow(), part.rows());
        }
        return HiddenStates.read(file, conf);
    }

    /** All rows of a layer's input, partition after partition, concatenated. */
    static HiddenStates concat(java.util.List<HiddenStates> parts) {
        HiddenStates first = parts.get(0);
        int rows = parts.stream().mapToInt(HiddenStates::rows).sum();
        float[] all = new float[Math.multiplyExact(rows, first.rowSize())];
        int at = 0;
        for (HiddenStates p : parts) {
            System.arraycopy(p.data(), 0, all, at, p.data().length);
            at += p.data().length;
        }
        return new HiddenStates(all, rows, first.tokens(), first.hidden());
    }
}
