package org.exl2spark.kernels;

import java.util.EnumSet;

/**
 * Launchers of gptq.cu: AdaptiveGPTQ's per-group steps (EXL2-SPEC F.4/F.5) on the act-ordered work matrix
 * W [rows × cols] with U the upper Cholesky factor of the damped inverse Hessian [rows × rows], both dense
 * row-major. CPU twins: {@code org.exl2spark.quant.AdaptiveGptq.findParams}, {@code quantizeGroup} and the lazy
 * {@code DenseMath.gemm} update; the first two agree bit for bit.
 */
public final class GptqKernels {
    public static final String FAMILY = "gptq";
    /** Points of the scale grid p_i = 0.70·(1 − i/96) + 1.20·(i/96). */
    public static final int GRID_POINTS = 97;
    private static final GpuContext.KernelRef COLUMN_BASE = new GpuContext.KernelRef(FAMILY, "gptq_column_base");
    private static final GpuContext.KernelRef MAX_BASE = new GpuContext.KernelRef(FAMILY, "gptq_max_base");
    private static final GpuContext.KernelRef GRID_ESTIMATE = new GpuContext.KernelRef(FAMILY, "gptq_grid_estimate");
    private static final GpuContext.KernelRef GRID_CANDIDATES =
            new GpuContext.KernelRef(FAMILY, "gptq_grid_candidates");
    private static final GpuContext.KernelRef GRID_ERROR = new GpuContext.KernelRef(FAMILY, "gptq_grid_error");
    private static final GpuContext.KernelRef PICK_SCALE = new GpuContext.KernelRef(FAMILY, "gptq_pick_scale");
    private static final GpuContext.KernelRef QUANTIZE = new GpuContext.KernelRef(FAMILY, "gptq_quantize_group");
    private static final GpuContext.KernelRef PACK = new GpuContext.KernelRef(FAMILY, "gptq_pack_codes");
    private static final int ERR_THREADS = 256;
    /**
     * One thread per column walks the group's rows in order (gptq.cu allows up to 64 per block); blocks of 32 keep
     * every SM busy when a weight has few output columns (8192 columns are 256 blocks), blocks of 64 share each
     * staged panel of U among more columns when there are enough of them.
     */
    private static final int QUANTIZE_THREADS_FEW = 32;
    private static final int QUANTIZE_THREADS_MANY = 64;
    private static final long MANY_COLUMNS = 16384;
    private static final int ERR_ITEMS = 8;

    private final GpuContext context;
    private final DenseKernels dense;

    public GptqKernels(DenseKernels dense) {
        this.dense = dense;
        this.context = dense.context();
    }

    /**
     * Device buffers of the scale search for a weight of {@code cols} output columns and groups of at most
     * {@code maxGroupRows} rows; reused group after group. After {@link #findParams}: {@link #scale()} holds the
     * fp16-exact per-column scales (floats), {@link #codes()} the 4-bit scale codes (bytes), {@link #maxHalf()} the
     * group's q_scale_max as fp16 bits (one short) and {@link #errors()} the grid's 97 errors (doubles: exact for
     * the points whose fp32 estimate came near the least, the estimates elsewhere).
     */
    public static final class Workspace implements AutoCloseable {
        private final DeviceMemory memory;
        private final long cols;
        private final long maxGroupRows;
        private final DeviceBuffer base;
        private final DeviceBuffer smax;
        private final DeviceBuffer partial;
        private final DeviceBuffer errors;
        private final DeviceBuffer scale;
        private final DeviceBuffer codes;
        private final DeviceBuffer maxHalf;
        private final DeviceBuffer candidates;

        public Workspace(DeviceMemory memory, long cols, long maxGroupRows) {
            this.memory = memory;
            this.cols = cols;
            this.maxGroupRows = maxGroupRows;
            DeviceBuffer[] made = new DeviceBuffer[8];
            int i = 0;
            try {
                made[i++] = memory.allocateFloats("GPTQ column base scales", cols);
                made[i++] = memory.allocateFloats("GPTQ max scale", 1);
                made[i++] = memory.allocate("GPTQ grid error partials",
                        8L * GRID_POINTS * errorBlocks(maxGroupRows * cols));
                made[i++] = memory.allocate("GPTQ grid errors", 8L * GRID_POINTS);
                made[i++] = memory.allocateFloats("GPTQ group scales", cols);
                made[i++] = memory.allocate("GPTQ scale codes", cols);
                made[i++] = memory.allocate("GPTQ q_scale_max", 4);
                made[i++] = memory.allocate("GPTQ grid candidates", 4L * (GRID_POINTS + 1));
            } catch (RuntimeException e) {
                for (int j = 0; j < i; j++) {
                    memory.free(made[j]);
                }
                throw e;
            }
            base = made[0];
            smax = made[1];
            partial = made[2];
            errors = made[3];
            scale = made[4];
            codes = made[5];
            maxHalf = made[6];
            candidates = made[7];
        }

        public DeviceBuffer scale() {
            return scale;
        }

        public DeviceBuffer codes() {
            return codes;
        }

        public DeviceBuffer maxHalf() {
            return maxHalf;
        }

        public DeviceBuffer errors() {
            return errors;
        }

        /** Host copy of what the stored format needs from the last search: scale codes and q_scale_max. */
        public GroupScales readScaleCodes() {
            byte[] c = new byte[Math.toIntExact(cols)];
            codes.copyToHost(0, c, 0, c.length);
            short[] m = {0};
            maxHalf.copyToHost(0, m, 0, 1);
            return new GroupScales(null, c, m[0], null);
        }

        /** How many grid points the last search evaluated exactly (those its fp32 estimates left in doubt). */
        public int exactPoints() {
            int[] count = {0};
            candidates.copyToHost(0, count, 0, 1);
            return count[0];
        }

        /** Host copy of the last search's results. */
        public GroupScales read() {
            float[] s = new float[Math.toIntExact(cols)];
            scale.copyToHost(0, s, 0, s.length);
            byte[] c = new byte[s.length];
            codes.copyToHost(0, c, 0, c.length);
            short[] m = {0};
            maxHalf.copyToHost(0, m, 0, 1);
            double[] e = new double[GRID_POINTS];
            errors.copyToHost(0, e, 0, GRID_POINTS);
            return new GroupScales(s, c, m[0], e);
        }

        @Override
        public void close() {
            for (DeviceBuffer b : new DeviceBuffer[] {base, smax, partial, errors, scale, codes, maxHalf, candidates}) {
                memory.free(b);
            }
        }
    }

    /**
     * One group's scales on the host: per column the scale used and its code, q_scale_max as fp16 bits, grid errors
     * (scale and grid errors null when only the stored part was read).
     */
    public record GroupScales(float[] scale, byte[] codes, short maxHalf, double[] gridErrors) {
    }

    /**
     * ExLlamaV2's find_params on rows [a, b) of {@code w} with {@code bits}-bit codes; results in the workspace. The
     * grid search runs twice: fp32 estimates of all 97 points' errors (a third of the fp64 work), then the exact fp64
     * errors of the points whose estimate is within 10⁻⁵ of the least (usually one or two), which holds the exact
     * argmin (the estimates are within ~2·10⁻⁶ of the exact sums). No host round trip.
     */
    public void findParams(DeviceMatrix w, long a, long b, int bits, Workspace ws) {
        checkWork(w, a, b, bits);
        if (w.cols() != ws.cols || b - a > ws.maxGroupRows) {
            throw new IllegalArgumentException("GPTQ workspace is for " + ws.cols + " columns and groups of ≤ "
                    + ws.maxGroupRows + " rows, not " + w.cols() + " columns and " + (b - a) + " rows");
        }
        long cols = w.cols();
        long blocks = errorBlocks((b - a) * cols);
        context.launch(COLUMN_BASE, DenseKernels.ceilDiv(cols, 256), 1, 256, 1, 0,
                new KernelArgs().matrix(w).i64(cols).i64(a).i64(b).i32(bits).buffer(ws.base));
        context.launch(MAX_BASE, 1, 1, 1024, 1, 0, new KernelArgs().buffer(ws.base).i64(cols).buffer(ws.smax));
        context.launch(GRID_ESTIMATE, blocks, 1, ERR_THREADS, 1, 0, new KernelArgs().matrix(w).i64(cols).i64(a)
                .i64(b).i32(bits).buffer(ws.base).buffer(ws.smax).buffer(ws.partial));
        context.launch(GRID_CANDIDATES, 1, 1, 1024, 1, 0, new KernelArgs().buffer(ws.partial)
                .i32(Math.toIntExact(blocks)).i64((b - a) * cols).buffer(ws.errors).buffer(ws.candidates));
        context.launch(GRID_ERROR, blocks, 1, ERR_THREADS, 1, 0, new KernelArgs().matrix(w).i64(cols).i64(a).i64(b)
                .i32(bits).buffer(ws.base).buffer(ws.smax).buffer(ws.candidates).buffer(ws.partial));
        context.launch(PICK_SCALE, 1, 1, 1024, 1, 0, new KernelArgs().buffer(ws.partial).i32(Math.toIntExact(blocks))
                .buffer(ws.candidates).buffer(ws.base).buffer(ws.smax).i64(cols).buffer(ws.errors).buffer(ws.scale)
                .buffer(ws.codes).buffer(ws.maxHalf));
    }

    /**
     * Quantizes rows [a, b) of {@code w} with the per-column {@code scale} (floats, e.g. {@link Workspace#scale()}),
     * feeding each row's error to the group's later rows: writes codes (bytes, [rows × cols] like w) and the
     * fp16-exact dequantized values ({@code dequant}, [rows × cols]) of those rows, and the scaled errors
     * {@code err[c − a] = (W[c] − Q[c]) / U[c][c]} ([b − a ≤ err.rows() × cols]). w is not modified.
     */
    public void quantizeGroup(DeviceMatrix w, DeviceMatrix u, long a, long b, int bits, DeviceBuffer scale,
            DeviceBuffer codes, DeviceMatrix dequant, DeviceMatrix err) {
        checkWork(w, a, b, bits);
        checkFactor(u, w);
        long cols = w.cols();
        scale.checkRange(0, 4L * cols);
        codes.checkRange(0, w.rows() * cols);
        if (dequant.rows() != w.rows() || dequant.cols() != cols || !dequant.contiguous()) {
            throw new IllegalArgumentException("dequant must be a dense " + w.rows() + "×" + cols + " matrix");
        }
        if (err.rows() < b - a || err.cols() != cols || !err.contiguous()) {
            throw new IllegalArgumentException("err must be a dense matrix of ≥ " + (b - a) + " rows × " + cols);
        }
        int threads = cols >= MANY_COLUMNS ? QUANTIZE_THREADS_MANY : QUANTIZE_THREADS_FEW;
        context.launch(QUANTIZE, DenseKernels.ceilDiv(cols, threads), 1, threads, 1, 0,
                new KernelArgs().matrix(w)
                .i64(w.rows()).i64(cols).matrix(u).i64(a).i64(b).i32(bits).buffer(scale).buffer(codes).matrix(dequant)
                .matrix(err));
    }

    /**
     * EXL2's packing of one group's codes (CPU twin: {@code org.exl2spark.backend.CodePacking.packGroup}): q-rows
     * [q0, q0 + count) of the group of rows [rowStart, rowStart + rows) of {@code codes} (bytes, [.. × cols]) with
     * {@code bits}-bit codes, as 32-bit words [count × cols] at byte {@code outByte} of {@code out}.
     */
    public void packCodes(DeviceBuffer codes, long cols, long rowStart, long rows, int bits, long q0, long count,
            DeviceBuffer out, long outByte) {
        if (bits < 2 || bits > 8 || rows <= 0 || q0 < 0 || count < 0 || 32 * (q0 + count) > rows * bits + 31) {
            throw new IllegalArgumentException("packing q-rows [" + q0 + ", " + (q0 + count) + ") of a group of "
                    + rows + " rows × " + bits + " bits");
        }
        codes.checkRange(rowStart * cols, rows * cols);
        out.checkRange(outByte, 4 * count * cols);
        context.launch(PACK, DenseKernels.ceilDiv(count * cols, 256), 1, 256, 1, 0, new KernelArgs().buffer(codes)
                .i64(cols).i64(rowStart).i64(rows).i32(bits).i64(q0).i64(count).address(out.address() + outByte));
    }

    /** GPTQ's lazy batch update after group [a, b): {@code W[b:] −= U[a:b, b:]ᵀ · E[a:b]}. */
    public void lazyUpdate(DeviceMatrix w, DeviceMatrix u, long a, long b, DeviceMatrix err) {
        lazyUpdate(w, u, a, b, b, w.rows(), err);
    }

    /**
     * The update of rows [from, end) only (from ≥ b), fp32 SIMT: {@code W[from:end] −= U[a:b, from:end]ᵀ · E[a:b]}
     * with E's rows at err's rows 0 .. b − a.
     */
    public void lazyUpdate(DeviceMatrix w, DeviceMatrix u, long a, long b, long from, long end, DeviceMatrix err) {
        checkFactor(u, w);
        if (a > b || from < b || end > w.rows() || from > end) {
            throw new IllegalArgumentException("lazy update of rows [" + from + ", " + end + ") of " + w.rows()
                    + " with the errors of rows [" + a + ", " + b + ")");
        }
        if (from == end || a == b) {
            return;
        }
        dense.gemm(u.block(a, from, b - a, end - from), true, err.block(0, 0, b - a, w.cols()),
                w.block(from, 0, end - from, w.cols()), -1f, 1f, EnumSet.noneOf(DenseKernels.GemmOption.class));
    }

    private static void checkWork(DeviceMatrix w, long a, long b, int bits) {
        if (bits < 2 || bits > 8 || bits == 7) {
            throw new IllegalArgumentException("unsupported bit width " + bits + " (supported: 2, 3, 4, 5, 6, 8)");
        }
        if (a < 0 || b <= a || b > w.rows()) {
            throw new IllegalArgumentException("group rows [" + a + ", " + b + ") outside the weight's " + w.rows());
        }
        if (!w.contiguous()) {
            throw new IllegalArgumentException("the GPTQ work matrix must be dense (row stride = columns)");
        }
    }

    private static void checkFactor(DeviceMatrix u, DeviceMatrix w) {
        if (u.rows() != w.rows() || u.cols() != w.rows() || !u.contiguous()) {
            throw new IllegalArgumentException("U must be a dense " + w.rows() + "×" + w.rows() + " matrix, got "
                    + u.rows() + "×" + u.cols());
        }
    }

    private static long errorBlocks(long elements) {
        return Math.max(1, DenseKernels.ceilDiv(elements, (long) ERR_THREADS * ERR_ITEMS));
    }
}
