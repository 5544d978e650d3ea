package org.exl2spark.quant;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.io.DType;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;

/**
 * The shape of one EXL2 linear without its data: input rows (height = in_features), stored output columns (width),
 * and the group table. Built either from a file's tensor headers and {@code q_groups} (validated against every shape
 * rule of EXL2-SPEC A.1–A.3) or from group sizes chosen by a quantizer. Also does the bits accounting of spec C.3.
 *
 * <p>Limits: height and width are Java {@code int}s (perm and q-row tables are Java arrays); products such as
 * height × width and bit counts are {@code long}. ExLlamaV2 itself reads q_groups and the permutation as uint16, so
 * q-row starts above 65535 cannot be stored and in_features above 65535 cannot run in its kernels.
 */
public final class Exl2Layout {
    public static final String Q_WEIGHT = ".q_weight";
    public static final String Q_SCALE = ".q_scale";
    public static final String Q_SCALE_MAX = ".q_scale_max";
    public static final String Q_GROUPS = ".q_groups";
    public static final String Q_INVPERM = ".q_invperm";
    /** Not written by ExLlamaV2's converter; older files may hold it and loaders recompute it from q_invperm. */
    public static final String Q_PERM = ".q_perm";
    public static final String BIAS = ".bias";

    /** q_groups stores q-row starts in 16 bits, which ExLlamaV2 reads unsigned. */
    static final int MAX_Q_ROW_START = 0xffff;
    /**
     * ExLlamaV2's kernels step through rows 32 at a time and only switch groups at those steps, so every group but the
     * last must hold a multiple of 32 rows (its own group sizes are 32, 64 or 128).
     */
    static final int ROW_STEP = 32;

    private final String key;
    private final int height;
    private final int width;
    private final List<Exl2Group> groups;
    private final int qRows;
    private final boolean hasBias;

    private Exl2Layout(String key, int height, int width, List<Exl2Group> groups, boolean hasBias) {
        this.key = key;
        this.height = height;
        this.width = width;
        this.groups = Collections.unmodifiableList(groups);
        Exl2Group last = groups.get(groups.size() - 1);
        this.qRows = last.qRowStart() + last.qRows();
        this.hasBias = hasBias;
    }

    /**
     * A layout for an encoder: groups in order, {@code groupBits[g]} bits and {@code groupRows[g]} rows each; the
     * q-row starts follow from the packing. Throws {@link IllegalArgumentException} naming the module on any rule
     * the file format or ExLlamaV2's kernels impose.
     */
    public static Exl2Layout of(String key, int height, int width, int[] groupBits, int[] groupRows, boolean hasBias) {
        String problem = checkDimensions(height, width);
        if (problem == null && groupBits.length != groupRows.length) {
            problem = groupBits.length + " group bit widths but " + groupRows.length + " group row counts";
        }
        List<Exl2Group> groups = new ArrayList<>();
        if (problem == null) {
            problem = layOut(height, groupBits, groupRows, groups);
        }
        if (problem != null) {
            throw new IllegalArgumentException("EXL2 linear '" + key + "': " + problem);
        }
        return new Exl2Layout(key, height, width, groups, hasBias);
    }

    /**
     * Reads and validates the layout of linear {@code key}: presence, dtypes and shapes of every EXL2 tensor, and the
     * q_groups table (read here; it is small). The bulk data (q_weight, q_scale, permutation) is not read.
     */
    public static Exl2Layout read(TensorSource source, String key) throws IOException {
        String where = source.location();
        TensorInfo qWeight = require(source, key, Q_WEIGHT, DType.I32, 2);
        TensorInfo qScale = require(source, key, Q_SCALE, DType.I32, 2);
        TensorInfo qScaleMax = require(source, key, Q_SCALE_MAX, DType.F16, 1);
        TensorInfo qGroups = require(source, key, Q_GROUPS, DType.I16, 1);
        TensorInfo qInvperm = require(source, key, Q_INVPERM, DType.I32, 1);
        TensorInfo bias = source.contains(key + BIAS) ? require(source, key, BIAS, DType.F16, 1) : null;
        if (source.contains(key + Q_PERM)) {
            require(source, key, Q_PERM, DType.I32, 1);
        }
        if (qInvperm.dim(0) > Integer.MAX_VALUE || qWeight.dim(1) > Integer.MAX_VALUE) {
            throw new Exl2FormatException(where, key, "q_invperm " + qInvperm.shapeString() + " or q_weight "
                    + qWeight.shapeString() + " has a dimension beyond 2^31-1");
        }
        int height = (int) qInvperm.dim(0);
        int width = (int) qWeight.dim(1);
        String problem = checkDimensions(height, width);
        if (problem != null) {
            throw new Exl2FormatException(where, key, problem + " (q_invperm " + qInvperm.shapeString() + ", q_weight "
                    + qWeight.shapeString() + ")");
        }
        long tableLength = qGroups.dim(0);
        if (tableLength == 0 || tableLength % 2 != 0 || tableLength / 2 > Integer.MAX_VALUE) {
            throw new Exl2FormatException(where, key, "q_groups " + qGroups.shapeString()
                    + " must hold a non-empty list of (bits, q-row start) pairs");
        }
        int groupCount = (int) (tableLength / 2);
        ByteBuffer table = source.readAll(qGroups);
        int[] bits = new int[groupCount];
        int[] rows = new int[groupCount];
        long rowsBeforeLast = 0;
        for (int g = 0; g < groupCount; g++) {
            bits[g] = Short.toUnsignedInt(table.getShort(4 * g));
            int start = Short.toUnsignedInt(table.getShort(4 * g + 2));
            if (!Exl2Group.isAllowedBits(bits[g])) {
                throw new Exl2FormatException(where, key, "group " + g + " has " + bits[g]
                        + " bits; EXL2 allows 2, 3, 4, 5, 6 or 8");
            }
            if (g == 0 && start != 0) {
                throw new Exl2FormatException(where, key, "group 0 starts at q-row " + start + ", not 0");
            }
            if (g == groupCount - 1) {
                rows[g] = (int) Math.max(0, height - rowsBeforeLast);
                break;
            }
            int next = Short.toUnsignedInt(table.getShort(4 * g + 6));
            long qRowCount = (long) next - start;
            if (qRowCount <= 0) {
                throw new Exl2FormatException(where, key, "q_groups q-row starts are not increasing: group " + g
                        + " starts at " + start + ", group " + (g + 1) + " at " + next);
            }
            if (qRowCount * 32 % bits[g] != 0) {
                throw new Exl2FormatException(where, key, "group " + g + " spans " + qRowCount + " q-rows, not a whole"
                        + " number of " + bits[g] + "-bit rows");
            }
            rows[g] = (int) Math.min(Integer.MAX_VALUE, qRowCount * 32 / bits[g]);
            rowsBeforeLast += rows[g];
        }
        if (rowsBeforeLast >= height) {
            throw new Exl2FormatException(where, key, "q_groups cover " + rowsBeforeLast + " rows before the last of "
                    + groupCount + " groups, but the linear has only " + height + " input rows (q_invperm "
                    + qInvperm.shapeString() + ")");
        }
        List<Exl2Group> groups = new ArrayList<>();
        problem = layOut(height, bits, rows, groups);
        if (problem != null) {
            throw new Exl2FormatException(where, key, problem);
        }
        Exl2Layout layout = new Exl2Layout(key, height, width, groups, bias != null);
        if (qWeight.dim(0) != layout.qRows) {
            throw new Exl2FormatException(where, key, "q_weight " + qWeight.shapeString() + " has " + qWeight.dim(0)
                    + " q-rows but q_groups describe " + layout.qRows + " (" + height + " rows in " + groupCount
                    + " groups)");
        }
        layout.checkShape(where, qScale, new long[] {groupCount, width / 8});
        layout.checkShape(where, qScaleMax, new long[] {groupCount});
        if (bias != null) {
            layout.checkShape(where, bias, new long[] {width});
        }
        return layout;
    }

    private static TensorInfo require(TensorSource source, String key, String suffix, DType dtype, int rank)
            throws IOException {
        String name = key + suffix;
        if (!source.contains(name)) {
            throw new Exl2FormatException(source.location(), key, "tensor '" + name + "' is missing");
        }
        TensorInfo t = source.tensor(name);
        if (t.dtype() != dtype) {
            throw new Exl2FormatException(source.location(), key, "tensor '" + name + "' is " + t.dtype() + ", expected "
                    + dtype);
        }
        if (t.rank() != rank) {
            throw new Exl2FormatException(source.location(), key, "tensor '" + name + "' has shape " + t.shapeString()
                    + ", expected " + rank + " dimension" + (rank == 1 ? "" : "s"));
        }
        long elements = t.numElements();
        if (elements < 0 || elements > Long.MAX_VALUE / dtype.bytes() || elements * dtype.bytes() != t.byteSize()) {
            throw new Exl2FormatException(source.location(), key, "tensor '" + name + "' " + t.shapeString() + " × "
                    + dtype + " does not match its " + t.byteSize() + " bytes of data (truncated?)");
        }
        return t;
    }

    private void checkShape(String where, TensorInfo t, long[] expected) throws Exl2FormatException {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new Exl2FormatException(where, key, "tensor '" + t.name() + "' has shape " + t.shapeString()
                    + ", expected " + Arrays.toString(expected) + " (" + groups.size() + " groups, width "
                    + width + ")");
        }
    }

    private static String checkDimensions(int height, int width) {
        if (height <= 0) {
            return "no input rows";
        }
        if (width <= 0 || width % 8 != 0) {
            return "width " + width + " is not a positive multiple of 8 (q_scale packs 8 columns per word)";
        }
        return null;
    }

    /** Validates groups given as (bits, rows) and fills {@code out}; returns the problem, or null. */
    private static String layOut(int height, int[] bits, int[] rows, List<Exl2Group> out) {
        if (bits.length == 0) {
            return "no groups";
        }
        int rowStart = 0;
        long qRowStart = 0;
        for (int g = 0; g < bits.length; g++) {
            boolean last = g == bits.length - 1;
            if (!Exl2Group.isAllowedBits(bits[g])) {
                return "group " + g + " has " + bits[g] + " bits; EXL2 allows 2, 3, 4, 5, 6 or 8";
            }
            if (g > 0 && bits[g] > bits[g - 1]) {
                return "group " + g + " has " + bits[g] + " bits after a " + bits[g - 1] + "-bit group; groups must"
                        + " come in non-increasing bit order (8, 6, 5, 4, 3, 2), which ExLlamaV2's kernels assume";
            }
            if (rows[g] <= 0) {
                return "group " + g + " has no rows";
            }
            if (!last && rows[g] % ROW_STEP != 0) {
                return "group " + g + " has " + rows[g] + " rows; every group but the last must hold a multiple of "
                        + ROW_STEP + " rows";
            }
            if (rows[g] > height - rowStart) {
                return "groups 0.." + g + " cover " + ((long) rowStart + rows[g]) + " rows but the linear has only "
                        + height;
            }
            if (qRowStart > MAX_Q_ROW_START) {
                return "group " + g + " would start at q-row " + qRowStart + ", beyond the 16-bit q_groups field";
            }
            out.add(new Exl2Group(bits[g], rowStart, rows[g], (int) qRowStart));
            rowStart += rows[g];
            qRowStart += Exl2Group.qRowsFor(rows[g], bits[g]);
        }
        if (rowStart != height) {
            return "groups cover " + rowStart + " rows but the linear has " + height;
        }
        if (qRowStart > Integer.MAX_VALUE) {
            return qRowStart + " q-rows do not fit a Java array";
        }
        return null;
    }

    public String key() {
        return key;
    }

    /** Input rows (in_features). */
    public int height() {
        return height;
    }

    /** Stored output columns (out_features, padded to a multiple of 32 by ExLlamaV2 where needed). */
    public int width() {
        return width;
    }

    public List<Exl2Group> groups() {
        return groups;
    }

    /** Rows of q_weight (32-bit words per column). */
    public int qRows() {
        return qRows;
    }

    public boolean hasBias() {
        return hasBias;
    }

    /** The group containing permuted row {@code row}. */
    public Exl2Group groupOfRow(int row) {
        int lo = 0;
        int hi = groups.size() - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (groups.get(mid).rowStart() <= row) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        return groups.get(lo);
    }

    /** The q_groups table: (bits, q-row start) per group, q-row starts as the low 16 bits ExLlamaV2 reads unsigned. */
    public short[] qGroupsTable() {
        short[] t = new short[2 * groups.size()];
        for (int g = 0; g < groups.size(); g++) {
            t[2 * g] = (short) groups.get(g).bits();
            t[2 * g + 1] = (short) groups.get(g).qRowStart();
        }
        return t;
    }

    /** Quantized weights, height × width. */
    public long weights() {
        return (long) height * width;
    }

    /**
     * Bits as ExLlamaV2's measurement counts them (spec C.3): the codes themselves, 16 per q_scale_max, 32 per
     * q_groups pair, 4 per scale code, 32 per permutation entry, 16 per bias element.
     */
    public long exl2Bits() {
        long bits = 0;
        for (Exl2Group g : groups) {
            bits += (long) g.rows() * width * g.bits();
        }
        long groupCount = groups.size();
        bits += groupCount * 16 + groupCount * 32 + groupCount * width * 4L + height * 32L;
        if (hasBias) {
            bits += 16L * width;
        }
        return bits;
    }

    /** {@link #exl2Bits()} per weight. */
    public double bitsPerWeight() {
        return (double) exl2Bits() / weights();
    }

    /** Bits of code storage per weight, without the scales and tables: the mix of group bit widths. */
    public double codeBitsPerWeight() {
        long bits = 0;
        for (Exl2Group g : groups) {
            bits += (long) g.rows() * g.bits();
        }
        return (double) bits / height;
    }

    /**
     * Groups by bit width, e.g. {@code "8b 2x32, 4b 7x128+64"}: per width the number of groups and their row count,
     * with a last partial group after a {@code +}.
     */
    public String groupSummary() {
        StringBuilder sb = new StringBuilder();
        int g = 0;
        while (g < groups.size()) {
            int bits = groups.get(g).bits();
            Map<Integer, Integer> sizes = new LinkedHashMap<>();
            while (g < groups.size() && groups.get(g).bits() == bits) {
                sizes.merge(groups.get(g).rows(), 1, Integer::sum);
                g++;
            }
            sb.append(sb.length() == 0 ? "" : ", ").append(bits).append('b');
            boolean first = true;
            for (Map.Entry<Integer, Integer> e : sizes.entrySet()) {
                sb.append(first ? " " : "+");
                if (e.getValue() > 1 || first) {
                    sb.append(e.getValue()).append('x');
                }
                sb.append(e.getKey());
                first = false;
            }
        }
        return sb.toString();
    }

    /** The tensors this linear is stored as (spec A.1), in that order. */
    public List<TensorSpec> tensorSpecs() {
        List<TensorSpec> specs = new ArrayList<>();
        specs.add(new TensorSpec(key + Q_WEIGHT, DType.I32, new long[] {qRows, width}));
        specs.add(new TensorSpec(key + Q_SCALE, DType.I32, new long[] {groups.size(), width / 8}));
        specs.add(new TensorSpec(key + Q_SCALE_MAX, DType.F16, new long[] {groups.size()}));
        specs.add(new TensorSpec(key + Q_GROUPS, DType.I16, new long[] {2L * groups.size()}));
        specs.add(new TensorSpec(key + Q_INVPERM, DType.I32, new long[] {height}));
        if (hasBias) {
            specs.add(new TensorSpec(key + BIAS, DType.F16, new long[] {width}));
        }
        return specs;
    }

    @Override
    public String toString() {
        return key + " [" + height + " -> " + width + "] " + groupSummary();
    }
}
