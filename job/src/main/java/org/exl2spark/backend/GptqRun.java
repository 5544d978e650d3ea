package org.exl2spark.backend;

/**
 * One linear's GPTQ column-block loop on a backend (EXL2-SPEC F.4): the act-ordered work matrix W [rows × cols]
 * (modified in place) and U, the upper Cholesky factor of the damped inverse Hessian [rows × rows], stay where the
 * backend keeps them; per group the caller runs {@link #findParams}, {@link #quantizeGroup}, {@link #lazyUpdate}.
 * The codes and the act-ordered dequantized weight accumulate in the run. Closing frees its own buffers (not W or U).
 */
public interface GptqRun<M> extends AutoCloseable {

    /** One group's scale search result on the host: the 4-bit scale code per column and q_scale_max as fp16 bits. */
    record GroupScales(byte[] codes, short maxHalf) {
    }

    /**
     * ExLlamaV2's find_params (EXL2-SPEC F.5) on rows [a, b) of W with {@code bits}-bit codes; the per-column scales
     * stay in the run for the next {@link #quantizeGroup}.
     */
    void findParams(long a, long b, int bits);

    /** The last search's scale codes and q_scale_max, copied to the host (only the stored format needs them). */
    GroupScales scales();

    /**
     * Quantizes rows [a, b) of W with the last found scales, feeding each row's error to the group's later rows of
     * W; keeps the codes, the fp16-exact dequantized rows and the scaled errors {@code (W[c] − Q[c]) / U[c][c]}.
     */
    void quantizeGroup(long a, long b, int bits);

    /** GPTQ's lazy batch update after group [a, b): {@code W[b:] −= U[a:b, b:]ᵀ · E[a:b]} (a GEMM). */
    void lazyUpdate(long a, long b);

    /**
     * The codes (0 … 2^bits − 1) of the groups quantized so far, in the order quantized (they cover rows 0, 1, …),
     * packed as EXL2's q_weight ({@link CodePacking}): [Σ q-rows][cols].
     */
    int[][] packedCodes();

    /** Rows [firstRow, firstRow + rows) quantized with {@code bits}-bit codes: what a run keeps to pack them. */
    record Quantized(long firstRow, long rows, int bits) {
        public long qRows() {
            return CodePacking.qRows(rows, bits);
        }
    }

    /** The dequantized rows in act order [rows × cols], owned by the run. */
    M dequantized();

    @Override
    void close();
}
