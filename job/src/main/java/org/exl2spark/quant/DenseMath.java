package org.exl2spark.quant;

import dev.ludovic.netlib.blas.BLAS;
import dev.ludovic.netlib.lapack.LAPACK;
import org.netlib.util.intW;

/**
 * Row-major fp32 dense kernels over netlib BLAS/LAPACK (native OpenBLAS when installed). netlib speaks Fortran
 * column-major, so a row-major product C = A·B is issued as the column-major Cᵀ = Bᵀ·Aᵀ: same memory, no copies.
 */
public final class DenseMath {
    private static final BLAS BLAS_IMPL = BLAS.getInstance();
    private static final LAPACK LAPACK_IMPL = LAPACK.getInstance();

    private DenseMath() {
    }

    /** Name of the BLAS implementation that loaded (JNIBLAS = native; anything else is the slow Java path). */
    public static String blasName() {
        return BLAS_IMPL.getClass().getSimpleName();
    }

    /**
     * Row-major {@code C[M×N] = alpha·op(A)·op(B) + beta·C}; op(A) is M×K, op(B) is K×N. {@code lda}/{@code ldb}/{@code ldc}
     * are row strides of the matrices as stored.
     */
    public static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int offA,
            int lda, float[] b, int offB, int ldb, float beta, float[] c, int offC, int ldc) {
        BLAS_IMPL.sgemm(transB ? "T" : "N", transA ? "T" : "N", n, m, k, alpha, b, offB, ldb, a, offA, lda, beta, c,
                offC, ldc);
    }

    /**
     * {@code H[n×n] += alpha · Xᵀ·X} for row-major {@code X[t×n]}; fills the upper triangle (row-major) only,
     * see {@link #mirrorUpper}.
     */
    public static void syrkTransposedUpper(int n, int t, float alpha, float[] x, int offX, float[] h) {
        // row-major X[t×n] is column-major Xᵀ[n×t]; column-major lower of H is row-major upper
        BLAS_IMPL.ssyrk("L", "N", n, t, alpha, x, offX, n, 1f, h, 0, n);
    }

    /**
     * Largest n for which an n×n fp32 matrix fits one Java array; bigger Hessians (e.g. a 49152-wide down_proj)
     * are the GPU backend's job.
     */
    public static final int MAX_SQUARE = 46340;

    public static void checkSquare(long n, String what) {
        if (n > MAX_SQUARE) {
            throw new IllegalArgumentException(what + ": " + n + "×" + n + " fp32 matrix exceeds the CPU backend's"
                    + " Java-array limit (" + MAX_SQUARE + "²); run this module on a GPU executor");
        }
    }

    /** Copies the upper triangle of a row-major n×n matrix onto its lower triangle. */
    public static void mirrorUpper(float[] h, int n) {
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                h[j * n + i] = h[i * n + j];
            }
        }
    }

    /**
     * For a symmetric positive definite row-major {@code h}, overwrites it with the upper Cholesky factor U of its
     * inverse ({@code H⁻¹ = Uᵀ·U}, lower triangle zeroed), as GPTQ needs. Returns false if H is not positive
     * definite (the content of {@code h} is then undefined).
     */
    public static boolean upperCholeskyOfInverse(float[] h, int n) {
        intW info = new intW(0);
        // Column-major 'L' on a symmetric matrix: the factor lands in the row-major upper triangle as Lᵀ.
        LAPACK_IMPL.spotrf("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        LAPACK_IMPL.spotri("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        // Factor H⁻¹ = L·Lᵀ again; read row-major, Lᵀ is exactly the upper factor U with H⁻¹ = Uᵀ·U.
        LAPACK_IMPL.spotrf("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                h[i * n + j] = 0f;
            }
            if (!Float.isFinite(h[i * n + i])) {
                return false;
            }
        }
        return true;
    }
}
