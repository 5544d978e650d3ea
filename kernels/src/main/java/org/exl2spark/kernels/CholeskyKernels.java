package org.exl2spark.kernels;

import java.util.EnumSet;

/**
 * The GPTQ inverse-Hessian factor on the device: a blocked right-looking Cholesky and a recursive blocked triangular
 * inverse, small blocks in cholesky.cu and the big updates through {@link DenseKernels#gemm}. CPU twin:
 * {@code org.exl2spark.quant.DenseMath.upperCholeskyOfInverse}.
 */
public final class CholeskyKernels {
    public static final String FAMILY = "cholesky";
    /** Width of the diagonal blocks factored and inverted in shared memory; matches NB in cholesky.cu. */
    public static final int NB = 64;
    private static final GpuContext.KernelRef POTRF = new GpuContext.KernelRef(FAMILY, "potrf_diagonal");
    private static final GpuContext.KernelRef TRSM = new GpuContext.KernelRef(FAMILY, "trsm_panel");
    private static final GpuContext.KernelRef TRTRI = new GpuContext.KernelRef(FAMILY, "trtri_diagonal");
    private static final int PANEL_THREADS = 128;
    /** Cap on the triangular inverse's temporary panel; row panels of the off-diagonal blocks are sized to fit. */
    static final long PANEL_BYTES = 256L << 20;
    /** How many diagonal blocks between looks at the pivot status, so a failing matrix stops early. */
    private static final int STATUS_INTERVAL = 32;

    private final DenseKernels dense;
    private final GpuContext context;

    public CholeskyKernels(DenseKernels dense) {
        this.dense = dense;
        this.context = dense.context();
    }

    /**
     * Overwrites a symmetric positive definite {@code h} with U, the upper Cholesky factor of its inverse
     * ({@code h⁻¹ = Uᵀ·U}, strict lower triangle zeroed), as GPTQ needs. Returns false if h is not positive
     * definite, leaving h's strict lower triangle as it was (h symmetric), so a caller can rebuild h and damp it
     * more; throws
     * {@link ArithmeticException} if the factorization succeeded but U is not finite (fp32 overflow), h then being
     * undefined. Temporaries come from {@code scratch}.
     *
     * <p>With J the exchange matrix, the Cholesky factor of J·h·J = Rᵀ·R gives h = Ũ·Ũᵀ with Ũ = J·Rᵀ·J upper, so
     * h⁻¹ = Ũ⁻ᵀ·Ũ⁻¹ and U = Ũ⁻¹ = J·R⁻ᵀ·J: one Cholesky and one triangular inverse, no explicit h⁻¹.
     */
    public boolean upperCholeskyOfInverse(DeviceMatrix h, DeviceMemory scratch) {
        long n = DenseKernels.square(h, "upperCholeskyOfInverse");
        if (n == 0) {
            return true;
        }
        DeviceBuffer status = scratch.allocate("Cholesky status word", Long.BYTES);
        try {
            dense.reverseSquare(h, false, null);
            if (factor(h, status) != 0) {
                // the factorization wrote only the upper triangle of J·h·J, whose lower triangle is h's upper one
                // reflected: reversing again and transposing puts the untouched values back in h's lower triangle
                dense.reverseSquare(h, false, null);
                dense.transposeSquare(h);
                return false;
            }
            invertUpper(h, scratch);
            dense.transposeSquare(h);
            status.zero();
            dense.reverseSquare(h, true, status);
            if (readStatus(status) != 0) {
                throw new ArithmeticException("the inverse Cholesky factor of a " + n + "×" + n
                        + " matrix is not finite (fp32 overflow; the matrix is too ill-conditioned)");
            }
            return true;
        } finally {
            scratch.free(status);
        }
    }

    /**
     * Cholesky {@code p = Rᵀ·R} in place: R lands in p's upper triangle, the strict lower triangle is not touched.
     * Returns 0, or like LAPACK's info the 1-based index of the first pivot that was not positive.
     */
    public long choleskyUpper(DeviceMatrix p, DeviceMemory scratch) {
        DenseKernels.square(p, "choleskyUpper");
        DeviceBuffer status = scratch.allocate("Cholesky status word", Long.BYTES);
        try {
            return factor(p, status);
        } finally {
            scratch.free(status);
        }
    }

    private long factor(DeviceMatrix p, DeviceBuffer status) {
        long n = p.rows();
        status.zero();
        int step = 0;
        for (long k0 = 0; k0 < n; k0 += NB) {
            int kb = (int) Math.min(NB, n - k0);
            context.launch(POTRF, 1, 1, 256, 1, 0,
                    new KernelArgs().matrix(p).i64(p.ld()).i64(k0).i32(kb).buffer(status));
            long rest = n - k0 - kb;
            if (rest > 0) {
                context.launch(TRSM, DenseKernels.ceilDiv(rest, PANEL_THREADS), 1, PANEL_THREADS, 1, 0,
                        new KernelArgs().matrix(p).i64(p.ld()).i64(k0).i32(kb).i64(k0 + kb).i64(rest));
                DeviceMatrix panel = p.block(k0, k0 + kb, kb, rest);
                dense.gemm(panel, true, panel, p.block(k0 + kb, k0 + kb, rest, rest), -1f, 1f,
                        EnumSet.of(DenseKernels.GemmOption.C_UPPER_ONLY));
            }
            if (++step % STATUS_INTERVAL == 0 && readStatus(status) != 0) {
                break;
            }
        }
        return readStatus(status);
    }

    /**
     * Inverts the upper triangle of {@code r} in place (an upper-triangular matrix with nonzero diagonal; the strict
     * lower triangle is neither read nor written): the diagonal blocks in shared memory, then bottom-up
     * {@code X12 = −A⁻¹·B·C⁻¹} for each split [[A, B], [0, C]], in row panels so the temporary stays small.
     */
    public void invertUpper(DeviceMatrix r, DeviceMemory scratch) {
        long n = DenseKernels.square(r, "invertUpper");
        if (n == 0) {
            return;
        }
        context.launch(TRTRI, DenseKernels.ceilDiv(n, NB), 1, NB, 1, 0, new KernelArgs().matrix(r).i64(r.ld()).i64(n));
        if (n <= NB) {
            return;
        }
        long top = split(n);
        long topWidth = n - top;
        long capacity = Math.min(Math.max(PANEL_BYTES / Float.BYTES, (long) NB * topWidth), top * topWidth);
        DeviceBuffer panel = scratch.allocateFloats("triangular inverse panel", capacity);
        try {
            combine(r, 0, n, panel);
        } finally {
            scratch.free(panel);
        }
    }

    private void combine(DeviceMatrix r, long off, long size, DeviceBuffer panel) {
        if (size <= NB) {
            return;
        }
        long h = split(size);
        long w = size - h;
        combine(r, off, h, panel);
        combine(r, off + h, w, panel);
        long capacity = panel.bytes() / Float.BYTES;
        long panelRows = Math.max(1, Math.min(h, capacity / w));
        DeviceMatrix cInverse = r.block(off + h, off + h, w, w);
        for (long r0 = 0; r0 < h; r0 += panelRows) {
            long rows = Math.min(panelRows, h - r0);
            DeviceMatrix t = new DeviceMatrix(panel, 0, rows, w, w);
            // T = A⁻¹[r0:r0+rows, r0:h] · B[r0:h, :]   (A⁻¹ upper: columns before r0 are zero)
            dense.gemm(r.block(off + r0, off + r0, rows, h - r0), false, r.block(off + r0, off + h, h - r0, w), t, 1f,
                    0f, EnumSet.of(DenseKernels.GemmOption.A_UPPER_TRIANGULAR));
            // B[r0:r0+rows, :] = −T · C⁻¹; later panels read only B's rows below these
            dense.gemm(t, false, cInverse, r.block(off + r0, off + h, rows, w), -1f, 0f,
                    EnumSet.of(DenseKernels.GemmOption.B_UPPER_TRIANGULAR));
        }
    }

    /** Splits a diagonal range about in half, at a multiple of NB so every leaf is one shared-memory block. */
    static long split(long size) {
        return DenseKernels.ceilDiv(size / 2, NB) * NB;
    }

    private static long readStatus(DeviceBuffer status) {
        long[] v = {0};
        status.copyToHost(0, v, 0, 1);
        return v[0];
    }
}
