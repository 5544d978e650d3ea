package org.exl2spark.kernels;

/**
 * Launchers of forward.cu: the transformer forward's row-wise and elementwise operations on dense row-major fp32
 * device matrices. Shapes are checked by the caller (the CUDA backend); here only what the kernels themselves need:
 * dense storage, 16-byte alignment of the elementwise operands, the attention's head size. CPU twins: the operations
 * of the same names in {@code org.exl2spark.backend.CpuBackend}.
 */
public final class ForwardKernels {
    public static final String FAMILY = "forward";
    private static final GpuContext.KernelRef EMBED = new GpuContext.KernelRef(FAMILY, "embed_rows");
    private static final GpuContext.KernelRef RMS_NORM = new GpuContext.KernelRef(FAMILY, "rms_norm");
    private static final GpuContext.KernelRef ROPE = new GpuContext.KernelRef(FAMILY, "rope_inplace");
    private static final GpuContext.KernelRef ATTENTION = new GpuContext.KernelRef(FAMILY, "attention_causal");
    private static final GpuContext.KernelRef SWIGLU = new GpuContext.KernelRef(FAMILY, "swiglu");
    private static final GpuContext.KernelRef ADD = new GpuContext.KernelRef(FAMILY, "add_tensors");
    private static final GpuContext.KernelRef ROUND_TO_HALF = new GpuContext.KernelRef(FAMILY, "round_to_half");
    private static final GpuContext.KernelRef FLOAT_TO_HALF = new GpuContext.KernelRef(FAMILY, "float_to_half");
    private static final GpuContext.KernelRef SOFTMAX = new GpuContext.KernelRef(FAMILY, "softmax_rows");
    private static final GpuContext.KernelRef KL = new GpuContext.KernelRef(FAMILY, "kl_rows");
    private static final GpuContext.KernelRef TRANSPOSE = new GpuContext.KernelRef(FAMILY, "transpose_2d");
    private static final GpuContext.KernelRef ERROR_PARTIALS = new GpuContext.KernelRef(FAMILY,
            "relative_error_partials");

    private static final int ROW_THREADS = 256;           // forward.cu ROW_THREADS
    private static final int ELEMENT_THREADS = 256;
    private static final int ATTENTION_QUERIES = 32;      // forward.cu ATT_QB
    private static final int ATTENTION_KEYS = 32;         // forward.cu ATT_KT
    private static final int ATTENTION_THREADS = 128;
    /** The attention kernel spreads a head's dims over a warp's lanes, at most 8 per lane. */
    public static final int MAX_HEAD_DIM = 256;
    private static final int TRANSPOSE_TILE = 32;
    private static final int TRANSPOSE_ROWS = 8;

    private final GpuContext context;
    /** Blocks of the grid-stride kernels: enough to fill every multiprocessor several times over. */
    private final long strideBlocks;

    public ForwardKernels(GpuContext context) {
        this.context = context;
        this.strideBlocks = 8L * Math.max(1, context.device().multiprocessors());
    }

    /** {@code out[r, :] = table[ids[r], :]}; ids is a device buffer of out.rows() ints, each a row of table. */
    public void embed(DeviceBuffer ids, DeviceMatrix table, DeviceMatrix out) {
        dense(table, "embed table");
        dense(out, "embed output");
        ids.checkRange(0, 4L * out.rows());
        context.launch(EMBED, out.rows(), 1, ROW_THREADS, 1, 0,
                new KernelArgs().buffer(ids).matrix(table).matrix(out).i64(out.cols()));
    }

    /** RMSNorm of each row of x into out (out may be x); weight has x.cols() elements. */
    public void rmsNorm(DeviceMatrix x, DeviceMatrix weight, float eps, DeviceMatrix out) {
        dense(x, "rmsNorm input");
        dense(out, "rmsNorm output");
        context.launch(RMS_NORM, x.rows(), 1, ROW_THREADS, 1, 0,
                new KernelArgs().matrix(x).matrix(weight).matrix(out).i64(x.cols()).f32(eps));
    }

    /** Rotary embedding in place on x [rows, heads·headDim], row r at position r mod seqLen. */
    public void rope(DeviceMatrix x, long seqLen, int heads, int headDim, DeviceMatrix cos, DeviceMatrix sin) {
        dense(x, "rope input");
        long pairs = x.rows() * heads * (headDim / 2);
        context.launch(ROPE, Math.min(strideBlocks, DenseKernels.ceilDiv(pairs, ELEMENT_THREADS)), 1,
                ELEMENT_THREADS, 1, 0, new KernelArgs().matrix(x).matrix(cos).matrix(sin).i64(x.rows()).i64(seqLen)
                        .i32(heads).i32(headDim));
    }

    /**
     * Causal grouped-query attention over {@code batch} sequences of {@code seqLen} tokens: q and out
     * [batch·seqLen, heads·headDim], k and v [batch·seqLen, kvHeads·headDim]; window > 0 limits each query to the
     * last {@code window} positions (itself included).
     */
    public void attention(DeviceMatrix q, DeviceMatrix k, DeviceMatrix v, DeviceMatrix out, long batch, long seqLen,
            int heads, int kvHeads, int headDim, int window) {
        if (headDim % 32 != 0 || headDim > MAX_HEAD_DIM) {
            throw new IllegalArgumentException("attention kernel: head dim " + headDim + " is not a multiple of 32"
                    + " up to " + MAX_HEAD_DIM);
        }
        for (DeviceMatrix m : new DeviceMatrix[] {q, k, v, out}) {
            dense(m, "attention operand");
        }
        long qTiles = DenseKernels.ceilDiv(seqLen, ATTENTION_QUERIES);
        long floats = ATTENTION_QUERIES * (long) headDim + ATTENTION_KEYS * (headDim + 1L)
                + ATTENTION_KEYS * (long) headDim + (long) ATTENTION_QUERIES * ATTENTION_KEYS;
        context.launch(ATTENTION, qTiles * heads, batch, ATTENTION_THREADS, 1, Math.toIntExact(4 * floats),
                new KernelArgs().matrix(q).matrix(k).matrix(v).matrix(out).i64(seqLen).i32(heads).i32(kvHeads)
                        .i32(headDim).i32(window).f32((float) (1.0 / Math.sqrt(headDim)))
                        .i32(Math.toIntExact(qTiles)));
    }

    /** {@code out = silu(gate)·up} elementwise; out may be gate or up. */
    public void swiGlu(DeviceMatrix gate, DeviceMatrix up, DeviceMatrix out) {
        elementwise(SWIGLU, gate, up, out);
    }

    /** {@code out = a + b} elementwise; out may be a or b. */
    public void add(DeviceMatrix a, DeviceMatrix b, DeviceMatrix out) {
        elementwise(ADD, a, b, out);
    }

    /** {@code out = float(fp16(x))} elementwise, clamped to ±65504; out may be x. */
    public void roundToHalf(DeviceMatrix x, DeviceMatrix out) {
        elementwise(ROUND_TO_HALF, x, x, out);
    }

    /** {@code out = fp16(x)} elementwise into fp16 storage, rounded and clamped as {@link #roundToHalf}. */
    public void toHalf(DeviceMatrix x, DeviceHalfMatrix out) {
        dense(x, "toHalf input");
        if (out.rows() != x.rows() || out.cols() != x.cols()) {
            throw new IllegalArgumentException("toHalf: " + x.rows() + "×" + x.cols() + " into " + out.rows() + "×"
                    + out.cols());
        }
        if (x.address() % 16 != 0 || out.address() % 8 != 0) {
            throw new IllegalArgumentException("toHalf: operands at " + x.address() + " and " + out.address()
                    + " are not 16- and 8-byte aligned");
        }
        long n = x.elements();
        context.launch(FLOAT_TO_HALF, Math.max(1, Math.min(strideBlocks, DenseKernels.ceilDiv(n / 4, ELEMENT_THREADS))),
                1, ELEMENT_THREADS, 1, 0, new KernelArgs().matrix(x).address(out.address()).i64(n));
    }

    /** Softmax (or log-softmax) of each row; out may be x. */
    public void softmax(DeviceMatrix x, DeviceMatrix out, boolean log) {
        dense(x, "softmax input");
        dense(out, "softmax output");
        context.launch(SOFTMAX, x.rows(), 1, ROW_THREADS, 1, 0,
                new KernelArgs().matrix(x).matrix(out).i64(x.cols()).i32(log ? 1 : 0));
    }

    /** {@code out[r] = KL(p_r ‖ q_r)} of rows of log-probabilities; out has p.rows() elements. */
    public void klDivergence(DeviceMatrix p, DeviceMatrix q, DeviceMatrix out) {
        dense(p, "KL reference");
        dense(q, "KL log-probabilities");
        context.launch(KL, p.rows(), 1, ROW_THREADS, 1, 0,
                new KernelArgs().matrix(p).matrix(q).matrix(out).i64(p.cols()));
    }

    /**
     * Slices each row of the block error's sums is split into: enough blocks to fill every multiprocessor, at least
     * a few thousand elements each.
     */
    public int errorSlices(long rows, long rowSize) {
        long byOccupancy = DenseKernels.ceilDiv(strideBlocks, Math.max(1, rows));
        long bySize = DenseKernels.ceilDiv(rowSize, 8L * ROW_THREADS);
        return (int) Math.max(1, Math.min(byOccupancy, bySize));
    }

    /**
     * Per row r of y and reference ([rows, rowSize], dense) and slice p of {@code slices}: the doubles
     * {@code partial[(r·slices + p)·2]} = Σ (clamp(y) − ref)² and {@code [.. + 1]} = Σ ref² (y clamped to ±65504).
     */
    public void relativeErrorPartials(DeviceMatrix y, DeviceMatrix reference, int slices, DeviceBuffer partial) {
        dense(y, "block error output");
        dense(reference, "block error reference");
        if (y.rows() != reference.rows() || y.cols() != reference.cols()) {
            throw new IllegalArgumentException("block error: output " + y.rows() + "×" + y.cols() + ", reference "
                    + reference.rows() + "×" + reference.cols());
        }
        if (y.rows() > 65535 || slices < 1) {
            throw new IllegalArgumentException("block error: " + y.rows() + " rows (at most 65535), " + slices
                    + " slices");
        }
        partial.checkRange(0, 16L * y.rows() * slices);
        if (y.rows() == 0) {
            return;
        }
        context.launch(ERROR_PARTIALS, slices, y.rows(), ROW_THREADS, 1, 0, new KernelArgs().matrix(y)
                .matrix(reference).i64(y.cols()).i32(slices).buffer(partial));
    }

    /** {@code out = inᵀ}: in [rows, cols], out [cols, rows], both dense. */
    public void transpose(DeviceMatrix in, DeviceMatrix out) {
        dense(in, "transpose input");
        dense(out, "transpose output");
        if (out.rows() != in.cols() || out.cols() != in.rows()) {
            throw new IllegalArgumentException("transpose: " + in.rows() + "×" + in.cols() + " into " + out.rows()
                    + "×" + out.cols());
        }
        long colTiles = DenseKernels.ceilDiv(in.cols(), TRANSPOSE_TILE);
        long rowTiles = DenseKernels.ceilDiv(in.rows(), TRANSPOSE_TILE);
        // grid y is at most 65535 tiles: taller matrices go in slices of rows
        for (long t0 = 0; t0 < rowTiles; t0 += 65535) {
            long tiles = Math.min(65535, rowTiles - t0);
            context.launch(TRANSPOSE, colTiles, tiles, TRANSPOSE_TILE, TRANSPOSE_ROWS, 0, new KernelArgs().matrix(in)
                    .matrix(out).i64(in.rows()).i64(in.cols()).i64(t0 * TRANSPOSE_TILE));
        }
    }

    private void elementwise(GpuContext.KernelRef kernel, DeviceMatrix a, DeviceMatrix b, DeviceMatrix out) {
        for (DeviceMatrix m : new DeviceMatrix[] {a, b, out}) {
            dense(m, kernel.name() + " operand");
            if (m.address() % 16 != 0) {
                throw new IllegalArgumentException(kernel + ": operand at " + m.address() + " is not 16-byte aligned");
            }
        }
        long n = a.elements();
        context.launch(kernel, Math.max(1, Math.min(strideBlocks, DenseKernels.ceilDiv(n / 4, ELEMENT_THREADS))), 1,
                ELEMENT_THREADS, 1, 0, new KernelArgs().matrix(a).matrix(b).matrix(out).i64(n));
    }

    private static void dense(DeviceMatrix m, String what) {
        if (!m.contiguous()) {
            throw new IllegalArgumentException(what + " must be a dense matrix, got row stride " + m.ld() + " for "
                    + m.cols() + " columns");
        }
    }
}
