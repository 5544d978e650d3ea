package org.exl2spark.kernels;

/**
 * Launcher of tcgemm.cu: {@code c = alpha·a·bᵀ (+ bias) + beta·c} on the tensor cores for fp32 matrices a [m, k] and
 * b [n, k] (both k-contiguous, as a linear layer's input and its weight [out, in] are), or for fp16 ones
 * ({@link #gemmNTHalf}). CPU twin: a BLAS sgemm with b transposed ({@code CpuBackend.linear} / {@code matmul}).
 */
public final class TensorCoreGemm {
    public static final String FAMILY = "tcgemm";

    /** Shared memory per block of a device of compute capability 8.6 or 8.9: what the small variants fit. */
    public static final int SMALL_DEVICE_SHARED_BYTES = 99 * 1024;
    /** Shared memory per block of an A100 (8.0). */
    public static final int A100_SHARED_BYTES = 163 * 1024;

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

        int halfSharedBytes() {
            return TensorCoreGemm.halfSharedBytes(tileCols, stages);
        }
    }

    private static final int TILE_ROWS = 128;
    private static final int THREADS = 256;
    /** Pipeline depth of the wide variants (4 measured no faster on the H100, and 3 fits an A100's 163 KiB). */
    private static final int STAGES = 3;
    /** The fallback of every precision: 128 × 128 tiles, 2 stages (72 KiB), for devices with ≤ 99 KiB per block. */
    private static final int SMALL_COLS = 128;
    private static final int SMALL_STAGES = 2;

    /** tcgemm.cu's fp16-storage kernels: k tiles of 64 halves in rows padded by 8. */
    private static final int HALF_TILE_K = 64 + 8;
    /** Stages of the wide fp16-storage variants: 4 where a block may have 216 KiB (H100), else 3 (A100's 162 KiB). */
    private static final int HALF_STAGES = 4;

    private final GpuContext context;
    private final boolean small;
    /** The fp16-storage variant: wide 4-stage, wide 3-stage or small, by the device's shared memory per block. */
    private final Variant halfVariant;

    /** The widest tiles whose shared memory the device gives a block. */
    public TensorCoreGemm(GpuContext context) {
        this(context, context.device().maxSharedMemoryPerBlockOptin());
    }

    /**
     * The variants a device with {@code sharedBytesPerBlock} of shared memory per block runs (on a bigger device: to
     * test them). The fp32-operand precisions take the wide tiles from 162 KiB on, else the 72 KiB ones (sm_86,
     * sm_89); fp16 operands take wide tiles in 4 stages from 216 KiB (H100), in 3 from 162 KiB (A100), else small.
     */
    public TensorCoreGemm(GpuContext context, int sharedBytesPerBlock) {
        this.context = context;
        this.small = sharedBytesPerBlock < sharedBytes(Precision.TF32.tileCols, STAGES);
        if (sharedBytesPerBlock < halfSharedBytes(256, STAGES)) {
            this.halfVariant = new Variant("gemm_nt_h16_small", SMALL_COLS, SMALL_STAGES);
        } else if (sharedBytesPerBlock < halfSharedBytes(256, HALF_STAGES)) {
            this.halfVariant = new Variant("gemm_nt_h16_3", 256, STAGES);
        } else {
            this.halfVariant = new Variant("gemm_nt_h16", 256, HALF_STAGES);
        }
    }

    /** The fp16-operand kernel this launcher runs, for reports. */
    public String halfKernel() {
        return halfVariant.kernel();
    }

    /** The fp16-storage kernels' shared memory per block: stages × (BM + BN) × (64 + 8) halves. */
    private static int halfSharedBytes(int tileCols, int stages) {
        return stages * (TILE_ROWS + tileCols) * HALF_TILE_K * 2;
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
        Variant v = variant(precision);
        launch("gemmNT", v, v.sharedBytes(), Operand.of(a), Operand.of(b), c, bias, alpha, beta);
    }

    /**
     * {@code c = alpha·a·bᵀ + bias + beta·c} for fp16 operands a [m, k] and b [n, k] in device memory, fp32
     * accumulation and output (the FP16 precision's products without its rounding on the way in). With beta = 0 the
     * old contents of c are not read. Operands whose rows start on 16-byte boundaries take 16-byte copies.
     */
    public void gemmNTHalf(DeviceHalfMatrix a, DeviceHalfMatrix b, DeviceMatrix c, DeviceMatrix bias, float alpha,
            float beta) {
        launch("gemmNTHalf", halfVariant, halfVariant.halfSharedBytes(), Operand.of(a), Operand.of(b), c, bias, alpha,
                beta);
    }

    /** A k-contiguous operand of either element type, as the kernels take it. */
    private record Operand(long rows, long cols, long ld, long address, boolean vectorAligned) {
        static Operand of(DeviceMatrix m) {
            return new Operand(m.rows(), m.cols(), m.ld(), m.address(), m.vectorAligned());
        }

        static Operand of(DeviceHalfMatrix m) {
            return new Operand(m.rows(), m.cols(), m.ld(), m.address(), m.vectorAligned());
        }
    }

    private void launch(String op, Variant v, int sharedBytes, Operand a, Operand b, DeviceMatrix c, DeviceMatrix bias,
            float alpha, float beta) {
        long m = a.rows();
        long n = b.rows();
        long k = a.cols();
        if (b.cols() != k || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException(op + " shapes: a " + m + "×" + k + ", b " + n + "×" + b.cols()
                    + " (transposed), c " + c.rows() + "×" + c.cols());
        }
        if (bias != null && bias.elements() != n) {
            throw new IllegalArgumentException(op + ": bias of " + bias.elements() + " elements for " + n + " columns");
        }
        if (m == 0 || n == 0) {
            return;
        }
        boolean vec = k == 0 || a.vectorAligned() && b.vectorAligned();
        long tiles = DenseKernels.ceilDiv(m, TILE_ROWS) * DenseKernels.ceilDiv(n, v.tileCols());
        KernelArgs args = new KernelArgs().i64(m).i64(n).i64(k).f32(alpha)
                .address(a.address()).i64(a.ld())
                .address(b.address()).i64(b.ld())
                .address(bias == null ? 0 : bias.address())
                .f32(beta).matrix(c).i64(c.ld());
        context.launch(new GpuContext.KernelRef(FAMILY, v.kernel() + (vec ? "_vec" : "")), tiles, 1, THREADS, 1,
                sharedBytes, args);
    }
}
