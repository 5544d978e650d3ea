package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.exl2spark.io.Half;
import org.junit.jupiter.api.Test;

class AdaptiveGptqTest {

    /** Correlated activations with a few dominant input channels, like real LLM activations. */
    static float[] activations(SplittableRandom rng, int tokens, int in) {
        float[] mix = new float[in];
        for (int j = 0; j < in; j++) {
            mix[j] = (float) (rng.nextDouble() < 0.05 ? 8 : 1);
        }
        float[] x = new float[tokens * in];
        for (int t = 0; t < tokens; t++) {
            double common = rng.nextGaussian();
            for (int j = 0; j < in; j++) {
                x[t * in + j] = (float) ((0.6 * common + rng.nextGaussian()) * mix[j]);
            }
        }
        return x;
    }

    static float[] weight(SplittableRandom rng, int out, int in) {
        float[] w = new float[out * in];
        for (int i = 0; i < w.length; i++) {
            w[i] = Half.toFloat(Half.fromFloat((float) (rng.nextGaussian() / Math.sqrt(in))));
        }
        return w;
    }

    /** Σ over tokens and outputs of (x·(W − Q)ᵀ)²: the output error GPTQ minimises. */
    static double outputError(float[] x, int tokens, int in, float[] whf, float[] dqInOut, int out) {
        double total = 0;
        for (int t = 0; t < tokens; t++) {
            for (int o = 0; o < out; o++) {
                double e = 0;
                for (int j = 0; j < in; j++) {
                    e += x[t * in + j] * (whf[o * in + j] - dqInOut[j * out + o]);
                }
                total += e * e;
            }
        }
        return total;
    }

    @Test
    void codesDecodeToTheDequantizedWeightAndBeatRoundToNearest() {
        SplittableRandom rng = new SplittableRandom(11);
        int in = 256;
        int out = 96;
        int tokens = 512;
        float[] x = activations(rng, tokens, in);
        float[] w = weight(rng, out, in);
        Hessian h = new Hessian(in);
        h.addBatch(x, 0, tokens / 2);
        h.addBatch(x, (tokens / 2) * in, tokens / 2);
        AdaptiveGptq.Preparation prep = AdaptiveGptq.prepare(h.toMatrix(), in, "test");
        // identity Hessian = plain round-to-nearest with the same scale search
        AdaptiveGptq.Preparation rtn = AdaptiveGptq.prepare(new Hessian(in).toMatrix(), in, "rtn");
        for (QParams qp : new QParams[] {QParams.of(64, new int[] {4}, new double[] {1}),
                QParams.of(32, new int[] {5, 3}, new double[] {0.1, 0.9}),
                new QParams(new int[] {32, 64, 64}, new int[] {6, 3, 2}, new double[] {.05, .2, .75}, 4)}) {
            GptqResult r = AdaptiveGptq.quantize(w, out, in, prep, qp);
            checkDecodes(r);
            checkPacksLosslessly(r);
            GptqResult plain = AdaptiveGptq.quantize(w, out, in, rtn, qp);
            double eg = outputError(x, tokens, in, w, r.dequantized(), out);
            double er = outputError(x, tokens, in, w, plain.dequantized(), out);
            assertTrue(eg < 0.8 * er, qp + ": GPTQ error " + eg + " not clearly below round-to-nearest " + er);
        }
    }

    /** The dequantized weight is exactly what EXL2's decoding arithmetic gives for the stored codes and scales. */
    static void checkDecodes(GptqResult r) {
        int[] inv = r.invperm();
        for (GptqResult.QuantGroup g : r.groups()) {
            float m = Half.toFloat(Half.fromFloat(Half.toFloat(g.scaleMaxHalf()) * Half.toFloat(Half.fromFloat(1f / 256))));
            for (int k = g.firstRow(); k < g.firstRow() + g.rows(); k++) {
                for (int n = 0; n < r.columns(); n++) {
                    int c = g.scaleCodes()[n] + 1;
                    float s = Half.toFloat(Half.fromFloat(Half.toFloat(Half.fromFloat(c * c)) * m));
                    float v = Half.toFloat(Half.fromFloat((r.code(k, n) - (1 << (g.bits() - 1))) * s));
                    assertEquals(v, r.dequantized()[r.perm()[k] * r.columns() + n], 0f);
                }
            }
        }
        for (int j = 0; j < inv.length; j++) {
            assertEquals(j, r.perm()[inv[j]]);
        }
    }

    /** Packed into EXL2 tensors and decoded by the codec, the result gives back exactly the dequantized weight. */
    static void checkPacksLosslessly(GptqResult r) {
        Exl2Linear packed = r.toExl2("test.proj", null);
        HalfMatrix inOut = packed.dequantize();
        for (int j = 0; j < r.rows(); j++) {
            for (int n = 0; n < r.columns(); n++) {
                assertEquals(r.dequantized()[j * r.columns() + n], inOut.getFloat(j, n), 0f);
            }
        }
    }

    @Test
    void actOrderPutsTheLargestHessianDiagonalFirst() {
        int n = 64;
        float[] h = new float[n * n];
        for (int i = 0; i < n; i++) {
            h[i * n + i] = (i * 37) % n + 1;
        }
        AdaptiveGptq.Preparation p = AdaptiveGptq.prepare(h, n, "diag");
        for (int k = 1; k < n; k++) {
            assertTrue(h[p.perm()[k - 1] * (n + 1)] >= h[p.perm()[k] * (n + 1)]);
        }
    }

    @Test
    void singularHessianIsDampedNotFatal() {
        int n = 48;
        float[] x = new float[4 * n];
        SplittableRandom rng = new SplittableRandom(2);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rng.nextGaussian();
        }
        Hessian h = new Hessian(n);
        h.addBatch(x, 0, 4); // rank 4 of 48
        AdaptiveGptq.Preparation p = AdaptiveGptq.prepare(h.toMatrix(), n, "rank-deficient");
        for (int i = 0; i < n; i++) {
            assertTrue(p.upperInverse()[i * n + i] > 0);
        }
    }
}
