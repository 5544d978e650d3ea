package org.exl2spark.backend;

import java.util.concurrent.ForkJoinPool;
import org.exl2spark.io.Half;
import org.netlib.util.intW;
import java.util.concurrent.RecursiveAction;

/**
 * The backend on the host: fp32 {@link HostTensor}s, dense products through netlib BLAS (OpenBLAS when
 * {@code libblas.so.3} is installed), all of it on one fork-join pool of {@code threads} workers. Parallelism is
 * coarse and owned here: a product is split into row blocks, attention into (sequence, head, query tile) tasks, each
 * task calling a single-threaded BLAS ({@link BlasLibrary}), so no two thread pools fight over the cores.
 */
public final class CpuBackend implements Backend {
    /** Query rows per attention tile: small enough to skip most of the masked upper triangle, big enough for BLAS. */
    static final int ATTENTION_TILE = 256;
    /** Multiply-adds below which a product is not worth splitting. */
    private static final long GEMM_GRAIN = 1L << 22;
    /** Columns per block of the Gram matrix computed as one task. */
    private static final int GRAM_BLOCK = 128;
    /** Elements below which an elementwise operation is not worth splitting. */
    private static final long ELEMENT_GRAIN = 1 << 15;

    private static final ExpKernels EXP = ExpKernels.best();
    /** The largest magnitude fp16 holds; the block error clamps outputs to it, as fp16 states would be. */
    public static final float FP16_MAX = 65504f;

    private final int threads;
    private final ForkJoinPool pool;
    /** The {@link #linearMode} in force: it decides only whether linear takes an fp16 weight. */
    private LinearMode linearMode = LinearMode.ACCURATE;
    /** Per-worker scratch for attention scores, grown on demand. */
    private final ThreadLocal<float[]> scoreScratch = ThreadLocal.withInitial(() -> new float[0]);

    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    public CpuBackend(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        this.threads = threads;
        this.pool = new ForkJoinPool(threads);
    }

    /** The BLAS implementation netlib picked: JNIBLAS (native) or one of its pure-Java fallbacks. */
    public static String blasName() {
        return BlasLibrary.LIB.getClass().getName();
    }

    public static boolean nativeBlas() {
        return BlasLibrary.NATIVE;
    }

    public int threads() {
        return threads;
    }

    @Override
    public String describe() {
        return "cpu (" + threads + " threads, BLAS " + BlasLibrary.describe() + ", " + EXP.describe() + ")";
    }

    @Override
    public HostTensor zeros(long... shape) {
        return HostTensor.zeros(shape);
    }

    @Override
    public HostTensor halfZeros(long... shape) {
        return new HostTensor(Tensor.Storage.FP16, new float[HostTensor.checkedLength(shape)], shape);
    }

    @Override
    public HostTensor upload(float[] data, long... shape) {
        return new HostTensor(data, shape);
    }

    @Override
    public HostTensor uploadSlice(float[] data, int offset, long... shape) {
        long n = ShapeChecks.uploadSlice(data.length, offset, shape);
        return new HostTensor(java.util.Arrays.copyOfRange(data, offset, offset + (int) n), shape);
    }

    @Override
    public float[] download(Tensor t) {
        return hostAnyStorage(t, "tensor").data().clone();
    }

    @Override
    public void downloadSlice(Tensor t, float[] dst, int offset) {
        float[] src = hostAnyStorage(t, "tensor").data();
        System.arraycopy(src, 0, dst, offset, src.length);
    }

    @Override
    public void close() {
        pool.shutdown();
    }

    // ---- dense products -------------------------------------------------------------------------------------

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        HostTensor ha = host(a, "a");
        HostTensor hb = host(b, "b");
        HostTensor hc = host(c, "c");
        long[] mnk = ShapeChecks.matmul(a, transposeA, b, transposeB, c);
        long m = mnk[0];
        long n = mnk[1];
        long k = mnk[2];
        parallelGemm(transposeA, transposeB, (int) m, (int) n, (int) k, alpha, ha.data(), (int) a.cols(), hb.data(),
                (int) b.cols(), beta, hc.data(), (int) n);
    }

    /**
     * Row-major GEMM through column-major BLAS: row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a
     * row-major matrix read column-major is its transpose, so the operands swap places and keep their flags. Leading
     * dimensions and offsets let A, B and C be strided sub-matrices (one attention head inside [T, heads·headDim]).
     * Runs on the calling thread.
     */
    static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int offA,
            int lda, float[] b, int offB, int ldb, float beta, float[] c, int offC, int ldc) {
        if (m == 0 || n == 0) {
            return;
        }
        BlasLibrary.LIB.sgemm(transB ? "T" : "N", transA ? "T" : "N", n, m, k, alpha, b, offB, ldb, a, offA, lda, beta,
                c, offC, ldc);
    }

    /** {@link #gemm} split into blocks of C's rows over the pool (rows of A, or columns of A when transposed). */
    private void parallelGemm(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int lda,
            float[] b, int ldb, float beta, float[] c, int ldc) {
        long rowGrain = Math.max(1, GEMM_GRAIN / Math.max(1L, (long) n * k));
        parallelFor(m, rowGrain, (r0, r1) -> {
            long offA = transA ? r0 : r0 * lda;
            gemm(transA, transB, (int) (r1 - r0), n, k, alpha, a, Math.toIntExact(offA), lda, b, 0, ldb, beta, c,
                    Math.toIntExact(r0 * ldc), ldc);
        });
    }

    /** Every mode computes in fp32 (see {@link Backend#linearMode}); the mode only admits fp16 weights. */
    @Override
    public ModeScope linearMode(LinearMode mode) {
        LinearMode previous = linearMode;
        linearMode = mode;
        return () -> linearMode = previous;
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
        HostTensor hx = host(x, "x");
        ShapeChecks.halfWeight(weight, linearMode);
        HostTensor hw = hostAnyStorage(weight, "weight");
        HostTensor ho = host(out, "out");
        ShapeChecks.linear(x, weight, bias, out);
        long in = weight.cols();
        long outF = weight.rows();
        float beta = 0f;
        if (bias != null) {
            float[] hbias = host(bias, "bias").data();
            float[] o = ho.data();
            parallelFor(out.rows(), 1, (r0, r1) -> {
                for (long r = r0; r < r1; r++) {
                    System.arraycopy(hbias, 0, o, ho.rowOffset(r), (int) outF);
                }
            });
            beta = 1f;
        }
        parallelGemm(false, true, (int) x.rows(), (int) outF, (int) in, 1f, hx.data(), (int) in, hw.data(), (int) in,
                beta, ho.data(), (int) outF);
    }

    @Override
    public void accumulateGram(Tensor x, Tensor gram) {
        HostTensor hx = host(x, "x");
        HostTensor hg = host(gram, "gram");
        ShapeChecks.gram(x, gram);
        long n = x.cols();
        int ni = (int) n;
        int rows = (int) x.rows();
        float[] xs = hx.data();
        float[] g = hg.data();
        // blocks of the lower triangle in parallel, G[I,J] += X[:,I]ᵀ·X[:,J] reading X's columns in place (lda = n),
        // each then mirrored into the upper triangle
        int blocks = (ni + GRAM_BLOCK - 1) / GRAM_BLOCK;
        int[] blockRow = new int[blocks * (blocks + 1) / 2];
        int[] blockCol = new int[blockRow.length];
        for (int bi = 0, p = 0; bi < blocks; bi++) {
            for (int bj = 0; bj <= bi; bj++, p++) {
                blockRow[p] = bi;
                blockCol[p] = bj;
            }
        }
        parallelFor(blockRow.length, 1, (p0, p1) -> {
            for (int p = (int) p0; p < p1; p++) {
                int bi = blockRow[p];
                int bj = blockCol[p];
                int i0 = bi * GRAM_BLOCK;
                int j0 = bj * GRAM_BLOCK;
                int ni0 = Math.min(GRAM_BLOCK, ni - i0);
                int nj0 = Math.min(GRAM_BLOCK, ni - j0);
                int offG = Math.toIntExact((long) i0 * n + j0);
                // sgemm even on diagonal blocks: netlib's ssyrk bounds check rejects sub-matrix views of X and G
                gemm(true, false, ni0, nj0, rows, 1f, xs, i0, ni, xs, j0, ni, 1f, g, offG, ni);
                mirrorBlock(g, n, i0, j0, ni0, nj0);
            }
        });
    }

    /** Copies block [i0, i0+rows) × [j0, j0+cols) of the lower triangle of a symmetric [n, n] matrix to the upper. */
    private static void mirrorBlock(float[] g, long n, int i0, int j0, int rows, int cols) {
        for (int r = 0; r < rows; r++) {
            int src = Math.toIntExact((i0 + r) * n + j0);
            int end = i0 == j0 ? r : cols;
            for (int c = 0; c < end; c++) {
                g[Math.toIntExact((j0 + c) * n + i0 + r)] = g[src + c];
            }
        }
    }

    // ---- row-wise operations --------------------------------------------------------------------------------

    @Override
    public void embed(int[] ids, Tensor table, Tensor out) {
        float[] t = host(table, "table").data();
        HostTensor ho = host(out, "out");
        ShapeChecks.embed(ids, table, out);
        int hidden = (int) table.cols();
        parallelFor(ids.length, 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                System.arraycopy(t, Math.toIntExact((long) ids[(int) r] * hidden), ho.data(), ho.rowOffset(r), hidden);
            }
        });
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out) {
        float[] xs = host(x, "x").data();
        float[] w = host(weight, "weight").data();
        HostTensor ho = host(out, "out");
        ShapeChecks.rmsNorm(x, weight, out);
        int cols = (int) x.cols();
        float[] o = ho.data();
        parallelFor(x.rows(), 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                int base = ho.rowOffset(r);
                double sumSquares = 0;
                for (int i = 0; i < cols; i++) {
                    float v = xs[base + i];
                    sumSquares += v * v;
                }
                float inv = (float) (1.0 / Math.sqrt(sumSquares / cols + eps));
                for (int i = 0; i < cols; i++) {
                    o[base + i] = xs[base + i] * inv * w[i];
                }
            }
        });
    }

    @Override
    public void rope(Tensor x, int heads, int headDim, Tensor cos, Tensor sin) {
        HostTensor hx = host(x, "x");
        float[] c = host(cos, "cos").data();
        float[] s = host(sin, "sin").data();
        ShapeChecks.rope(x, heads, headDim, cos, sin);
        int half = headDim / 2;
        long seqLen = x.dim(1);
        float[] xs = hx.data();
        parallelFor(x.rows(), 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                int table = Math.toIntExact((r % seqLen) * half);
                int row = hx.rowOffset(r);
                for (int h = 0; h < heads; h++) {
                    int base = row + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float x1 = xs[base + i];
                        float x2 = xs[base + half + i];
                        float ci = c[table + i];
                        float si = s[table + i];
                        xs[base + i] = x1 * ci - x2 * si;
                        xs[base + half + i] = x2 * ci + x1 * si;
                    }
                }
            }
        });
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, int heads, int kvHeads, int headDim,
            int slidingWindow) {
        float[] qs = host(q, "q").data();
        float[] ks = host(k, "k").data();
        float[] vs = host(v, "v").data();
        float[] os = host(out, "out").data();
        ShapeChecks.attention(q, k, v, out, heads, kvHeads, headDim);
        int batch = Math.toIntExact(q.dim(0));
        int seqLen = Math.toIntExact(q.dim(1));
        int group = heads / kvHeads;
        int qStride = heads * headDim;
        int kvStride = kvHeads * headDim;
        float scale = (float) (1.0 / Math.sqrt(headDim));
        int tile = Math.min(ATTENTION_TILE, Math.max(1, seqLen));
        int tiles = (seqLen + tile - 1) / tile;
        int maxKeys = slidingWindow > 0 ? Math.min(seqLen, tile + slidingWindow - 1) : seqLen;
        int scratch = Math.multiplyExact(tile, maxKeys);
        // one task per (sequence, head, query tile): scores, softmax and the value product stay on one thread
        parallelFor((long) batch * heads * tiles, 1, (t0, t1) -> {
            float[] scores = scoreScratch.get();
            if (scores.length < scratch) {
                scores = new float[scratch];
                scoreScratch.set(scores);
            }
            for (long t = t0; t < t1; t++) {
                long b = t / ((long) heads * tiles);
                int h = (int) (t / tiles % heads);
                int q0 = (int) (t % tiles) * tile;
                int q1 = Math.min(seqLen, q0 + tile);
                int keyLo = slidingWindow > 0 ? Math.max(0, q0 - slidingWindow + 1) : 0;
                int keys = q1 - keyLo;
                long seqRow = b * seqLen;
                int qOff = Math.toIntExact((seqRow + q0) * qStride + (long) h * headDim);
                int kvOff = Math.toIntExact((seqRow + keyLo) * kvStride + (long) (h / group) * headDim);
                gemm(false, true, q1 - q0, keys, headDim, scale, qs, qOff, qStride, ks, kvOff, kvStride, 0f, scores, 0,
                        keys);
                for (int r = 0; r < q1 - q0; r++) {
                    int pos = q0 + r;
                    int lo = slidingWindow > 0 ? Math.max(keyLo, pos - slidingWindow + 1) : keyLo;
                    maskedSoftmax(scores, r * keys, keys, lo - keyLo, pos + 1 - keyLo);
                }
                gemm(false, false, q1 - q0, headDim, keys, 1f, scores, 0, keys, vs, kvOff, kvStride, 0f, os, qOff,
                        qStride);
            }
        });
    }

    /** Softmax over s[base+lo, base+hi) of a row of n scores; the rest of the row becomes 0. */
    private static void maskedSoftmax(float[] s, int base, int n, int lo, int hi) {
        float max = EXP.max(s, base + lo, base + hi);
        float inv = 1f / EXP.expInPlace(s, base + lo, base + hi, max);
        for (int j = lo; j < hi; j++) {
            s[base + j] *= inv;
        }
        java.util.Arrays.fill(s, base, base + lo, 0f);
        java.util.Arrays.fill(s, base + hi, base + n, 0f);
    }

    @Override
    public void swiGlu(Tensor gate, Tensor up, Tensor out) {
        float[] g = host(gate, "gate").data();
        float[] u = host(up, "up").data();
        float[] o = host(out, "out").data();
        ShapeChecks.elementwise("swiGlu", gate, up, out);
        parallelFor(gate.size(), ELEMENT_GRAIN, (i0, i1) -> EXP.swiGlu(g, u, o, (int) i0, (int) i1));
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        float[] as = host(a, "a").data();
        float[] bs = host(b, "b").data();
        float[] o = host(out, "out").data();
        ShapeChecks.elementwise("add", a, b, out);
        parallelFor(a.size(), ELEMENT_GRAIN, (i0, i1) -> {
            for (int i = (int) i0; i < i1; i++) {
                o[i] = as[i] + bs[i];
            }
        });
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        float[] s = host(src, "src").data();
        float[] d = host(dst, "dst").data();
        ShapeChecks.sameShape("copy", src, dst);
        System.arraycopy(s, 0, d, 0, s.length);
    }

    /** Rows in parallel, each summed in element order ({@link #relativeError}). */
    @Override
    public double[] relativeErrors(Tensor y, Tensor reference) {
        float[] ys = host(y, "y").data();
        float[] rs = host(reference, "reference").data();
        ShapeChecks.sameShape("relativeErrors", y, reference);
        int rows = Math.toIntExact(y.dim(0));
        int rowSize = rows == 0 ? 0 : Math.toIntExact(y.size() / rows);
        double[] out = new double[rows];
        parallelFor(rows, 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                int off = Math.toIntExact(r * rowSize);
                out[(int) r] = relativeError(ys, off, rs, off, rowSize);
            }
        });
        return out;
    }

    /**
     * {@code ‖clamp(y) − ref‖ / ‖ref‖} over {@code size} elements from the given offsets (y clamped to ±65504 as
     * fp16 states would be; differences in fp32, sums in fp64): one row of {@link #relativeErrors}.
     */
    public static double relativeError(float[] y, int yOffset, float[] reference, int referenceOffset, int size) {
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < size; i++) {
            float q = Math.max(-FP16_MAX, Math.min(FP16_MAX, y[yOffset + i]));
            float b = reference[referenceOffset + i];
            double d = q - b;
            diff += d * d;
            norm += (double) b * b;
        }
        return Math.sqrt(diff) / Math.sqrt(norm);
    }

    @Override
    public void roundToHalf(Tensor x, Tensor out) {
        float[] xs = host(x, "x").data();
        float[] o = hostAnyStorage(out, "out").data();
        ShapeChecks.sameShape("roundToHalf", x, out);
        parallelFor(x.size(), ELEMENT_GRAIN, (i0, i1) -> {
            for (int i = (int) i0; i < i1; i++) {
                o[i] = roundToHalf(xs[i]);
            }
        });
    }

    /** fp16(v) as a float, clamped to ±65504. */
    private static float roundToHalf(float v) {
        return Half.toFloat(Half.fromFloat(Math.max(-FP16_MAX, Math.min(FP16_MAX, v))));
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        rowSoftmax(x, out, false);
    }

    @Override
    public void logSoftmax(Tensor x, Tensor out) {
        rowSoftmax(x, out, true);
    }

    private void rowSoftmax(Tensor x, Tensor out, boolean log) {
        float[] xs = host(x, "x").data();
        HostTensor ho = host(out, "out");
        ShapeChecks.sameShape(log ? "logSoftmax" : "softmax", x, out);
        int cols = (int) x.cols();
        float[] o = ho.data();
        parallelFor(x.rows(), 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                int base = ho.rowOffset(r);
                float max = EXP.max(xs, base, base + cols);
                if (log) {
                    // (x − max) first: exact near the max, where the large log-probabilities are
                    float logSum = (float) Math.log(EXP.sumExp(xs, base, base + cols, max));
                    for (int i = 0; i < cols; i++) {
                        o[base + i] = (xs[base + i] - max) - logSum;
                    }
                } else {
                    if (o != xs) {
                        System.arraycopy(xs, base, o, base, cols);
                    }
                    float inv = 1f / EXP.expInPlace(o, base, base + cols, max);
                    for (int i = 0; i < cols; i++) {
                        o[base + i] *= inv;
                    }
                }
            }
        });
    }

    @Override
    public void klDivergence(Tensor referenceLogProbs, Tensor logProbs, Tensor out) {
        HostTensor hp = host(referenceLogProbs, "referenceLogProbs");
        float[] ps = hp.data();
        float[] qs = host(logProbs, "logProbs").data();
        float[] o = host(out, "out").data();
        ShapeChecks.klDivergence(referenceLogProbs, logProbs, out);
        int cols = (int) referenceLogProbs.cols();
        parallelFor(referenceLogProbs.rows(), 1, (r0, r1) -> {
            for (long r = r0; r < r1; r++) {
                int base = hp.rowOffset(r);
                double kl = 0;
                for (int i = 0; i < cols; i++) {
                    float lp = ps[base + i];
                    kl += FastExp.exp(lp) * (lp - qs[base + i]);
                }
                o[(int) r] = (float) kl;
            }
        });
    }

    // ---- GPTQ ---------------------------------------------------------------------------------------------

    @Override
    public void finishHessian(Tensor gram, long rows) {
        float[] h = host(gram, "gram").data();
        square("finishHessian", gram);
        if (rows <= 0) {
            throw new IllegalArgumentException("finishHessian: " + rows + " calibration rows");
        }
        float divisor = rows;
        parallelFor(h.length, ELEMENT_GRAIN, (i0, i1) -> {
            for (int i = (int) i0; i < i1; i++) {
                h[i] /= divisor;
            }
        });
    }

    @Override
    public float[] diagonal(Tensor squareMatrix) {
        float[] h = host(squareMatrix, "square").data();
        int n = square("diagonal", squareMatrix);
        float[] d = new float[n];
        for (int i = 0; i < n; i++) {
            d[i] = h[Math.toIntExact((long) i * n + i)];
        }
        return d;
    }

    @Override
    public void permuteSymmetric(Tensor h, int[] perm) {
        float[] dst = host(h, "h").data();
        int n = square("permuteSymmetric", h);
        ShapeChecks.index("permuteSymmetric", perm, n, n);
        float[] src = dst.clone();
        parallelFor(n, 1, (r0, r1) -> {
            for (int i = (int) r0; i < r1; i++) {
                int from = perm[i] * n;
                int to = i * n;
                for (int j = 0; j < n; j++) {
                    dst[to + j] = src[from + perm[j]];
                }
            }
        });
    }

    @Override
    public void restoreSymmetric(Tensor h, float[] diagonal) {
        float[] a = host(h, "h").data();
        int n = square("restoreSymmetric", h);
        if (diagonal.length != n) {
            throw new IllegalArgumentException("restoreSymmetric: " + diagonal.length + " diagonal values for " + n);
        }
        for (int i = 0; i < n; i++) {
            a[i * n + i] = diagonal[i];
            for (int j = 0; j < i; j++) {
                a[j * n + i] = a[i * n + j];
            }
        }
    }

    @Override
    public void addDiagonal(Tensor a, float value) {
        float[] h = host(a, "a").data();
        int n = square("addDiagonal", a);
        for (int i = 0; i < n; i++) {
            h[i * n + i] += value;
        }
    }

    @Override
    public boolean upperCholeskyOfInverse(Tensor hessian) {
        float[] h = host(hessian, "h").data();
        int n = square("upperCholeskyOfInverse", hessian);
        intW info = new intW(0);
        // Column-major 'L' on a symmetric matrix: the factor lands in the row-major upper triangle as Lᵀ.
        BlasLibrary.LAPACK_LIB.spotrf("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        BlasLibrary.LAPACK_LIB.spotri("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        // Factor H⁻¹ = L·Lᵀ again; read row-major, Lᵀ is exactly the upper factor U with H⁻¹ = Uᵀ·U.
        BlasLibrary.LAPACK_LIB.spotrf("L", n, h, 0, n, info);
        if (info.val != 0) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            if (!Float.isFinite(h[i * n + i])) {
                return false;
            }
        }
        // only now: a failure above must leave the strict lower triangle as given (LAPACK's 'L' never touches it)
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                h[i * n + j] = 0f;
            }
        }
        return true;
    }

    @Override
    public void gatherTransposed(Tensor src, int[] rowIndex, int[] colIndex, Tensor dst) {
        float[] s = host(src, "src").data();
        float[] d = hostAnyStorage(dst, "dst").data();
        boolean half = dst.isHalf();
        ShapeChecks.gatherTransposed(src, rowIndex, colIndex, dst);
        int srcCols = Math.toIntExact(src.cols());
        int outRows = Math.toIntExact(dst.rows());
        int outCols = Math.toIntExact(dst.cols());
        parallelFor(outRows, 1, (i0, i1) -> {
            for (int i = (int) i0; i < i1; i++) {
                int c = colIndex == null ? i : colIndex[i];
                int to = i * outCols;
                for (int j = 0; j < outCols; j++) {
                    int r = rowIndex == null ? j : rowIndex[j];
                    float v = s[r * srcCols + c];
                    d[to + j] = half ? roundToHalf(v) : v;
                }
            }
        });
    }

    @Override
    public GptqRun<Tensor> gptq(Tensor w, Tensor u, long maxGroupRows) {
        return new CpuGptq(host(w, "w"), host(u, "u"), maxGroupRows);
    }

    // ---- helpers --------------------------------------------------------------------------------------------

    /** An fp32 CPU tensor: fp16 ones only where Backend#halfZeros lists the operation (hostAnyStorage). */
    private static HostTensor host(Tensor t, String what) {
        HostTensor h = hostAnyStorage(t, what);
        if (h.isHalf()) {
            throw new IllegalArgumentException(what + ": " + t + " is an fp16 tensor, which this operation does not take");
        }
        return h;
    }

    private static HostTensor hostAnyStorage(Tensor t, String what) {
        if (t instanceof HostTensor h) {
            return h;
        }
        throw new IllegalArgumentException(what + ": " + (t == null ? "null" : t + " is not a CPU tensor"));
    }

    private static int square(String op, Tensor t) {
        return Math.toIntExact(ShapeChecks.square(op, t));
    }

    /** Work on a range [from, to) of rows or elements. */
    @FunctionalInterface
    interface RangeBody {
        void run(long from, long to);
    }

    /**
     * Runs {@code body} over [0, n) on the pool in contiguous chunks of at least {@code grain}, a few per thread so
     * uneven rows balance out; small ranges run on the calling thread.
     */
    void parallelFor(long n, long grain, RangeBody body) {
        long chunk = Math.max(grain, -Math.floorDiv(-n, 4L * threads));
        if (threads == 1 || n <= chunk) {
            if (n > 0) {
                body.run(0, n);
            }
            return;
        }
        pool.invoke(new RangeTask(0, n, chunk, body));
    }

    private static final class RangeTask extends RecursiveAction {
        private final long from;
        private final long to;
        private final long chunk;
        private final transient RangeBody body;

        RangeTask(long from, long to, long chunk, RangeBody body) {
            this.from = from;
            this.to = to;
            this.chunk = chunk;
            this.body = body;
        }

        @Override
        protected void compute() {
            if (to - from <= chunk) {
                body.run(from, to);
                return;
            }
            long mid = from + (to - from) / 2;
            invokeAll(new RangeTask(from, mid, chunk, body), new RangeTask(mid, to, chunk, body));
        }
    }
}
