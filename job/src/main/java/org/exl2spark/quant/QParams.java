package org.exl2spark.quant;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One EXL2 quantization setting for a linear layer (ExLlamaV2's QParams): bit widths in descending order, the share
 * of input rows each width gets, the group size of each width, and the scale bits (always 4).
 */
public record QParams(int[] groupSize, int[] bits, double[] bitsProp, int scaleBits) {
    public static final int SCALE_BITS = 4;

    public QParams {
        if (bits.length == 0 || bits.length != bitsProp.length || bits.length != groupSize.length) {
            throw new IllegalArgumentException("QParams needs one group size and one proportion per bit width: bits "
                    + Arrays.toString(bits) + ", proportions " + Arrays.toString(bitsProp) + ", group sizes "
                    + Arrays.toString(groupSize));
        }
        for (int i = 0; i < bits.length; i++) {
            if (!Exl2Bits.isSupported(bits[i])) {
                throw new IllegalArgumentException("unsupported bit width " + bits[i] + " (supported: 2, 3, 4, 5, 6, 8)");
            }
            if (i > 0 && bits[i] >= bits[i - 1]) {
                throw new IllegalArgumentException("bit widths must be strictly descending: " + Arrays.toString(bits));
            }
            if (groupSize[i] <= 0 || !(bitsProp[i] >= 0)) {
                throw new IllegalArgumentException("bad group size or proportion in " + Arrays.toString(groupSize)
                        + " / " + Arrays.toString(bitsProp));
            }
        }
        groupSize = groupSize.clone();
        bits = bits.clone();
        bitsProp = bitsProp.clone();
    }

    /** Same group size for every width. */
    public static QParams of(int groupSize, int[] bits, double[] bitsProp) {
        int[] gs = new int[bits.length];
        Arrays.fill(gs, groupSize);
        return new QParams(gs, bits, bitsProp, SCALE_BITS);
    }

    @Override
    public int[] groupSize() {
        return groupSize.clone();
    }

    @Override
    public int[] bits() {
        return bits.clone();
    }

    @Override
    public double[] bitsProp() {
        return bitsProp.clone();
    }

    public int widths() {
        return bits.length;
    }

    public int bits(int i) {
        return bits[i];
    }

    public int groupSize(int i) {
        return groupSize[i];
    }

    /** A group of consecutive (act-order permuted) input rows quantized with one bit width and one scale per column. */
    public record Group(int bits, long firstRow, long rows) {
        public long endRow() {
            return firstRow + rows;
        }
    }

    /**
     * Number of groups of each width for a tensor of {@code rows} input features, in IEEE double arithmetic as
     * ExLlamaV2 does it (a later width may get zero groups).
     */
    public long[] groupCounts(long rows) {
        long[] counts = new long[bits.length];
        double remaining = rows;
        for (int i = 0; i < bits.length; i++) {
            double want = Math.min(rows * bitsProp[i], remaining);
            long g = (long) Math.ceil(want / groupSize[i]);
            counts[i] = Math.max(0, g);
            remaining -= (double) counts[i] * groupSize[i];
        }
        if (remaining > 0) {
            throw new IllegalArgumentException(describe() + " leaves " + (long) remaining + " of " + rows
                    + " rows without a group (proportions sum below 1?)");
        }
        return counts;
    }

    /** The groups covering {@code rows} input rows, highest bit width first; the last one is cut at {@code rows}. */
    public List<Group> groups(long rows) {
        long[] counts = groupCounts(rows);
        List<Group> out = new ArrayList<>();
        long row = 0;
        for (int i = 0; i < bits.length && row < rows; i++) {
            for (long g = 0; g < counts[i] && row < rows; g++) {
                long n = Math.min(groupSize[i], rows - row);
                out.add(new Group(bits[i], row, n));
                row += n;
            }
        }
        return out;
    }

    /**
     * Storage bits of a linear quantized with these settings, as ExLlamaV2 counts them for measurement and budget:
     * packed weights, scale_max, q_groups, 4-bit scales, the inverse permutation and an fp16 bias if present.
     */
    public long totalBits(long rows, long columns, boolean bias) {
        long total = 0;
        long groupCount = 0;
        for (Group g : groups(rows)) {
            total += g.rows() * columns * g.bits();
            groupCount++;
        }
        total += groupCount * 16;
        total += groupCount * 32;
        total += groupCount * columns * 4;
        total += rows * 32;
        if (bias) {
            total += 16 * columns;
        }
        return total;
    }

    /** ExLlamaV2's description string, used to quantize each distinct setting once per projection. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < bits.length; i++) {
            if (i > 0) {
                sb.append('/');
            }
            sb.append(bitsProp[i]).append(':').append(bits[i]).append("b_").append(groupSize[i]).append('g');
        }
        return sb.append(" s").append(scaleBits).toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QParams q && Arrays.equals(groupSize, q.groupSize) && Arrays.equals(bits, q.bits)
                && Arrays.equals(bitsProp, q.bitsProp) && scaleBits == q.scaleBits;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(bits) * 31 + Arrays.hashCode(groupSize) * 7 + Arrays.hashCode(bitsProp);
    }

    @Override
    public String toString() {
        return describe();
    }
}
