package org.exl2spark.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Every {@link Backend} operation against {@link ReferenceOps} on random inputs, with shapes that cross the
 * implementation's internal boundaries (attention tiles, GEMM row blocks, Gram blocks, partial last blocks). A
 * backend's test extends this and supplies the backend.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
public abstract class BackendContract {
    protected Backend backend;
    private final Random random = new Random(20261125);

    protected abstract Backend createBackend();

    @BeforeAll
    void start() {
        backend = createBackend();
    }

    @AfterAll
    void stop() {
        backend.close();
    }

    private float[] gaussian(int n, double scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (random.nextGaussian() * scale);
        }
        return x;
    }

    /** Upload a copy, so the test keeps its own array for the reference. */
    private Tensor upload(float[] data, long... shape) {
        return backend.upload(data.clone(), shape);
    }

    static void assertClose(double[] expected, float[] actual, double tolerance, String what) {
        assertClose(expected, actual, tolerance, 1, what);
    }

    /**
     * Error of each element relative to {@code scale + |expected|}: scale is the size of the terms summed into an
     * element, so sums that cancel to near zero are judged against the rounding their terms carry.
     */
    static void assertClose(double[] expected, float[] actual, double tolerance, double scale, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        int worst = -1;
        double worstErr = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]) / (scale + Math.abs(expected[i]));
            if (!(err <= worstErr)) {
                worstErr = err;
                worst = i;
            }
        }
        if (!(worstErr <= tolerance)) {
            fail(what + ": element " + worst + " is " + actual[worst] + ", expected " + expected[worst] + " (error "
                    + worstErr + " > " + tolerance + ")");
        }
    }

    @Test
    void matmulAllTransposesAlphaBeta() {
        int[][] shapes = {{1, 1, 1}, {7, 5, 3}, {5000, 33, 65}, {64, 1000, 200}};
        for (int[] s : shapes) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    float[] a = gaussian(m * k, 1);
                    float[] b = gaussian(k * n, 1);
                    float[] c = gaussian(m * n, 1);
                    double[] expected = ReferenceOps.matmul(a, ta, b, tb, c, m, n, k, 0.5, 0.25);
                    try (Tensor ta2 = upload(a, ta ? k : m, ta ? m : k);
                            Tensor tb2 = upload(b, tb ? n : k, tb ? k : n);
                            Tensor tc = upload(c, m, n)) {
                        backend.matmul(ta2, ta, tb2, tb, tc, 0.5f, 0.25f);
                        assertClose(expected, backend.download(tc), 1e-5,
                                "matmul " + m + "x" + n + "x" + k + " ta=" + ta + " tb=" + tb);
                    }
                }
            }
        }
    }

    @Test
    void matmulRejectsMismatchedShapes() {
        try (Tensor a = backend.zeros(3, 4); Tensor b = backend.zeros(5, 6); Tensor c = backend.zeros(3, 6)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> backend.matmul(a, false, b, false, c, 1f, 0f));
            assertTrue(e.getMessage().contains("[3, 4]"), e.getMessage());
        }
    }

    @Test
    void linearWithAndWithoutBias() {
        int rows = 3000;
        int in = 96;
        int out = 50;
        float[] x = gaussian(rows * in, 1);
        float[] w = gaussian(out * in, 0.1);
        float[] bias = gaussian(out, 1);
        for (float[] bi : new float[][] {null, bias}) {
            try (Tensor tx = upload(x, 2, rows / 2, in);
                    Tensor tw = upload(w, out, in);
                    Tensor tb = bi == null ? null : upload(bi, out);
                    Tensor ty = backend.zeros(2, rows / 2, out)) {
                backend.linear(tx, tw, tb, ty);
                assertClose(ReferenceOps.linear(x, w, bi, rows, in, out), backend.download(ty), 1e-5,
                        "linear bias=" + (bi != null));
            }
        }
    }

    @Test
    void anFp16WeightIsReadByFastLinearsOnlyAndHoldsFp16Values() {
        int rows = 70;
        int in = 96;
        int out = 50;
        float[] x = gaussian(rows * in, 1);
        float[] w = gaussian(out * in, 0.1);
        float[] bias = gaussian(out, 1);
        float[] rounded;
        try (Tensor tw = upload(w, out, in); Tensor r = backend.zeros(out, in)) {
            backend.roundToHalf(tw, r);
            rounded = backend.download(r);
        }
        // the measurement's path: GPTQ's transposed, act-ordered output gathered into an fp16 weight
        int[] order = new int[in];
        for (int i = 0; i < in; i++) {
            order[i] = (i * 37) % in;
        }
        float[] transposed = new float[in * out];
        for (int k = 0; k < in; k++) {
            for (int n = 0; n < out; n++) {
                transposed[k * out + n] = w[n * in + order[k]];
            }
        }
        int[] inverse = new int[in];
        for (int k = 0; k < in; k++) {
            inverse[order[k]] = k;
        }
        try (Tensor tx = upload(x, rows, in); Tensor tt = upload(transposed, in, out);
                Tensor half = backend.halfZeros(out, in); Tensor tb = upload(bias, out);
                Tensor ty = backend.zeros(rows, out)) {
            assertTrue(half.isHalf() && !tx.isHalf());
            backend.gatherTransposed(tt, inverse, null, half);
            assertArrayEquals(rounded, backend.download(half), "gathered into fp16: the rounded weight");
            try (Backend.ModeScope fast = backend.linearMode(Backend.LinearMode.FAST)) {
                backend.linear(tx, half, tb, ty);
            }
            assertClose(ReferenceOps.linear(x, rounded, bias, rows, in, out), backend.download(ty), 2e-3,
                    "FAST linear with an fp16 weight");
            IllegalStateException outside = assertThrows(IllegalStateException.class,
                    () -> backend.linear(tx, half, tb, ty));
            assertTrue(outside.getMessage().contains("fp16") && outside.getMessage().contains("FAST"),
                    outside.getMessage());
            assertThrows(IllegalArgumentException.class, () -> backend.add(half, half, half));
            assertThrows(IllegalArgumentException.class, () -> backend.linear(half, half, null, ty));
        }
    }

    @Test
    void gramAccumulatesSymmetricXtX() {
        int n = 300;
        int rows1 = 777;
        int rows2 = 41;
        float[] x1 = gaussian(rows1 * n, 1);
        float[] x2 = gaussian(rows2 * n, 1);
        double[] e1 = ReferenceOps.matmul(x1, true, x1, false, null, n, n, rows1, 1, 0);
        double[] e2 = ReferenceOps.matmul(x2, true, x2, false, null, n, n, rows2, 1, 0);
        double[] expected = new double[n * n];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = e1[i] + e2[i];
        }
        try (Tensor g = backend.zeros(n, n); Tensor t1 = upload(x1, rows1, n); Tensor t2 = upload(x2, rows2, n)) {
            backend.accumulateGram(t1, g);
            backend.accumulateGram(t2, g);
            float[] got = backend.download(g);
            assertClose(expected, got, 5e-6, Math.sqrt(rows1 + rows2), "gram");
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    assertEquals(got[i * n + j], got[j * n + i], "gram not symmetric at " + i + "," + j);
                }
            }
        }
    }

    /**
     * The Gram of fp16-rounded inputs (values past ±65504 clamped), finished into a symmetric Hessian, against fp64
     * sums of the same fp16 values; x is left as it was. Shapes: one row and one column, rows and columns that are
     * not multiples of 16/32 or of a device's tiles, two chunks.
     */
    @Test
    void halfGramIsTheGramOfFp16RoundedInputsFinishedSymmetric() {
        int[][] shapes = {{1, 1}, {15, 7}, {33, 129}, {257, 300}};
        for (int[] s : shapes) {
            int rows = s[0];
            int n = s[1];
            float[] x1 = gaussian(rows * n, 3);
            float[] x2 = gaussian(rows * n, 3);
            x1[0] = 70000f;
            x2[x2.length - 1] = -1e6f;
            double[] expected = new double[n * n];
            for (float[] x : new float[][] {x1, x2}) {
                float[] h = new float[x.length];
                for (int i = 0; i < x.length; i++) {
                    h[i] = org.exl2spark.io.Half.toFloat(org.exl2spark.io.Half.fromFloat(
                            Math.max(-65504f, Math.min(65504f, x[i]))));
                }
                double[] g = ReferenceOps.matmul(h, true, h, false, null, n, n, rows, 1, 0);
                for (int i = 0; i < expected.length; i++) {
                    expected[i] += g[i] / (2.0 * rows);
                }
            }
            try (Tensor g = backend.zeros(n, n); Tensor t1 = upload(x1, rows, n); Tensor t2 = upload(x2, rows, n)) {
                backend.accumulateHalfGram(t1, g);
                backend.accumulateHalfGram(t2, g);
                backend.finishHessian(g, 2L * rows);
                float[] got = backend.download(g);
                double worst = 0;
                for (int i = 0; i < n; i++) {
                    for (int j = 0; j < n; j++) {
                        double scale = Math.sqrt(expected[i * n + i] * expected[j * n + j]);
                        worst = Math.max(worst, Math.abs(got[i * n + j] - expected[i * n + j]) / scale);
                        assertEquals(got[i * n + j], got[j * n + i], rows + "×" + n + ": not symmetric at " + i + ","
                                + j);
                    }
                }
                assertTrue(worst <= 2e-6, rows + "×" + n + ": max |error|/sqrt(Hii·Hjj) " + worst);
                assertArrayEquals(x1, backend.download(t1), "x is unchanged");
            }
        }
    }

    @Test
    void embedGathersRowsAndRejectsUnknownIds() {
        int vocab = 50;
        int hidden = 12;
        float[] table = gaussian(vocab * hidden, 1);
        int[] ids = {3, 0, 49, 3, 17};
        try (Tensor t = upload(table, vocab, hidden); Tensor out = backend.zeros(1, ids.length, hidden)) {
            backend.embed(ids, t, out);
            float[] got = backend.download(out);
            for (int i = 0; i < ids.length; i++) {
                for (int j = 0; j < hidden; j++) {
                    assertEquals(table[ids[i] * hidden + j], got[i * hidden + j]);
                }
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> backend.embed(new int[] {1, 2, 3, 50, 4}, t, out));
            assertTrue(e.getMessage().contains("token id 50 at position 3"), e.getMessage());
        }
    }

    @Test
    void rmsNorm() {
        int rows = 333;
        int cols = 96;
        float[] x = gaussian(rows * cols, 3);
        float[] w = gaussian(cols, 1);
        try (Tensor tx = upload(x, 3, rows / 3, cols); Tensor tw = upload(w, cols)) {
            backend.rmsNorm(tx, tw, 1e-5f, tx);
            assertClose(ReferenceOps.rmsNorm(x, w, 1e-5, rows, cols), backend.download(tx), 1e-6, "rmsNorm in place");
        }
    }

    @Test
    void ropeRotatesHalves() {
        int batch = 2;
        int seqLen = 50;
        int heads = 3;
        int headDim = 8;
        int half = headDim / 2;
        int tablePositions = 64;
        double[] angles = new double[tablePositions * half];
        float[] cos = new float[angles.length];
        float[] sin = new float[angles.length];
        for (int p = 0; p < tablePositions; p++) {
            for (int i = 0; i < half; i++) {
                angles[p * half + i] = p * Math.pow(10000, -2.0 * i / headDim);
                cos[p * half + i] = (float) Math.cos(angles[p * half + i]);
                sin[p * half + i] = (float) Math.sin(angles[p * half + i]);
            }
        }
        float[] x = gaussian(batch * seqLen * heads * headDim, 1);
        try (Tensor tx = upload(x, batch, seqLen, heads * headDim);
                Tensor tc = upload(cos, tablePositions, half);
                Tensor ts = upload(sin, tablePositions, half)) {
            backend.rope(tx, heads, headDim, tc, ts);
            assertClose(ReferenceOps.rope(x, batch * seqLen, seqLen, heads, headDim, angles), backend.download(tx), 1e-6,
                    "rope");
        }
    }

    @Test
    void attentionCausalGqaAndSlidingWindow() {
        int batch = 2;
        int seqLen = 300;
        int headDim = 16;
        int[][] headConfigs = {{4, 2}, {3, 3}, {4, 1}};
        for (int[] hc : headConfigs) {
            int heads = hc[0];
            int kvHeads = hc[1];
            for (int window : new int[] {0, 1, 37, 256, 299, 300, 1000}) {
                float[] q = gaussian(batch * seqLen * heads * headDim, 1);
                float[] k = gaussian(batch * seqLen * kvHeads * headDim, 1);
                float[] v = gaussian(batch * seqLen * kvHeads * headDim, 1);
                double[] expected = ReferenceOps.attention(q, k, v, batch, seqLen, heads, kvHeads, headDim, window);
                try (Tensor tq = upload(q, batch, seqLen, heads * headDim);
                        Tensor tk = upload(k, batch, seqLen, kvHeads * headDim);
                        Tensor tv = upload(v, batch, seqLen, kvHeads * headDim);
                        Tensor out = backend.zeros(batch, seqLen, heads * headDim)) {
                    backend.attention(tq, tk, tv, out, heads, kvHeads, headDim, window);
                    assertClose(expected, backend.download(out), 2e-6,
                            "attention heads=" + heads + " kv=" + kvHeads + " window=" + window);
                }
            }
        }
    }

    @Test
    void roundToHalfPicksTheNearestFp16ValueTiesToEvenAndClampsToItsRange() {
        // every finite fp16 value, ascending, decoded independently of the encoder under test
        float[] halves = new float[63489];
        int count = 0;
        for (int bits = 0; bits < 0x10000; bits++) {
            int exponent = (bits >> 10) & 0x1f;
            if (exponent != 0x1f && bits != 0x8000) {
                int mantissa = bits & 0x3ff;
                double magnitude = exponent == 0 ? mantissa * Math.pow(2, -24)
                        : (1 + mantissa / 1024.0) * Math.pow(2, exponent - 15);
                halves[count++] = (float) ((bits & 0x8000) != 0 ? -magnitude : magnitude);
            }
        }
        float[] values = java.util.Arrays.copyOf(halves, count);
        java.util.Arrays.sort(values);
        int n = 20_000;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(13) - 8));
        }
        x[0] = 1e6f;
        x[1] = -7e4f;
        x[2] = 1f + 1f / 2048;      // halfway between 1 and 1 + 2^-10: to the even 1
        x[3] = 1f + 3f / 2048;      // halfway between 1 + 2^-10 and 1 + 2^-9: to the even 1 + 2^-9
        x[4] = (float) Math.pow(2, -25); // halfway between 0 and the smallest subnormal: to 0
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            // a value that rounds to zero keeps its sign, as fp16's −0 does
            expected[i] = Math.copySign(nearest(values, Math.max(-65504f, Math.min(65504f, x[i]))), x[i]);
        }
        try (Tensor t = upload(x, n); Tensor out = backend.zeros(n); Tensor half = backend.halfZeros(n)) {
            backend.roundToHalf(t, out);
            assertArrayEquals(expected, backend.download(out), "roundToHalf");
            backend.roundToHalf(t, half);
            assertArrayEquals(expected, backend.download(half), "roundToHalf into an fp16 tensor");
            backend.roundToHalf(t, t);
            assertArrayEquals(expected, backend.download(t), "roundToHalf in place");
        }
        assertEquals(65504f, expected[0]);
        assertEquals(-65504f, expected[1]);
        assertEquals(1f, expected[2]);
        assertEquals(1f + 1f / 512, expected[3]);
        assertEquals(0f, expected[4]);
    }

    /** The value of sorted {@code values} nearest to v; a tie goes to the one whose fp16 mantissa is even. */
    private static float nearest(float[] values, float v) {
        int i = java.util.Arrays.binarySearch(values, v);
        if (i >= 0) {
            return values[i];
        }
        int hi = -i - 1;
        float below = values[hi - 1];
        float above = values[hi];
        double dBelow = (double) v - below;
        double dAbove = (double) above - v;
        if (dBelow != dAbove) {
            return dBelow < dAbove ? below : above;
        }
        return evenMantissa(below) ? below : above;
    }

    private static boolean evenMantissa(float half) {
        double m = Math.abs(half);
        if (m < Math.pow(2, -14)) {
            return Math.round(m / Math.pow(2, -24)) % 2 == 0;
        }
        int exponent = Math.getExponent(m);
        return Math.round(m / Math.pow(2, exponent - 10)) % 2 == 0;
    }

    @Test
    void slicesCopiesAndTheBlockError() {
        int rows = 3;
        int tokens = 5;
        int hidden = 70;
        int n = rows * tokens * hidden;
        float[] big = gaussian(n + 11, 1);
        try (Tensor slice = backend.uploadSlice(big, 11, rows, tokens, hidden);
                Tensor copy = backend.zeros(rows, tokens, hidden)) {
            backend.copy(slice, copy);
            float[] back = new float[n + 4];
            backend.downloadSlice(copy, back, 4);
            assertArrayEquals(java.util.Arrays.copyOfRange(big, 11, n + 11), java.util.Arrays.copyOfRange(back, 4,
                    n + 4), "slice in, copy, slice out");
            float[] ref = gaussian(n, 1);
            float[] y = java.util.Arrays.copyOfRange(big, 11, n + 11);
            y[3] = 1e6f;  // beyond fp16: clamped to 65504
            try (Tensor ty = upload(y, rows, tokens, hidden); Tensor tr = upload(ref, rows, tokens, hidden)) {
                double[] errors = backend.relativeErrors(ty, tr);
                assertEquals(rows, errors.length);
                int size = tokens * hidden;
                for (int r = 0; r < rows; r++) {
                    double diff = 0;
                    double norm = 0;
                    for (int i = r * size; i < (r + 1) * size; i++) {
                        double d = Math.min(65504.0, y[i]) - (double) ref[i];
                        diff += d * d;
                        norm += (double) ref[i] * ref[i];
                    }
                    assertEquals(Math.sqrt(diff / norm), errors[r], 1e-6 * Math.sqrt(diff / norm), "row " + r);
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> backend.uploadSlice(big, n, rows, tokens, hidden),
                "a slice past the array's end");
    }

    @Test
    void swiGluAndAdd() {
        int n = 100_003;
        float[] g = gaussian(n, 8);
        float[] u = gaussian(n, 1);
        g[0] = 95f;
        g[1] = -95f;
        g[2] = 0f;
        double[] expectedGlu = new double[n];
        double[] expectedSum = new double[n];
        for (int i = 0; i < n; i++) {
            expectedGlu[i] = ReferenceOps.silu(g[i]) * u[i];
            expectedSum[i] = (double) g[i] + u[i];
        }
        try (Tensor tg = upload(g, n); Tensor tu = upload(u, n); Tensor out = backend.zeros(n)) {
            backend.add(tg, tu, out);
            assertClose(expectedSum, backend.download(out), 1e-7, "add");
            backend.swiGlu(tg, tu, tu);
            assertClose(expectedGlu, backend.download(tu), 1e-6, "swiGlu");
        }
    }

    @Test
    void softmaxAndLogSoftmaxOnWideRanges() {
        int rows = 37;
        int cols = 4099;
        float[] x = gaussian(rows * cols, 20);
        x[5] = Float.NEGATIVE_INFINITY;
        double[] expectedLog = ReferenceOps.logSoftmax(x, rows, cols);
        double[] expected = new double[expectedLog.length];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = Math.exp(expectedLog[i]);
        }
        try (Tensor tx = upload(x, rows, cols); Tensor out = backend.zeros(rows, cols)) {
            backend.softmax(tx, out);
            float[] p = backend.download(out);
            assertClose(expected, p, 1e-6, "softmax");
            assertEquals(0f, p[5]);
            backend.logSoftmax(tx, tx);
            float[] lp = backend.download(tx);
            assertEquals(Float.NEGATIVE_INFINITY, lp[5]);
            expectedLog[5] = 0;
            lp[5] = 0;
            assertClose(expectedLog, lp, 1e-6, "logSoftmax");
        }
    }

    @Test
    void klDivergencePerRow() {
        int rows = 20;
        int cols = 1000;
        float[] a = gaussian(rows * cols, 3);
        float[] b = a.clone();
        for (int i = 0; i < b.length; i++) {
            b[i] += (float) (random.nextGaussian() * 0.3);
        }
        float[] lpA = toFloats(ReferenceOps.logSoftmax(a, rows, cols));
        float[] lpB = toFloats(ReferenceOps.logSoftmax(b, rows, cols));
        try (Tensor ta = upload(lpA, rows, cols); Tensor tb = upload(lpB, rows, cols); Tensor out = backend.zeros(rows)) {
            backend.klDivergence(ta, tb, out);
            float[] kl = backend.download(out);
            assertClose(ReferenceOps.klDivergence(lpA, lpB, rows, cols), kl, 1e-5, "kl");
            backend.klDivergence(ta, ta, out);
            assertArrayEquals(new float[rows], backend.download(out), 1e-7f);
        }
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }
}
