package org.exl2spark.pipeline;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;

/** Runs one block over host-side states a few rows at a time, so memory stays bounded whatever the row count. */
public final class BlockRunner {
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
            try (Tensor h = upload(input, r0, n)) {
                transformer.block(h, block, observer);
                backend.downloadSlice(h, out, input.rowOffset(r0));
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
            try (Tensor h = upload(input, r0, n);
                    Tensor projectionInput = transformer.blockUpToOutputProjection(h, block, observer)) {
                // nothing else to compute: the observer has seen every linear input
            }
        }
    }

    /**
     * {@link #relativeErrorSum} of each candidate's output against {@code reference}, the candidates running over the
     * same input, whose chunks go to the backend for this call only ({@link ScoringStates}).
     */
    public double[] relativeErrorSums(HiddenStates input, HiddenStates reference, List<BlockWeights> candidates,
            List<String> sharedKeys) {
        try (ScoringStates states = scoringStates(input, reference, false)) {
            return relativeErrorSums(states, candidates, sharedKeys);
        }
    }

    /**
     * {@link #relativeErrorSum} of each candidate's output against the reference of {@code states}, the candidates
     * running over the same input. Candidates with equal {@code sharedKeys} must have equal weights up to the output
     * projection: they share that part of the forward (the same operations on the same data, so the same numbers as
     * separate forwards) and differ only in the output projection.
     *
     * <p>Each chunk's input and reference are on the backend once per call (or once for all calls, with resident
     * states); every candidate's output and its error stay there (only the per-row errors come back). The
     * candidates' linears run in the backend's {@code FAST} mode: their outputs are only compared with the reference,
     * as ExLlamaV2 compares fp16 forwards.
     */
    public double[] relativeErrorSums(ScoringStates states, List<BlockWeights> candidates, List<String> sharedKeys) {
        Map<String, List<Integer>> groups = new LinkedHashMap<>();
        for (int c = 0; c < candidates.size(); c++) {
            groups.computeIfAbsent(sharedKeys.get(c), k -> new ArrayList<>()).add(c);
        }
        double[] sums = new double[candidates.size()];
        for (int chunk = 0; chunk < states.chunks(); chunk++) {
            // the shared part leaves h unchanged; each candidate adds its projection to its own copy
            try (Backend.ModeScope fast = backend.linearMode(Backend.LinearMode.FAST);
                    ScoringStates.Chunk chunkStates = states.chunk(chunk);
                    Tensor out = backend.zeros(chunkStates.input().shape())) {
                Tensor h = chunkStates.input();
                for (List<Integer> group : groups.values()) {
                    try (Tensor shared = transformer.blockUpToOutputProjection(h, candidates.get(group.get(0)),
                            LinearInputObserver.NONE)) {
                        for (int c : group) {
                            backend.copy(h, out);
                            transformer.addOutputProjection(out, shared, candidates.get(c));
                            for (double e : backend.relativeErrors(out, chunkStates.reference())) {
                                sums[c] += e;
                            }
                        }
                    }
                }
            }
        }
        return sums;
    }

    /**
     * The input and reference states that candidates are scored against, in this runner's row chunks. Resident: every
     * chunk goes to the backend now and stays until closed (2 × the states' bytes on a device), so scoring calls
     * upload nothing. Otherwise each chunk is uploaded when a call reaches it and freed after.
     */
    public ScoringStates scoringStates(HiddenStates input, HiddenStates reference, boolean resident) {
        return new ScoringStates(input, reference, resident);
    }

    /** See {@link #scoringStates}. */
    public final class ScoringStates implements AutoCloseable {
        private final HiddenStates input;
        private final HiddenStates reference;
        /** Per chunk: input and reference on the backend; empty unless resident. */
        private final List<Tensor[]> resident = new ArrayList<>();

        private ScoringStates(HiddenStates input, HiddenStates reference, boolean keep) {
            this.input = input;
            this.reference = reference;
            if (keep) {
                try {
                    for (int chunk = 0; chunk < chunks(); chunk++) {
                        resident.add(uploadChunk(chunk));
                    }
                } catch (RuntimeException e) {
                    close();
                    throw e;
                }
            }
        }

        public int chunks() {
            return (input.rows() + rowsPerChunk - 1) / rowsPerChunk;
        }

        private Tensor[] uploadChunk(int chunk) {
            int r0 = chunk * rowsPerChunk;
            int n = Math.min(rowsPerChunk, input.rows() - r0);
            Tensor h = upload(input, r0, n);
            try {
                return new Tensor[] {h, upload(reference, r0, n)};
            } catch (RuntimeException e) {
                h.close();
                throw e;
            }
        }

        /** Chunk {@code chunk}'s input and reference on the backend, freed on close unless resident. */
        Chunk chunk(int chunk) {
            boolean kept = !resident.isEmpty();
            Tensor[] t = kept ? resident.get(chunk) : uploadChunk(chunk);
            return new Chunk(t[0], t[1], !kept);
        }

        @Override
        public void close() {
            resident.forEach(t -> {
                t[0].close();
                t[1].close();
            });
            resident.clear();
        }

        record Chunk(Tensor input, Tensor reference, boolean owned) implements AutoCloseable {
            @Override
            public void close() {
                if (owned) {
                    input.close();
                    reference.close();
                }
            }
        }
    }

    /** Rows [r0, r0 + n) of host states on the backend. */
    private Tensor upload(HiddenStates states, int r0, int n) {
        return backend.uploadSlice(states.data(), states.rowOffset(r0), n, states.tokens(), states.hidden());
    }

    /**
     * Σ over rows of ‖y − y_ref‖_F / ‖y_ref‖_F (y clamped to the fp16 range), ExLlamaV2's block error, of host
     * states: {@link CpuBackend#relativeError} per row. Rows are measured in parallel (a 2048-token row of a
     * 8192-wide model is 16.8 M values) and summed in row order, so the result does not depend on the thread count.
     */
    public static double relativeErrorSum(HiddenStates y, HiddenStates reference) {
        double[] perRow = IntStream.range(0, y.rows()).parallel().mapToDouble(r -> CpuBackend.relativeError(y.data(),
                y.rowOffset(r), reference.data(), reference.rowOffset(r), y.rowSize())).toArray();
        double sum = 0;
        for (double e : perRow) {
            sum += e;
        }
        return sum;
    }
}
