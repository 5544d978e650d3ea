package org.exl2spark.quant;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import org.exl2spark.backend.CodePacking;
import org.exl2spark.io.Half;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;

/**
 * One EXL2-quantized linear layer: packed codes (q_weight), 4-bit scale codes (q_scale), per-group maximum scales
 * (q_scale_max), the group table (via {@link Exl2Layout}), the act-order permutation and an optional bias.
 *
 * <p>Decoding follows EXL2-SPEC A.4–A.7 with ExLlamaV2's three fp16 roundings, so {@link #dequantize()} is
 * bit-identical to the weight ExLlamaV2's kernels reconstruct. Encoding packs codes and scale codes exactly as
 * ExLlamaV2's converter does (A.3, A.4), with zeros in the unused bits after the last row of a partial group.
 *
 * <p>Orientation: EXL2 works on W[in][out] (the transpose of the Hugging Face weight); "row" means an input row.
 * Codes are held in the stored (permuted) row order; {@code perm[k]} is the original input row of stored row k.
 */
public final class Exl2Linear {
    private final Exl2Layout layout;
    /** [qRows][width] packed 32-bit words. */
    private final int[][] qWeight;
    /** [groups][width / 8], eight 4-bit scale codes per word. */
    private final int[][] qScale;
    private final short[] qScaleMax;
    private final int[] invperm;
    private final int[] perm;
    private final short[] bias;

    private Exl2Linear(Exl2Layout layout, int[][] qWeight, int[][] qScale, short[] qScaleMax, int[] invperm,
            int[] perm, short[] bias) {
        this.layout = layout;
        this.qWeight = qWeight;
        this.qScale = qScale;
        this.qScaleMax = qScaleMax;
        this.invperm = invperm;
        this.perm = perm;
        this.bias = bias;
    }

    /** Reads and validates linear {@code key} (e.g. {@code model.layers.0.self_attn.q_proj}) from {@code source}. */
    public static Exl2Linear read(TensorSource source, String key) throws IOException {
        Exl2Layout layout = Exl2Layout.read(source, key);
        String where = source.location();
        int width = layout.width();
        int groupCount = layout.groups().size();

        int[] invperm = readInts(source, source.tensor(key + Exl2Layout.Q_INVPERM));
        int[] perm = inverse(invperm);
        if (perm == null) {
            throw new Exl2FormatException(where, key, "q_invperm is not a permutation of 0.." + (invperm.length - 1)
                    + ": " + permutationProblem(invperm));
        }
        if (source.contains(key + Exl2Layout.Q_PERM)) {
            int[] stored = readInts(source, source.tensor(key + Exl2Layout.Q_PERM));
            if (!Arrays.equals(stored, perm)) {
                throw new Exl2FormatException(where, key, "q_perm is present but is not the inverse of q_invperm");
            }
        }
        ByteBuffer maxBytes = source.readAll(source.tensor(key + Exl2Layout.Q_SCALE_MAX));
        short[] qScaleMax = new short[groupCount];
        maxBytes.asShortBuffer().get(qScaleMax);
        for (int g = 0; g < groupCount; g++) {
            float m = Half.toFloat(qScaleMax[g]);
            if (!Float.isFinite(m)) {
                throw new Exl2FormatException(where, key, "q_scale_max[" + g + "] is " + m);
            }
        }
        int[][] qWeight = readIntRows(source, source.tensor(key + Exl2Layout.Q_WEIGHT), layout.qRows(), width);
        int[][] qScale = readIntRows(source, source.tensor(key + Exl2Layout.Q_SCALE), groupCount, width / 8);
        short[] bias = null;
        if (layout.hasBias()) {
            bias = new short[width];
            source.readAll(source.tensor(key + Exl2Layout.BIAS)).asShortBuffer().get(bias);
        }
        return new Exl2Linear(layout, qWeight, qScale, qScaleMax, invperm, perm, bias);
    }

    /**
     * Packs a quantized linear.
     *
     * @param layout     groups (bits and rows each) over the permuted rows
     * @param codes      [height][width] unsigned codes (0 … 2^bits−1 of the row's group) in stored (permuted) row
     *                   order, read as {@code codes[k][n] & 0xff}
     * @param scaleCodes [groups][width] 4-bit scale codes c (multiplier (c+1)^2), 0 … 15
     * @param scaleMax   [groups] fp16 bits of each group's maximum scale
     * @param invperm    the act-order inverse permutation: stored row of original input row j
     * @param bias       fp16 bits [width], or null when the layout has no bias
     */
    public static Exl2Linear encode(Exl2Layout layout, byte[][] codes, byte[][] scaleCodes, short[] scaleMax,
            int[] invperm, short[] bias) {
        checkRows(layout.key(), "codes", codes, layout.height(), layout.width());
        int[][] qWeight = new int[layout.qRows()][layout.width()];
        for (Exl2Group g : layout.groups()) {
            try {
                CodePacking.packGroup(codes, g.rowStart(), g.rows(), g.bits(), qWeight, g.qRowStart());
            } catch (IllegalArgumentException e) {
                throw bad(layout.key(), e.getMessage());
            }
        }
        return ofPacked(layout, qWeight, scaleCodes, scaleMax, invperm, bias);
    }

    /**
     * A quantized linear whose codes are already packed ({@link CodePacking}, e.g. on the device): as {@link #encode}
     * with {@code qWeight} [qRows][width] in place of the codes; the words are taken, not copied.
     */
    public static Exl2Linear ofPacked(Exl2Layout layout, int[][] qWeight, byte[][] scaleCodes, short[] scaleMax,
            int[] invperm, short[] bias) {
        String key = layout.key();
        int height = layout.height();
        int width = layout.width();
        int groupCount = layout.groups().size();
        if (qWeight.length != layout.qRows()) {
            throw bad(key, qWeight.length + " q-rows of packed codes, the groups need " + layout.qRows());
        }
        for (int q = 0; q < qWeight.length; q++) {
            if (qWeight[q].length != width) {
                throw bad(key, "packed q-row " + q + " has " + qWeight[q].length + " words, expected " + width);
            }
        }
        checkRows(key, "scale codes", scaleCodes, groupCount, width);
        if (scaleMax.length != groupCount) {
            throw bad(key, scaleMax.length + " max scales for " + groupCount + " groups");
        }
        if (invperm.length != height) {
            throw bad(key, "permutation of length " + invperm.length + " for " + height + " input rows");
        }
        int[] perm = inverse(invperm);
        if (perm == null) {
            throw bad(key, "q_invperm is not a permutation: " + permutationProblem(invperm));
        }
        if (layout.hasBias() != (bias != null) || (bias != null && bias.length != width)) {
            throw bad(key, layout.hasBias() ? "a bias of " + width + " values is required"
                    : "the layout has no bias but one was given");
        }
        int[][] qScale = new int[groupCount][width / 8];
        for (int g = 0; g < groupCount; g++) {
            for (int n = 0; n < width; n++) {
                int c = scaleCodes[g][n] & 0xff;
                if (c > 15) {
                    throw bad(key, "scale code " + c + " of group " + g + ", column " + n + " does not fit 4 bits");
                }
                qScale[g][n >>> 3] |= c << (4 * (n & 7));
            }
        }
        return new Exl2Linear(layout, qWeight, qScale, scaleMax.clone(), invperm.clone(), perm,
                bias == null ? null : bias.clone());
    }

    private static void checkRows(String key, String what, byte[][] rows, int expectRows, int expectCols) {
        if (rows.length != expectRows) {
            throw bad(key, rows.length + " rows of " + what + ", expected " + expectRows);
        }
        for (int r = 0; r < rows.length; r++) {
            if (rows[r].length != expectCols) {
                throw bad(key, what + " row " + r + " has " + rows[r].length + " values, expected " + expectCols);
            }
        }
    }

    private static IllegalArgumentException bad(String key, String problem) {
        return new IllegalArgumentException("EXL2 linear '" + key + "': " + problem);
    }

    public Exl2Layout layout() {
        return layout;
    }

    public String key() {
        return layout.key();
    }

    public int inFeatures() {
        return layout.height();
    }

    /** Stored output columns (including any padding to a multiple of 32). */
    public int outFeatures() {
        return layout.width();
    }

    /** Stored row of each original input row (q_invperm). */
    public int[] invperm() {
        return invperm.clone();
    }

    /** Original input row of each stored row: argsort(q_invperm). */
    public int[] perm() {
        return perm.clone();
    }

    public short[] scaleMax() {
        return qScaleMax.clone();
    }

    /** fp16 bits of the bias, or null. */
    public short[] bias() {
        return bias == null ? null : bias.clone();
    }

    /** The unpacked codes [height][width], stored (permuted) row order, unsigned in each byte. */
    public byte[][] codes() {
        byte[][] out = new byte[layout.height()][layout.width()];
        int[] row = new int[layout.width()];
        for (Exl2Group g : layout.groups()) {
            for (int r = 0; r < g.rows(); r++) {
                unpackRow(g, r, row);
                byte[] dst = out[g.rowStart() + r];
                for (int n = 0; n < row.length; n++) {
                    dst[n] = (byte) row[n];
                }
            }
        }
        return out;
    }

    /** The 4-bit scale codes [groups][width]. */
    public byte[][] scaleCodes() {
        byte[][] out = new byte[qScale.length][layout.width()];
        for (int g = 0; g < qScale.length; g++) {
            for (int n = 0; n < layout.width(); n++) {
                out[g][n] = (byte) scaleCode(g, n);
            }
        }
        return out;
    }

    private int scaleCode(int group, int column) {
        return (qScale[group][column >>> 3] >>> (4 * (column & 7))) & 0xf;
    }

    /**
     * fp16 bits of group {@code g}'s per-column scale as ExLlamaV2's loader and kernel form it (spec A.4):
     * {@code m = fp16(q_scale_max × 2^-8)}, then {@code s = fp16((c+1)^2 × m)}. Both products are exact in float, so
     * one round-to-nearest-even conversion each reproduces the fp16 arithmetic.
     */
    public short[] groupScales(int g) {
        float m = Half.toFloat(Half.fromFloat(Half.toFloat(qScaleMax[g]) * 0x1p-8f));
        short[] s = new short[layout.width()];
        for (int n = 0; n < s.length; n++) {
            int c = scaleCode(g, n) + 1;
            s[n] = Half.fromFloat(c * c * m);
        }
        return s;
    }

    /** The dequantized weight in stored (permuted) row order, [height][width]: ExLlamaV2's Wperm. */
    public HalfMatrix dequantizePermuted() {
        return dequantize(false);
    }

    /**
     * The dequantized weight W[in][out] in original input order (the transpose of the Hugging Face weight),
     * bit-identical to ExLlamaV2's reconstruction.
     */
    public HalfMatrix dequantize() {
        return dequantize(true);
    }

    /**
     * The dequantized weight in Hugging Face layout [out][in], all stored output rows. Where ExLlamaV2 padded
     * out_features to a multiple of 32, use {@code dequantize().leadingColumns(outFeatures).transpose()}.
     */
    public HalfMatrix hfWeight() {
        return dequantize().transpose();
    }

    private HalfMatrix dequantize(boolean unpermute) {
        int width = layout.width();
        HalfMatrix out = new HalfMatrix(layout.height(), width);
        int[] codes = new int[width];
        float[] scale = new float[width];
        for (int gi = 0; gi < layout.groups().size(); gi++) {
            Exl2Group g = layout.groups().get(gi);
            short[] s = groupScales(gi);
            for (int n = 0; n < width; n++) {
                scale[n] = Half.toFloat(s[n]);
            }
            int zero = g.zeroPoint();
            for (int r = 0; r < g.rows(); r++) {
                int stored = g.rowStart() + r;
                unpackRow(g, r, codes);
                short[] dst = out.row(unpermute ? perm[stored] : stored);
                // (q - z) and the fp16 scale are exact in float and so is their product; one rounding to fp16
                // then equals the kernel's fp16 multiply.
                for (int n = 0; n < width; n++) {
                    dst[n] = Half.fromFloat((codes[n] - zero) * scale[n]);
                }
            }
        }
        return out;
    }

    /** Codes of row {@code r} of group {@code g}: the bits-wide field at stream bit r·bits of each column. */
    private void unpackRow(Exl2Group g, int r, int[] out) {
        CodePacking.unpackRow(qWeight, g.qRowStart(), r, g.bits(), out);
    }

    /** The tensors this linear is stored as, in the order {@link #writeTensor} accepts them. */
    public List<TensorSpec> tensorSpecs() {
        return layout.tensorSpecs();
    }

    /**
     * Writes one of this linear's tensors ({@link #tensorSpecs()}) little-endian, row by row; fits
     * {@link org.exl2spark.io.SafetensorsWriter.TensorData}.
     */
    public void writeTensor(TensorSpec tensor, OutputStream out) throws IOException {
        String suffix = tensor.name().substring(layout.key().length());
        switch (suffix) {
            case Exl2Layout.Q_WEIGHT -> writeIntRows(qWeight, out);
            case Exl2Layout.Q_SCALE -> writeIntRows(qScale, out);
            case Exl2Layout.Q_INVPERM -> writeIntRows(new int[][] {invperm}, out);
            case Exl2Layout.Q_SCALE_MAX -> writeShorts(qScaleMax, out);
            case Exl2Layout.Q_GROUPS -> writeShorts(layout.qGroupsTable(), out);
            case Exl2Layout.BIAS -> writeShorts(bias, out);
            default -> throw new IllegalArgumentException("'" + tensor.name() + "' is not a tensor of "
                    + layout.key());
        }
    }

    private static void writeIntRows(int[][] rows, OutputStream out) throws IOException {
        for (int[] row : rows) {
            ByteBuffer b = ByteBuffer.allocate(4 * row.length).order(ByteOrder.LITTLE_ENDIAN);
            b.asIntBuffer().put(row);
            out.write(b.array());
        }
    }

    private static void writeShorts(short[] values, OutputStream out) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asShortBuffer().put(values);
        out.write(b.array());
    }

    private static int[] readInts(TensorSource source, TensorInfo t) throws IOException {
        int[] out = new int[(int) t.numElements()];
        source.readAll(t).asIntBuffer().get(out);
        return out;
    }

    private static int[][] readIntRows(TensorSource source, TensorInfo t, int rows, int cols) throws IOException {
        int[][] out = new int[rows][cols];
        source.readRows(t, rows, 4 * cols, (r, b) -> b.asIntBuffer().get(out[r]));
        return out;
    }

    /** argsort of a permutation of 0..n-1 (perm from q_invperm and back). */
    public static int[] invertPermutation(int[] permutation) {
        int[] inv = inverse(permutation);
        if (inv == null) {
            throw new IllegalArgumentException("not a permutation: " + permutationProblem(permutation));
        }
        return inv;
    }

    /** The inverse of a permutation of 0..n-1, or null if it is not one. */
    private static int[] inverse(int[] permutation) {
        int[] inv = new int[permutation.length];
        Arrays.fill(inv, -1);
        for (int i = 0; i < permutation.length; i++) {
            int v = permutation[i];
            if (v < 0 || v >= permutation.length || inv[v] >= 0) {
                return null;
            }
            inv[v] = i;
        }
        return inv;
    }

    private static String permutationProblem(int[] p) {
        boolean[] seen = new boolean[p.length];
        for (int i = 0; i < p.length; i++) {
            if (p[i] < 0 || p[i] >= p.length) {
                return "entry " + i + " is " + p[i] + ", outside 0.." + (p.length - 1);
            }
            if (seen[p[i]]) {
                return "value " + p[i] + " appears twice (again at entry " + i + ")";
            }
            seen[p[i]] = true;
        }
        return "none";
    }

    @Override
    public String toString() {
        return layout.toString();
    }
}
