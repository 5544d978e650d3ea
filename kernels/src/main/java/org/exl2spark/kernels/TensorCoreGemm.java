package org.exl2spark.kernels;

/**
 * Launcher of tcgemm.cu: {@code c = alpha·a·bᵀ (+ bias) + beta·c} on the tensor cores for fp32 matrices a [m, k] and
 * b [n, k] (both k-contiguous, as a linear layer's input and its weight [out, in] are). CPU twin: a BLAS sgemm with
 * b transposed ({@code CpuBackend.linear} / {@code matmul}).
 */
public final class TensorCoreGemm {
    public static final String FAMILY = "tcgemm";

    /** How the fp32 operands meet the tensor cores. */
    public enum Precision {
        /** Operands rounded to TF32 (10-bit mantissa), fp32 accumulation: about 1e-3 relative error, fastest. */
        TF32("gemm_nt_tf32", 256),
        /**
         * Each operand split into a TF32 head and tail, three products per step: about fp32's accuracy at a third
         * of the TF32 rate.
         */
        TF32X3("gemm_nt_tf32x3", 128),
        /**
         * Operands rounded to fp16 (nearest even) as the tiles are read, fp32 accumulation: TF32's 10-bit mantissa at
         * twice its rate per instruction, but |x| &gt; 65504 becomes infinite and |x| &lt; 6.1e-5 loses bits (the
         * range of ExLlamaV2's fp16 forwards). CPU twin: the fp32 product of the operands rounded to fp16.
         */
        FP16("gemm_nt_f16", 256);

        private final String kernel;
        private final int tileCols;

        Precision(String kernel, int tileCols) {
            this.kernel = kernel;
            this.tileCols = tileCols;
        }
    }

    /** One compiled tile configuration of tcgemm.cu (its TC_GEMM list). */
    private record Variant(String kernel, int tileCols, int stages) {
        int sharedBytes() {
            return TensorCoreGemm.sharedBytes(tileCols, stages);
        }
    }

    private static final int TILE_ROWS = 128;
    private static final int THREADS = 256;
    /** Pipeline depth of the wide variants (4 measured no faster on the H100, and 3 fits an A100's 163 KiB). */
    private static final int STAGES = 3;
    /** The fallback of every precision: 128 × 128 tiles, 2 stages (72 KiB), for devices with ≤ 99 KiB per block. */
    private static final int SMALL_COLS = 128;
    private static final int SMALL_STAGES = 2;

    private final GpuContext context;
    private final boolean small;

    /** The widest tiles whose shared memory the device gives a block. */
    public TensorCoreGemm(GpuContext context) {
        this(context, context.device().maxSharedMemoryPerBlockOptin() < sharedBytes(Precision.TF32.tileCols, STAGES));
    }

    /**
     * @param smallTiles use the 72 KiB variants, which devices with at most 99 KiB of shared memory per block run
     *                   (on a bigger device: to test them)
     */
    public TensorCoreGemm(GpuContext context, boolean smallTiles) {
        this.context = context;
        this.small = smallTiles;
    }

    /** tcgemm.cu's shared memory per block: STAGES × (BM + BN) × (BK + 4) floats. */
    private static int sharedBytes(int tileCols, int stages) {
        return stages * (TILE_ROWS + tileCols) * (32 + 4) * Float.BYTES;
    }

    private Variant variant(Precision p) {
        return small ? new Variant(p.kernel + "_small", SMALL_COLS, SMALL_STAGES) : new Variant(p.kernel, p.tileCols, STAGES);
    }

    /**
     * {@code c = alpha·a·bᵀ + bias + beta·c}: a [m, k], b [n, k], c [m, n], bias a 1×n row (or null). With beta = 0
     * the old contents of c are not read. Views with any row stride work; rows starting on 16-byte boundaries take
     * the faster 16-byte copies.
     */
    public void gemmNT(DeviceMatrix a, DeviceMatrix b, DeviceMatrix c, DeviceMatrix bias, float alpha, float beta,
            Precision precision) {
        long m = a.rows();
        long n = b.rows();
        long k = a.cols();
        if (b.cols() != k || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("gemmNT shapes: a " + m + "×" + k + ", b " + n + "×" + b.cols()
                    + " (transposed), c " + c.rows() + "×" + c.cols());
        }
        if (bias != null && bias.elements() != n) {
            throw new IllegalArgumentException("gemmNT: bias of " + bias.elements() + " elements for " + n + " columns");
        }
        if (m == 0 || n == 0) {
            return;
        }
        boolean vec = k == 0 || a.vectorAligned() && b.vectorAligned();
        Variant v = variant(precision);
        long tiles = DenseKernels.ceilDiv(m, TILE_ROWS) * DenseKernels.ceilDiv(n, v.tileCols());
        KernelArgs args = new KernelArgs().i64(m).i64(n).i64(k).f32(alpha)
                .address(a.address()).i64(a.ld())
                .address(b.address()).i64(b.ld())
                .address(bias == null ? 0 : bias.address())
                .f32(beta).matrix(c).i64(c.ld());
        context.launch(new GpuContext.KernelRef(FAMILY, v.kernel() + (vec ? "_vec" : "")), tiles, 1, THREADS, 1,
                v.sharedBytes(), args);
    }
}
