package org.exl2spark.quant;

import org.exl2spark.backend.CodePacking;

/**
 * One group of an EXL2 linear: permuted input rows {@code [rowStart, rowStart + rows)}, each code {@code bits} wide,
 * packed into q_weight from q-row {@code qRowStart} on (spec A.2, A.3).
 */
public record Exl2Group(int bits, int rowStart, int rows, int qRowStart) {

    /** The code widths ExLlamaV2's kernels implement, in the order its kernels walk the rows. */
    private static final int[] ALLOWED_BITS = {8, 6, 5, 4, 3, 2};

    public static boolean isAllowedBits(int bits) {
        for (int b : ALLOWED_BITS) {
            if (b == bits) {
                return true;
            }
        }
        return false;
    }

    /** 32-bit q-rows this group occupies; a partial last group is rounded up to whole words. */
    public int qRows() {
        return (int) qRowsFor(rows, bits);
    }

    static long qRowsFor(long rows, int bits) {
        return CodePacking.qRows(rows, bits);
    }

    /** The fixed symmetric zero point 2^(bits-1) (spec A.5). */
    public int zeroPoint() {
        return 1 << (bits - 1);
    }

    public int maxCode() {
        return (1 << bits) - 1;
    }
}
