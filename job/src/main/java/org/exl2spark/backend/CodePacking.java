package org.exl2spark.backend;

/**
 * EXL2's packing of a group's codes into 32-bit q-rows (EXL2-SPEC A.3): in every column, row r of a group of b-bit
 * codes occupies bits [r·b, r·b + b) of the group's bit stream, low bits first, so a code may straddle two words; the
 * unused bits after a partial group's last row are zero. The codec's packer ({@code Exl2Linear}) and the CPU twin of
 * gptq.cu's {@code gptq_pack_codes}.
 */
public final class CodePacking {
    private CodePacking() {
    }

    /** 32-bit q-rows a group of {@code rows} b-bit codes occupies (a partial last word counts whole). */
    public static long qRows(long rows, int bits) {
        return (rows * bits + 31) / 32;
    }

    /**
     * ORs rows [rowStart, rowStart + rows) of {@code codes} (unsigned bytes, each below 2^bits) into the zeroed words
     * from q-row {@code qRowStart} on. Throws naming the stored row and column of a code that does not fit.
     */
    public static void packGroup(byte[][] codes, int rowStart, int rows, int bits, int[][] words, int qRowStart) {
        int maxCode = (1 << bits) - 1;
        for (int r = 0; r < rows; r++) {
            byte[] src = codes[rowStart + r];
            long bit = (long) r * bits;
            int word = qRowStart + (int) (bit >>> 5);
            int shift = (int) (bit & 31);
            int[] lo = words[word];
            int[] hi = shift + bits > 32 ? words[word + 1] : null;
            for (int n = 0; n < src.length; n++) {
                int q = src[n] & 0xff;
                if (q > maxCode) {
                    throw new IllegalArgumentException("code " + q + " at stored row " + (rowStart + r) + ", column "
                            + n + " does not fit " + bits + " bits");
                }
                lo[n] |= q << shift;
                if (hi != null) {
                    hi[n] |= q >>> (32 - shift);
                }
            }
        }
    }

    /**
     * Every column's code of row {@code r} of the group packed from q-row {@code qRowStart} on, into {@code out}
     * (one per column): the inverse of {@link #packGroup} for one row, the words of the row found once.
     */
    public static void unpackRow(int[][] words, int qRowStart, int r, int bits, int[] out) {
        int mask = (1 << bits) - 1;
        long bit = (long) r * bits;
        int word = qRowStart + (int) (bit >>> 5);
        int shift = (int) (bit & 31);
        int[] lo = words[word];
        if (shift + bits <= 32) {
            for (int n = 0; n < out.length; n++) {
                out[n] = (lo[n] >>> shift) & mask;
            }
        } else {
            int[] hi = words[word + 1];
            for (int n = 0; n < out.length; n++) {
                out[n] = ((lo[n] >>> shift) | (hi[n] << (32 - shift))) & mask;
            }
        }
    }

    /** The code of row {@code r} (of the group packed from q-row {@code qRowStart} on), column {@code col}. */
    public static int code(int[][] words, int qRowStart, int r, int bits, int col) {
        long bit = (long) r * bits;
        int word = qRowStart + (int) (bit >>> 5);
        int shift = (int) (bit & 31);
        int v = words[word][col] >>> shift;
        if (shift + bits > 32) {
            v |= words[word + 1][col] << (32 - shift);
        }
        return v & ((1 << bits) - 1);
    }
}
