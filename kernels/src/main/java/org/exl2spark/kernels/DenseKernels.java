package org.exl2spark.kernels;

import java.util.EnumSet;
import java.util.Set;

/**
 * Launchers of dense.cu: GEMM with triangular options, the Hessian (Gram) accumulation built on it, and in-place
 * square-matrix copies. CPU twins: {@code org.exl2spark.quant.DenseMath} (gemm, syrkTransposedUpper, mirrorUpper).
 */
public final class DenseKernels {
    public static final String FAMILY = "dense";
    private static final GpuContext.KernelRef GEMM_TN = new GpuContext.KernelRef(FAMILY, "gemm_tn");
    private static final GpuContext.KernelRef GEMM_NN = new GpuContext.KernelRef(FAMILY, "gemm_nn");
    private static final GpuContext.KernelRef SYMMETRIZE = new GpuContext.KernelRef(FAMILY, "symmetrize_upper");
    private static final GpuContext.KernelRef TRANSPOSE = new GpuContext.KernelRef(FAMILY, "transpose_square");
    private static final GpuContext.KernelRef REVERSE = new GpuContext.KernelRef(FAMILY, "reverse_square");
    private static final GpuContext.KernelRef ADD_DIAGONAL = new GpuContext.KernelRef(FAMILY, "add_diagonal");
    private static final GpuContext.KernelRef GATHER_TRANSPOSED = new GpuContext.KernelRef(FAMILY, "gather_transposed");
    private static final GpuContext.KernelRef GATHER_TRANSPOSED_HALF = new GpuContext.KernelRef(FAMILY,
            "gather_transposed_half");
    private static final GpuContext.KernelRef GEMV_F64 = new GpuContext.KernelRef(FAMILY, "gemv_f64");

    private static final int TILE = 128;      // GEMM output tile, both ways
    private static final int COPY_TILE = 32;  // tiles of the in-place copies
    private static final int COPY_ROWS = 8;
    /** CUDA's limit on a grid's y dimension. */
    private static final long MAX_GRID_Y = 65535;

    // option bits of dense.cu
    private static final int TRI_A = 1;
    private static final int TRI_B = 2;
    private static final int UPPER_C = 4;
    private static final int VEC_A = 8;
    private static final int VEC_B = 16;
    private static final int VEC_C = 32;

    /** Structure a GEMM may exploit or must respect. */
    public enum GemmOption {
        /** op(A) is upper triangular ({@code op(A)[m][k] = 0} for k < m): those elements are not read. */
        A_UPPER_TRIANGULAR,
        /** B is upper triangular ({@code B[k][n] = 0} for k > n): those elements are not read. */
        B_UPPER_TRIANGULAR,
        /** Only C's upper triangle (n ≥ m, incl. the diagonal) is computed and written. */
        C_UPPER_ONLY
    }

    private final GpuContext context;

    public DenseKernels(GpuContext context) {
        this.context = context;
    }

    public GpuContext context() {
        return context;
    }

    /**
     * {@code c = beta·c + alpha·op(a)·b} with op(a) = aᵀ when {@code transposeA} (a stored [k × m]) else a ([m × k]);
     * b is [k × n], c [m × n]. With beta = 0 the old contents of c are not read.
     */
    public void gemm(DeviceMatrix a, boolean transposeA, DeviceMatrix b, DeviceMatrix c, float alpha, float beta,
            Set<GemmOption> options) {
        long m = c.rows();
        long n = c.cols();
        long k = transposeA ? a.rows() : a.cols();
        long am = transposeA ? a.cols() : a.rows();
        if (am != m || b.rows() != k || b.cols() != n) {
            throw new IllegalArgumentException("gemm shapes: op(A) " + am + "×" + k + ", B " + b.rows() + "×" + b.cols()
                    + ", C " + m + "×" + n);
        }
        if (m == 0 || n == 0) {
            return;
        }
        int flags = (options.contains(GemmOption.A_UPPER_TRIANGULAR) ? TRI_A : 0)
                | (options.contains(GemmOption.B_UPPER_TRIANGULAR) ? TRI_B : 0)
                | (options.contains(GemmOption.C_UPPER_ONLY) ? UPPER_C : 0)
                | (k > 0 && a.vectorAligned() ? VEC_A : 0)
                | (k > 0 && b.vectorAligned() ? VEC_B : 0)
                | (c.vectorAligned() ? VEC_C : 0);
        KernelArgs args = new KernelArgs().i64(m).i64(n).i64(k).f32(alpha)
                .address(k > 0 ? a.address() : 0).i64(a.ld())
                .address(k > 0 ? b.address() : 0).i64(b.ld())
                .f32(beta).matrix(c).i64(c.ld()).i32(flags);
        context.launch(transposeA ? GEMM_TN : GEMM_NN, ceilDiv(n, TILE), ceilDiv(m, TILE), 256, 1, 0, args);
    }

    public void gemm(DeviceMatrix a, boolean transposeA, DeviceMatrix b, DeviceMatrix c, float alpha, float beta) {
        gemm(a, transposeA, b, c, alpha, beta, EnumSet.noneOf(GemmOption.class));
    }

    /**
     * The GPTQ Hessian accumulation {@code gram += xᵀ·x} for activations x [rows × n]: only gram's upper triangle
     * is updated; {@link #symmetrize} finishes it. CPU twin: {@code DenseMath.syrkTransposedUpper}.
     */
    public void accumulateGram(DeviceMatrix x, DeviceMatrix gram) {
        gemm(x, true, x, gram, 1f, 1f, EnumSet.of(GemmOption.C_UPPER_ONLY));
    }

    /**
     * Square matrix: lower triangle := upper triangle mirrored, and every element divided by {@code divisor} (a
     * division, as the CPU twin {@code CpuBackend.finishHessian} does, so both round alike).
     */
    public void symmetrize(DeviceMatrix h, float divisor) {
        long n = square(h, "symmetrize");
        long tiles = ceilDiv(n, COPY_TILE);
        context.launch(SYMMETRIZE, tiles, tiles, COPY_TILE, COPY_ROWS, 0,
                new KernelArgs().matrix(h).i64(n).i64(h.ld()).f32(divisor));
    }

    /**
     * {@code dst[i][j] = src[rowIndex[j]][colIndex[i]]}, a null index meaning the identity (int indices on the
     * device, one per dst column / row). CPU twin: {@code CpuBackend.gatherTransposed}.
     */
    public void gatherTransposed(DeviceMatrix src, DeviceBuffer rowIndex, DeviceBuffer colIndex, DeviceMatrix dst) {
        gatherTransposed(GATHER_TRANSPOSED, src, rowIndex, colIndex, dst.rows(), dst.cols(), dst.address(), dst.ld());
    }

    /** {@link #gatherTransposed} into fp16 storage: each value rounded to fp16 as ForwardKernels#toHalf rounds it. */
    public void gatherTransposedToHalf(DeviceMatrix src, DeviceBuffer rowIndex, DeviceBuffer colIndex,
            DeviceHalfMatrix dst) {
        gatherTransposed(GATHER_TRANSPOSED_HALF, src, rowIndex, colIndex, dst.rows(), dst.cols(), dst.address(),
                dst.ld());
    }

    private void gatherTransposed(GpuContext.KernelRef kernel, DeviceMatrix src, DeviceBuffer rowIndex,
            DeviceBuffer colIndex, long outRows, long outCols, long dstAddress, long ldd) {
        if ((rowIndex == null && outCols != src.rows()) || (colIndex == null && outRows != src.cols())) {
            throw new IllegalArgumentException("gatherTransposed: dst " + outRows + "×" + outCols + " from src "
                    + src.rows() + "×" + src.cols());
        }
        if (rowIndex != null) {
            rowIndex.checkRange(0, 4L * outCols);
        }
        if (colIndex != null) {
            colIndex.checkRange(0, 4L * outRows);
        }
        if (ceilDiv(outRows, COPY_TILE) > MAX_GRID_Y) {
            throw new IllegalArgumentException("gatherTransposed: " + outRows + " rows exceed the grid's height");
        }
        context.launch(kernel, ceilDiv(outCols, COPY_TILE), ceilDiv(outRows, COPY_TILE), COPY_TILE,
                COPY_ROWS, 0, new KernelArgs().matrix(src).i64(src.ld()).address(dstAddress).i64(ldd).i64(outRows)
                        .i64(outCols).address(rowIndex == null ? 0 : rowIndex.address())
                        .address(colIndex == null ? 0 : colIndex.address()));
    }

    /** In-place transpose of a square matrix. */
    public void transposeSquare(DeviceMatrix a) {
        long n = square(a, "transposeSquare");
        long tiles = ceilDiv(n, COPY_TILE);
        context.launch(TRANSPOSE, tiles, tiles, COPY_TILE, COPY_ROWS, 0, new KernelArgs().matrix(a).i64(n).i64(a.ld()));
    }

    /**
     * In place {@code A[i][j] ↔ A[n−1−i][n−1−j]}. With {@code zeroLower} the result's strict lower triangle is
     * zeroed and {@code badFlag} (a device int, if given) is set to 1 when a diagonal element is not finite.
     */
    public void reverseSquare(DeviceMatrix a, boolean zeroLower, DeviceBuffer badFlag) {
        long n = square(a, "reverseSquare");
        context.launch(REVERSE, ceilDiv(n, 256), (n + 1) / 2, 256, 1, 0, new KernelArgs().matrix(a).i64(n).i64(a.ld())
                .i32(zeroLower ? 1 : 0).address(badFlag == null ? 0 : badFlag.address()));
    }

    /** {@code diag(a) += value} of a square matrix. */
    public void addDiagonal(DeviceMatrix a, float value) {
        long n = square(a, "addDiagonal");
        context.launch(ADD_DIAGONAL, ceilDiv(n, 256), 1, 256, 1, 0,
                new KernelArgs().matrix(a).i64(n).i64(a.ld()).f32(value));
    }

    /**
     * {@code y = a·xᵀ} accumulated in fp64 for a row vector x [1 × a.cols()] and y of a.rows() doubles: residual
     * checks of fp32 results.
     */
    public void gemvF64(DeviceMatrix a, DeviceMatrix x, DeviceBuffer y) {
        if (x.rows() != 1 || x.cols() != a.cols()) {
            throw new IllegalArgumentException("gemvF64: x must be 1×" + a.cols() + ", got " + x.rows() + "×" + x.cols());
        }
        y.checkRange(0, 8L * a.rows());
        long blocks = Math.min(ceilDiv(a.rows(), 8), 65536L);
        context.launch(GEMV_F64, blocks, 1, 256, 1, 0, new KernelArgs().matrix(a).i64(a.rows()).i64(a.cols())
                .i64(a.ld()).matrix(x).buffer(y));
    }

    static long square(DeviceMatrix a, String op) {
        if (a.rows() != a.cols()) {
            throw new IllegalArgumentException(op + " needs a square matrix, got " + a.rows() + "×" + a.cols());
        }
        return a.rows();
    }

    static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }
}
