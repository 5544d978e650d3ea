package org.exl2spark.backend;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.exl2spark.io.Half;

/**
 * The CPU twins of GPTQ's per-group steps (EXL2-SPEC F.4/F.5) on row-major fp32 arrays, and the {@link GptqRun} the
 * CPU backend hands out. The CUDA kernels of gptq.cu agree with {@link #findParams} and {@link #quantizeGroup} bit
 * for bit.
 */
public final class CpuGptq implements GptqRun<Tensor> {
    private static final int GRID = 96;
    private static final float ONE_256 = Half.toFloat(Half.fromFloat(1f / 256));
    private static final GridErrorKernels GRID_ERROR = GridErrorKernels.best();

    private final int rows;
    private final int cols;
    private final float[] w;
    private final float[] u;
    private final byte[][] codes;
    private final HostTensor dequant;
    private final float[] err;
    private final List<Quantized> quantized = new ArrayList<>();
    private ScaleSearch last;

    CpuGptq(HostTensor w, HostTensor u, long maxGroupRows) {
        this.rows = Math.toIntExact(w.rows());
        this.cols = Math.toIntExact(w.cols());
        if (u.rows() != rows || u.cols() != rows) {
            throw new IllegalArgumentException("GPTQ: U " + u.shapeString() + " for a work matrix " + w.shapeString());
        }
        this.w = w.data();
        this.u = u.data();
        this.codes = new byte[rows][cols];
        this.dequant = HostTensor.zeros(rows, cols);
        this.err = new float[Math.multiplyExact(Math.toIntExact(Math.min(maxGroupRows, rows)), cols)];
    }

    @Override
    public void findParams(long a, long b, int bits) {
        last = findParams(w, (int) a, (int) b, cols, bits);
    }

    @Override
    public GroupScales scales() {
        if (last == null) {
            throw new IllegalStateException("GPTQ: scales before findParams");
        }
        return new GroupScales(last.codes(), last.maxHalf());
    }

    @Override
    public void quantizeGroup(long a, long b, int bits) {
        if (last == null) {
            throw new IllegalStateException("GPTQ: quantizeGroup before findParams");
        }
        if ((b - a) * cols > err.length) {
            throw new IllegalArgumentException("GPTQ: group of " + (b - a) + " rows exceeds the run's group size");
        }
        quantizeGroup(w, rows, cols, u, (int) a, (int) b, bits, last.scale(), codes, dequant.data(), err);
        quantized.add(new Quantized(a, b - a, bits));
    }

    @Override
    public void lazyUpdate(long a, long b) {
        if (b < rows) {
            CpuBackend.gemm(true, false, rows - (int) b, cols, (int) (b - a), -1f, u, Math.toIntExact(a * rows + b),
                    rows, err, 0, cols, 1f, w, Math.toIntExact(b * cols), cols);
        }
    }

    @Override
    public int[][] packedCodes() {
        int[][] words = new int[Math.toIntExact(quantized.stream().mapToLong(Quantized::qRows).sum())][cols];
        int qRow = 0;
        for (Quantized g : quantized) {
            CodePacking.packGroup(codes, (int) g.firstRow(), (int) g.rows(), g.bits(), words, qRow);
            qRow += (int) g.qRows();
        }
        return words;
    }

    @Override
    public Tensor dequantized() {
        return dequant;
    }

    @Override
    public void close() {
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
            Arrays.fill(colErr, 0);
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
