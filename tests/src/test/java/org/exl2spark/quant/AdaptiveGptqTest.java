package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.io.Half;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class AdaptiveGptqTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

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

    /** The finished Hessian of activations x [tokens × in] as the pipeline builds it, in two batches. */
    static Tensor hessian(CpuBackend backend, float[] x, int tokens, int in) {
        Tensor gram = backend.zeros(in, in);
        int half = tokens / 2;
        backend.accumulateGram(backend.upload(java.util.Arrays.copyOfRange(x, 0, half * in), half, in), gram);
        backend.accumulateGram(backend.upload(java.util.Arrays.copyOfRange(x, half * in, tokens * in), tokens - half,
                in), gram);
        backend.finishHessian(gram, tokens);
        return gram;
    }

    /** The identity matrix: GPTQ with it is plain round-to-nearest with the same scale search. */
    static Tensor identity(CpuBackend backend, int n) {
        Tensor h = backend.zeros(n, n);
        backend.addDiagonal(h, 1f);
        return h;
    }

    /** GPTQ's result with its dequantized weight in the logical [in × out] layout. */
    record Quantized(GptqResult result, float[] dequantInOut) {
    }

    static Quantized quantize(CpuBackend backend, float[] whf, int out, int in, AdaptiveGptq.Preparation<Tensor> prep,
            QParams qp) {
        Tensor dq = backend.zeros(out, in);
        GptqResult r = AdaptiveGptq.quantize(backend, backend.upload(whf.clone(), out, in), prep, qp, dq);
        float[] hf = backend.download(dq);
        float[] inOut = new float[in * out];
        for (int j = 0; j < in; j++) {
            for (int n = 0; n < out; n++) {
                inOut[j * out + n] = hf[n * in + j];
            }
        }
        return new Quantized(r, inOut);
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
        AdaptiveGptq.Preparation<Tensor> prep = AdaptiveGptq.prepare(CPU, hessian(CPU, x, tokens, in), "test");
        AdaptiveGptq.Preparation<Tensor> rtn = AdaptiveGptq.prepare(CPU, identity(CPU, in), "rtn");
        for (QParams qp : new QParams[] {QParams.of(64, new int[] {4}, new double[] {1}),
                QParams.of(32, new int[] {5, 3}, new double[] {0.1, 0.9}),
                new QParams(new int[] {32, 64, 64}, new int[] {6, 3, 2}, new double[] {.05, .2, .75}, 4)}) {
            Quantized r = quantize(CPU, w, out, in, prep, qp);
            checkDecodes(r);
            checkPacksLosslessly(r);
            Quantized plain = quantize(CPU, w, out, in, rtn, qp);
            double eg = outputError(x, tokens, in, w, r.dequantInOut(), out);
            double er = outputError(x, tokens, in, w, plain.dequantInOut(), out);
            assertTrue(eg < 0.8 * er, qp + ": GPTQ error " + eg + " not clearly below round-to-nearest " + er);
        }
    }

    /** The dequantized weight is exactly what EXL2's decoding arithmetic gives for the stored codes and scales. */
    static void checkDecodes(Quantized q) {
        GptqResult r = q.result();
        int[] inv = r.invperm();
        for (GptqResult.QuantGroup g : r.groups()) {
            float m = Half.toFloat(Half.fromFloat(Half.toFloat(g.scaleMaxHalf()) * Half.toFloat(Half.fromFloat(1f / 256))));
            for (int k = g.firstRow(); k < g.firstRow() + g.rows(); k++) {
                for (int n = 0; n < r.columns(); n++) {
                    int c = g.scaleCodes()[n] + 1;
                    float s = Half.toFloat(Half.fromFloat(Half.toFloat(Half.fromFloat(c * c)) * m));
                    float v = Half.toFloat(Half.fromFloat((r.code(k, n) - (1 << (g.bits() - 1))) * s));
                    assertEquals(v, q.dequantInOut()[r.perm()[k] * r.columns() + n], 0f);
                }
            }
        }
        for (int j = 0; j < inv.length; j++) {
            assertEquals(j, r.perm()[inv[j]]);
        }
    }

    /** Packed into EXL2 tensors and decoded by the codec, the result gives back exactly the dequantized weight. */
    static void checkPacksLosslessly(Quantized q) {
        GptqResult r = q.result();
        Exl2Linear packed = r.toExl2("test.proj", null);
        HalfMatrix inOut = packed.dequantize();
        for (int j = 0; j < r.rows(); j++) {
            for (int n = 0; n < r.columns(); n++) {
                assertEquals(q.dequantInOut()[j * r.columns() + n], inOut.getFloat(j, n), 0f);
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
        AdaptiveGptq.Preparation<Tensor> p = AdaptiveGptq.prepare(CPU, CPU.upload(h.clone(), n, n), "diag");
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
        Tensor gram = CPU.zeros(n, n);
        CPU.accumulateGram(CPU.upload(x, 4, n), gram); // rank 4 of 48
        CPU.finishHessian(gram, 4);
        AdaptiveGptq.Preparation<Tensor> p = AdaptiveGptq.prepare(CPU, gram, "rank-deficient");
        float[] u = CPU.download(p.upperInverse());
        for (int i = 0; i < n; i++) {
            assertTrue(u[i * n + i] > 0);
        }
    }

    @Test
    void aMatrixThatIsNeverPositiveDefiniteFailsNamingTheModule() {
        int n = 8;
        Tensor h = CPU.zeros(n, n);
        CPU.addDiagonal(h, -1f);
        ArithmeticException e = org.junit.jupiter.api.Assertions.assertThrows(ArithmeticException.class,
                () -> AdaptiveGptq.prepare(CPU, h, "model.layers.3.mlp.down_proj"));
        assertTrue(e.getMessage().contains("model.layers.3.mlp.down_proj"), e.getMessage());
    }
}
