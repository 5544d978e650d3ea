package org.exl2spark.quant;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.exl2spark.io.Half;

/**
 * ExLlamaV2's AdaptiveGPTQ for one linear (EXL2-SPEC F): act-order by the Hessian diagonal, damped Cholesky inverse,
 * groups of mixed bit widths with 4-bit scales searched per group, error feedback inside each group and a lazy
 * GEMM update of the rows after it. Pure fp32 math on the CPU; the CUDA backend implements the same steps.
 */
public final class AdaptiveGptq {
    static final float DAMP_FRACTION = 0.12f;
    static final int DAMP_ATTEMPTS = 10;
    private static final int GRID = 96;
    private static final float ONE_256 = Half.toFloat(Half.fromFloat(1f / 256));
    private static final GridErrorKernels GRID_ERROR = GridErrorKernels.best();

    private AdaptiveGptq() {
    }

    /**
     * What linears sharing one Hessian share: the act-order permutation and U, the upper Cholesky factor of the
     * damped inverse Hessian in permuted order (q/k/v share q's; gate/up share up's).
     */
    public record Preparation(int size, int[] perm, float[] upperInverse) {
    }

    /** Orders rows by descending Hessian diagonal (stable for ties) and factors the damped inverse. */
    public static Preparation prepare(float[] hessian, int n, String module) {
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(hessian[b * n + b], hessian[a * n + a]));
        int[] perm = new int[n];
        for (int i = 0; i < n; i++) {
            perm[i] = order[i];
        }
        float[] hp = new float[n * n];
        double diagSum = 0;
        for (int i = 0; i < n; i++) {
            int src = perm[i] * n;
            for (int j = 0; j < n; j++) {
                hp[i * n + j] = hessian[src + perm[j]];
            }
            diagSum += hp[i * n + i];
        }
        float damp = Math.max(DAMP_FRACTION * (float) (diagSum / n), 1e-5f);
        float[] work = new float[n * n];
        for (int attempt = 1; attempt <= DAMP_ATTEMPTS; attempt++) {
            for (int i = 0; i < n; i++) {
                hp[i * n + i] += damp;
            }
            System.arraycopy(hp, 0, work, 0, work.length);
            if (DenseMath.upperCholeskyOfInverse(work, n)) {
                return new Preparation(n, perm, work);
            }
        }
        throw new ArithmeticException(module + ": Hessian is not positive definite after " + DAMP_ATTEMPTS
                + " damping attempts (calibration activations degenerate?)");
    }

    /**
     * Quantizes {@code weightHf} (the Hugging Face weight, [out_features × in_features] row-major) with
     * {@code qp} and a Hessian preparation of its input.
     */
    public static GptqResult quantize(float[] weightHf, int outFeatures, int inFeatures, Preparation prep, QParams qp) {
        int rows = inFeatures;
        int cols = outFeatures;
        if (prep.size() != rows) {
            throw new IllegalArgumentException("Hessian is " + prep.size() + " wide, the weight has " + rows + " inputs");
        }
        if ((long) rows * cols > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(rows + "×" + cols + " weight exceeds the CPU backend's array limit");
        }
        int[] perm = prep.perm();
        float[] u = prep.upperInverse();
        // W[k][n] = weightHf[n][perm[k]]: transposed to [in × out] and rows in act order
        float[] w = new float[rows * cols];
        for (int n = 0; n < cols; n++) {
            int src = n * rows;
            for (int k = 0; k < rows; k++) {
                w[k * cols + n] = weightHf[src + perm[k]];
            }
        }
        byte[][] codes = new byte[rows][cols];
        float[] qperm = new float[rows * cols];
        List<GptqResult.QuantGroup> groups = new ArrayList<>();
        for (QParams.Group g : qp.groups(rows)) {
            int a = (int) g.firstRow();
            int b = (int) g.endRow();
            int bits = g.bits();
            ScaleSearch scale = findParams(w, a, b, cols, bits);
            groups.add(new GptqResult.QuantGroup(bits, a, b - a, scale.codes, scale.maxHalf));
            float[] err = new float[(b - a) * cols];
            quantizeGroup(w, rows, cols, u, a, b, bits, scale.scale, codes, qperm, err);
            if (b < rows) {
                // W[b:] -= U[a:b, b:]ᵀ · E[a:b]
                DenseMath.gemm(true, false, rows - b, cols, b - a, -1f, u, a * rows + b, rows, err, 0, cols, 1f, w,
                        b * cols, cols);
            }
        }
        float[] dequant = new float[rows * cols];
        for (int k = 0; k < rows; k++) {
            System.arraycopy(qperm, k * cols, dequant, perm[k] * cols, cols);
        }
        return new GptqResult(rows, cols, perm, groups, codes, dequant);
    }

    /**
     * Quantizes rows [a, b) of the act-ordered work matrix {@code w} [rows × cols] with per-column {@code scale}
     * (EXL2-SPEC F.4 step 2): writes each row's codes ({@code codes[c][n]}) and fp16-exact dequantized values (at w's
     * offsets), the scaled errors {@code err[(c − a)·cols + n] = (W[c][n] − Q[c][n]) / U[c][c]}, and feeds each row's
     * error to the group's later rows of w. {@code u} is the upper Cholesky factor of the inverse Hessian
     * [rows × rows].
     */
    public static void quantizeGroup(float[] w, int rows, int cols, float[] u, int a, int b, int bits, float[] scale,
            byte[][] codes, float[] dequant, float[] err) {
        int maxq = (1 << bits) - 1;
        int zero = 1 << (bits - 1);
        for (int c = a; c < b; c++) {
            int rowOff = c * cols;
            float d = u[c * rows + c];
            int eOff = (c - a) * cols;
            for (int n = 0; n < cols; n++) {
                float s = scale[n];
                float x = w[rowOff + n];
                float qf = (float) Math.rint(x / s) + zero;
                // a scale that underflowed to fp16 zero leaves only the zero code
                int q = qf != qf ? zero : (int) Math.min(Math.max(qf, 0f), (float) maxq);
                float dq = Half.toFloat(Half.fromFloat((q - zero) * s));
                codes[c][n] = (byte) q;
                dequant[rowOff + n] = dq;
                err[eOff + n] = (x - dq) / d;
            }
            // error feedback to the remaining rows of this group
            for (int r = c + 1; r < b; r++) {
                float f = u[c * rows + r];
                int rOff = r * cols;
                for (int n = 0; n < cols; n++) {
                    w[rOff + n] -= f * err[eOff + n];
                }
            }
        }
    }

    /** Per-column scales of one group: the fp16-exact scale used, its 4-bit code and the group's fp16 max scale. */
    public record ScaleSearch(float[] scale, byte[] codes, short maxHalf) {
    }

    /** ExLlamaV2's find_params (EXL2-SPEC F.5): 4-bit relative scales under a max scale tuned by a 97-point grid. */
    public static ScaleSearch findParams(float[] w, int a, int b, int cols, int bits) {
        int maxq = (1 << bits) - 1;
        int zero = 1 << (bits - 1);
        float halfRange = maxq / 2f;
        float[] base = new float[cols];
        float smax = 0;
        for (int n = 0; n < cols; n++) {
            float m = 0;
            for (int k = a; k < b; k++) {
                m = Math.max(m, Math.abs(w[k * cols + n]));
            }
            base[n] = (m + 1e-12f) / halfRange;
            smax = Math.max(smax, base[n]);
        }
        int[] qscale = new int[cols];
        float[] sw = new float[cols];
        for (int n = 0; n < cols; n++) {
            int q = (int) Math.rint(Math.sqrt(base[n] / smax) * 16);
            qscale[n] = Math.min(Math.max(q, 1), 16);
            float f = qscale[n] / 16f;
            sw[n] = f * f * smax;
        }
        double bestErr = Double.POSITIVE_INFINITY;
        int bestI = 0;
        float[] sp = new float[cols];
        // per-column partial sums: the row loop carries no serial dependency, so it vectorises
        double[] colErr = new double[cols];
        for (int i = 0; i <= GRID; i++) {
            float p = 0.70f * (1 - i / (float) GRID) + 1.20f * (i / (float) GRID);
            for (int n = 0; n < cols; n++) {
                sp[n] = sw[n] * p;
            }
            java.util.Arrays.fill(colErr, 0);
            for (int k = a; k < b; k++) {
                GRID_ERROR.addRowError(w, k * cols, sp, colErr, cols, -zero, maxq - zero);
            }
            double err = 0;
            for (int n = 0; n < cols; n++) {
                err += colErr[n];
            }
            if (err < bestErr) {
                bestErr = err;
                bestI = i;
            }
        }
        float bestP = 1.2f * (bestI / (float) GRID) + 0.7f * (1 - bestI / (float) GRID);
        short maxHalf = Half.fromFloat(smax * bestP);
        float m = Half.toFloat(Half.fromFloat(Half.toFloat(maxHalf) * ONE_256));
        float[] scale = new float[cols];
        byte[] codes = new byte[cols];
        for (int n = 0; n < cols; n++) {
            float sq = Half.toFloat(Half.fromFloat(qscale[n] * qscale[n]));
            scale[n] = Half.toFloat(Half.fromFloat(sq * m));
            codes[n] = (byte) (qscale[n] - 1);
        }
        return new ScaleSearch(scale, codes, maxHalf);
    }
}
