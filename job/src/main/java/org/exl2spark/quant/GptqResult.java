package org.exl2spark.quant;

import java.util.List;

/**
 * A linear quantized by GPTQ, in EXL2's terms: act-order permutation, groups (bits, rows, scale codes, fp16 max
 * scale) and one code per (permuted row, output column). {@link #dequantized()} is the fp16-exact weight the codes
 * decode to, in the logical [in_features × out_features] layout (EXL2-SPEC A.5–A.7).
 */
public record GptqResult(int rows, int columns, int[] perm, List<QuantGroup> groups, byte[] codes, float[] dequantized) {

    /**
     * One group of permuted rows [firstRow, firstRow + rows): its bit width, the stored 4-bit scale code
     * ({@code qscale − 1}) per output column, and {@code q_scale_max} as fp16 bits.
     */
    public record QuantGroup(int bits, int firstRow, int rows, byte[] scaleCodes, short scaleMaxHalf) {
    }

    /** Code (0 … 2^bits−1) of permuted row {@code row}, column {@code col}. */
    public int code(int row, int col) {
        return codes[row * columns + col] & 0xff;
    }

    public int[] invperm() {
        int[] inv = new int[perm.length];
        for (int k = 0; k < perm.length; k++) {
            inv[perm[k]] = k;
        }
        return inv;
    }
}
