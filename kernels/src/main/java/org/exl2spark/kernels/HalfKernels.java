package org.exl2spark.kernels;

/**
 * Launchers of half.cu: the GPTQ Gram matrix from fp16-rounded activations on the fp16 tensor cores, and the widening
 * of 16-bit (fp16 / bf16) storage to fp32 on the device. CPU twins: {@code Backend.accumulateHalfGram}'s default
 * (round to fp16, then the fp32 Gram) and {@code org.exl2spark.io.Half} / the checkpoint reader's bf16 widening.
 */
public final class HalfKernels {
    public static final String FAMILY = "half";
    private static final GpuContext.KernelRef OPERAND = new GpuContext.KernelRef(FAMILY, "half_gram_operand");
    private static final GpuContext.KernelRef WIDEN = new GpuContext.KernelRef(FAMILY, "widen_16bit");

    /** Gram tile of half.cu: 128 rows (i) × 256 columns (j), groups of 16 row tiles. */
    private static final long TILE_ROWS = 128;
    private static final long TILE_COLS = 256;
    /** Rows of the fp16 operand are padded to a multiple of this (every variant's k step), columns to 8. */
    public static final long ROW_MULTIPLE = 64;
    public static final long COL_MULTIPLE = 8;
    private static final long GROUP_ROWS = 16;
    private static final int THREADS = 256;

    /** The compiled Gram configurations of half.cu (its HALF_GRAM list): k step and pipeline depth. */
    public enum GramVariant {
        K32("half_gram_upper_k32", 32, 4),
        K64("half_gram_upper_k64", 64, 3),
        /** For devices with at most 99 KiB of shared memory per block (sm_86, sm_89). */
        SMALL("half_gram_upper_small", 32, 3);

        private final GpuContext.KernelRef kernel;
        private final int kStep;
        private final int stages;

        GramVariant(String kernel, int kStep, int stages) {
            this.kernel = new GpuContext.KernelRef(FAMILY, kernel);
            this.kStep = kStep;
            this.stages = stages;
        }

        /** Shared memory per block: stages × k step × (136 + 264) halves. */
        int sharedBytes() {
            return stages * kStep * (136 + 264) * 2;
        }
    }

    /** The variant a device runs when its shared memory allows. */
    private static final GramVariant PREFERRED = GramVariant.K64;
    /** Grid-stride kernels: enough blocks to fill any device, each thread looping over the rest. */
    private static final long MAX_STREAM_BLOCKS = 4096;

    private final GpuContext context;
    private final GramVariant variant;

    /** The preferred Gram variant, or the small one where the device's shared memory per block is too little. */
    public HalfKernels(GpuContext context) {
        this(context, context.device().maxSharedMemoryPerBlockOptin() < PREFERRED.sharedBytes() ? GramVariant.SMALL
                : PREFERRED);
    }

    /** A given Gram variant (the self-test times them apart). */
    public HalfKernels(GpuContext context, GramVariant variant) {
        this.context = context;
        this.variant = variant;
    }

    /** Bytes of the zero-padded fp16 copy of x [rows, n] that {@link #accumulateGram} reads. */
    public static long operandBytes(long rows, long n) {
        return 2 * roundUp(rows, ROW_MULTIPLE) * roundUp(n, COL_MULTIPLE);
    }

    /**
     * {@code gram += fp16(x)ᵀ·fp16(x)} on gram's upper triangle (j ≥ i; the rest untouched): x [rows, n] rounded to
     * fp16 (nearest even, clamped to ±65504) into {@code operand} (at least {@link #operandBytes} bytes, free for
     * the call), then the product on the tensor cores with fp32 accumulation. Every fp16 product is exact in fp32, so
     * this differs from the fp32 Gram of the rounded x only in the order of the additions.
     */
    public void accumulateGram(DeviceMatrix x, DeviceBuffer operand, DeviceMatrix gram) {
        long rows = x.rows();
        long n = x.cols();
        if (gram.rows() != n || gram.cols() != n) {
            throw new IllegalArgumentException("half Gram: x " + rows + "×" + n + " needs gram " + n + "×" + n + ", got "
                    + gram.rows() + "×" + gram.cols());
        }
        if (rows == 0 || n == 0) {
            return;
        }
        long kPad = roundUp(rows, ROW_MULTIPLE);
        long ldh = roundUp(n, COL_MULTIPLE);
        operand.checkRange(0, operandBytes(rows, n));
        long chunks = kPad * (ldh / COL_MULTIPLE);
        context.launch(OPERAND, Math.min(MAX_STREAM_BLOCKS, DenseKernels.ceilDiv(chunks, THREADS)), 1, THREADS, 1, 0,
                new KernelArgs().matrix(x).i64(rows).i64(n).i64(x.ld()).i32(x.vectorAligned() ? 1 : 0)
                        .buffer(operand).i64(kPad).i64(ldh));
        context.launch(variant.kernel, gramBlocks(n), 1, THREADS, 1, variant.sharedBytes(),
                new KernelArgs().i64(n).i64(kPad).buffer(operand).i64(ldh).matrix(gram).i64(gram.ld()));
    }

    /**
     * Blocks of the Gram grid: per group of 16 row tiles, its rows times the column tiles from the one holding the
     * group's first row on (half.cu enumerates them in the same order).
     */
    static long gramBlocks(long n) {
        long mTiles = DenseKernels.ceilDiv(n, TILE_ROWS);
        long nTiles = DenseKernels.ceilDiv(n, TILE_COLS);
        long blocks = 0;
        for (long firstM = 0; firstM < mTiles; firstM += GROUP_ROWS) {
            long rows = Math.min(GROUP_ROWS, mTiles - firstM);
            blocks += rows * (nTiles - Math.min(nTiles, firstM * TILE_ROWS / TILE_COLS));
        }
        return blocks;
    }

    /**
     * {@code out[outElement + i] = float(in[i])} for {@code count} 16-bit values at the start of {@code in}: fp16, or
     * bfloat16 when {@code bf16}. Exact (every 16-bit value is an fp32 value).
     */
    public void widen(DeviceBuffer in, boolean bf16, DeviceBuffer out, long outElement, long count) {
        if (count == 0) {
            return;
        }
        in.checkRange(0, 2 * count);
        out.checkRange(4 * outElement, 4 * count);
        context.launch(WIDEN, Math.min(MAX_STREAM_BLOCKS, DenseKernels.ceilDiv(count, THREADS)), 1, THREADS, 1, 0,
                new KernelArgs().buffer(in).i32(bf16 ? 1 : 0).address(out.address(4 * outElement)).i64(count));
    }

    private static long roundUp(long v, long multiple) {
        return (v + multiple - 1) / multiple * multiple;
    }
}
