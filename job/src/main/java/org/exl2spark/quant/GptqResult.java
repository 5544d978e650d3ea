package org.exl2spark.quant;

import java.util.List;

/**
 * A linear quantized by GPTQ, in EXL2's terms: act-order permutation, groups (bits, rows, scale codes, fp16 max
 * scale) and one code per (permuted row, output column) (EXL2-SPEC A.5–A.7).
 */
public record GptqResult(int rows, int columns, int[] perm, List<QuantGroup> groups, byte[][] codes) {

    /**
     * One group of permuted rows [firstRow, firstRow + rows): its bit width, the stored 4-bit scale code
     * ({@code qscale − 1}) per output column, and {@code q_scale_max} as fp16 bits.
     */
    public record QuantGroup(int bits, int firstRow, int rows, byte[] scaleCodes, short scaleMaxHalf) {
    }

    /** Code (0 … 2^bits−1) of permuted row {@code row}, column {@code col}. */
    public int code(int row, int col) {
        return codes[row][col] & 0xff;
    }

    /** The EXL2 tensors of this result for module {@code key}; {@code bias} is fp16 bits or null. */
    public Exl2Linear toExl2(String key, short[] bias) {
        int[] bits = new int[groups.size()];
        int[] groupRows = new int[groups.size()];
        byte[][] scaleCodes = new byte[groups.size()][];
        short[] scaleMax = new short[groups.size()];
        for (int g = 0; g < bits.length; g++) {
            QuantGroup q = groups.get(g);
            bits[g] = q.bits();
            groupRows[g] = q.rows();
            scaleCodes[g] = q.scaleCodes();
            scaleMax[g] = q.scaleMaxHalf();
        }
        Exl2Layout layout = Exl2Layout.of(key, rows, columns, bits, groupRows, bias != null);
        return Exl2Linear.encode(layout, codes, scaleCodes, scaleMax, invperm(), bias);
    }

    public int[] invperm() {
        int[] inv = new int[perm.length];
        for (int k = 0; k < perm.length; k++) {
            inv[perm[k]] = k;
        }
        return inv;
    }
}
