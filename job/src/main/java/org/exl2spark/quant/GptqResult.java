package org.exl2spark.quant;

import java.util.List;
import org.exl2spark.backend.CodePacking;

/**
 * A linear quantized by GPTQ, in EXL2's terms: act-order permutation, groups (bits, rows, scale codes, fp16 max
 * scale) and one code per (permuted row, output column), packed as q_weight (EXL2-SPEC A.3, A.5–A.7; {@link
 * CodePacking}) where the run was: [q-rows][columns].
 */
public record GptqResult(int rows, int columns, int[] perm, List<QuantGroup> groups, int[][] qWeight) {

    /**
     * One group of permuted rows [firstRow, firstRow + rows): its bit width, the stored 4-bit scale code
     * ({@code qscale − 1}) per output column, and {@code q_scale_max} as fp16 bits.
     */
    public record QuantGroup(int bits, int firstRow, int rows, byte[] scaleCodes, short scaleMaxHalf) {
    }

    /** Code (0 … 2^bits−1) of permuted row {@code row}, column {@code col}. */
    public int code(int row, int col) {
        int qRowStart = 0;
        for (QuantGroup g : groups) {
            if (row < g.firstRow() + g.rows()) {
                return CodePacking.code(qWeight, qRowStart, row - g.firstRow(), g.bits(), col);
            }
            qRowStart += (int) CodePacking.qRows(g.rows(), g.bits());
        }
        throw new IndexOutOfBoundsException("row " + row + " of a " + rows + "-row result");
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
        return Exl2Linear.ofPacked(layout, qWeight, scaleCodes, scaleMax, invperm(), bias);
    }

    public int[] invperm() {
        int[] inv = new int[perm.length];
        for (int k = 0; k < perm.length; k++) {
            inv[perm[k]] = k;
        }
        return inv;
    }
}
