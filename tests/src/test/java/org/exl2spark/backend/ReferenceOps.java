package org.exl2spark.backend;

/**
 * Straightforward double-precision versions of the {@link Backend} operations, written from their definitions with
 * plain loops, for comparing any backend against. Matrices are row-major arrays with explicit sizes.
 */
public final class ReferenceOps {
    private ReferenceOps() {
    }

    /** c = alpha·op(a)·op(b) + beta·c; a stored [transA ? k : m, transA ? m : k], b [transB ? n : k, ...]. */
    public static double[] matmul(float[] a, boolean transA, float[] b, boolean transB, float[] c, int m, int n, int k,
            double alpha, double beta) {
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = transA ? a[p * m + i] : a[i * k + p];
                    double bv = transB ? b[j * k + p] : b[p * n + j];
                    s += av * bv;
                }
                out[i * n + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * n + j]);
            }
        }
        return out;
    }

    /** x [rows, in] · wᵀ ([out, in]) + bias. */
    public static double[] linear(float[] x, float[] w, float[] bias, int rows, int in, int out) {
        double[] y = matmul(x, false, w, true, null, rows, out, in, 1, 0);
        if (bias != null) {
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < out; o++) {
                    y[r * out + o] += bias[o];
                }
            }
        }
        return y;
    }

    public static double[] rmsNorm(float[] x, float[] w, double eps, int rows, int cols) {
        double[] y = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int i = 0; i < cols; i++) {
                ss += (double) x[r * cols + i] * x[r * cols + i];
            }
            double inv = 1 / Math.sqrt(ss / cols + eps);
            for (int i = 0; i < cols; i++) {
                y[r * cols + i] = x[r * cols + i] * inv * w[i];
            }
        }
        return y;
    }

    /** rotate_half RoPE of x [batch·seqLen, heads·headDim] at positions t mod seqLen with the given angles [pos, half]. */
    public static double[] rope(float[] x, int rows, int seqLen, int heads, int headDim, double[] angles) {
        int half = headDim / 2;
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            int pos = r % seqLen;
            for (int h = 0; h < heads; h++) {
                int base = r * heads * headDim + h * headDim;
                for (int i = 0; i < headDim; i++) {
                    double a = angles[pos * half + i % half];
                    double rotated = i < half ? -x[base + i + half] : x[base + i - half];
                    y[base + i] = x[base + i] * Math.cos(a) + rotated * Math.sin(a);
                }
            }
        }
        return y;
    }

    /** Causal GQA attention exactly as defined, one (sequence, head, query) at a time. */
    public static double[] attention(float[] q, float[] k, float[] v, int batch, int seqLen, int heads, int kvHeads,
            int headDim, int window) {
        double[] out = new double[q.length];
        int group = heads / kvHeads;
        double scale = 1 / Math.sqrt(headDim);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int g = h / group;
                for (int i = 0; i < seqLen; i++) {
                    int qBase = (b * seqLen + i) * heads * headDim + h * headDim;
                    double[] w = new double[seqLen];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        if (window > 0 && i - j >= window) {
                            continue;
                        }
                        int kBase = (b * seqLen + j) * kvHeads * headDim + g * headDim;
                        double s = 0;
                        for (int d = 0; d < headDim; d++) {
                            s += (double) q[qBase + d] * k[kBase + d];
                        }
                        w[j] = s * scale;
                        max = Math.max(max, w[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        if (window > 0 && i - j >= window) {
                            w[j] = 0;
                            continue;
                        }
                        w[j] = Math.exp(w[j] - max);
                        sum += w[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        int vBase = (b * seqLen + j) * kvHeads * headDim + g * headDim;
                        for (int d = 0; d < headDim; d++) {
                            out[qBase + d] += w[j] / sum * v[vBase + d];
                        }
                    }
                }
            }
        }
        return out;
    }

    public static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    public static double[] logSoftmax(float[] x, int rows, int cols) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < cols; i++) {
                max = Math.max(max, x[r * cols + i]);
            }
            double sum = 0;
            for (int i = 0; i < cols; i++) {
                sum += Math.exp(x[r * cols + i] - max);
            }
            double lse = max + Math.log(sum);
            for (int i = 0; i < cols; i++) {
                y[r * cols + i] = x[r * cols + i] - lse;
            }
        }
        return y;
    }

    public static double[] klDivergence(float[] refLogProbs, float[] logProbs, int rows, int cols) {
        double[] kl = new double[rows];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < cols; i++) {
                double p = refLogProbs[r * cols + i];
                kl[r] += Math.exp(p) * (p - logProbs[r * cols + i]);
            }
        }
        return kl;
    }
}
