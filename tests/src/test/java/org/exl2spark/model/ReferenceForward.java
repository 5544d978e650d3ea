package org.exl2spark.model;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.exl2spark.backend.ReferenceOps;

/**
 * The decoder written out from its definition on plain arrays with {@link ReferenceOps} (double arithmetic inside
 * each operation), one sequence at a time, independent of {@link Transformer} and any backend.
 */
final class ReferenceForward {
    private final ModelArchitecture a;
    private final WeightSource w;
    /** Inputs seen by the linears of layer 0, for checking an observer: q/k/v, o, gate/up, down. */
    final List<float[]> layer0LinearInputs = new ArrayList<>();

    ReferenceForward(WeightSource weights) {
        this.w = weights;
        this.a = weights.architecture();
    }

    /** Logits [seqLen, vocab] of one sequence. */
    float[] logits(int[] tokens) throws IOException {
        int t = tokens.length;
        int hidden = a.hiddenSize();
        float[] h = new float[t * hidden];
        for (int i = 0; i < t; i++) {
            System.arraycopy(w.embeddingRows(new int[] {tokens[i]}), 0, h, i * hidden, hidden);
        }
        double[] inv = a.rope().inverseFrequencies(a.headDim());
        double[] angles = new double[t * inv.length];
        for (int p = 0; p < t; p++) {
            for (int i = 0; i < inv.length; i++) {
                angles[p * inv.length + i] = p * inv[i];
            }
        }
        for (LayerSpec layer : a.layers()) {
            boolean record = layer.index() == 0;
            BlockSpec at = layer.attention();
            float[] x = f(ReferenceOps.rmsNorm(h, w.norm(at.normName()), a.rmsNormEps(), t, hidden));
            float[] q = f(ReferenceOps.rope(linear(x, at.linear("q_proj"), t), t, t, a.numHeads(), a.headDim(), angles));
            float[] k = f(ReferenceOps.rope(linear(x, at.linear("k_proj"), t), t, t, a.numKvHeads(), a.headDim(), angles));
            float[] v = linear(x, at.linear("v_proj"), t);
            float[] att = f(ReferenceOps.attention(q, k, v, 1, t, a.numHeads(), a.numKvHeads(), a.headDim(),
                    a.slidingWindow()));
            add(h, linear(att, at.linear("o_proj"), t));
            BlockSpec mlp = layer.mlp();
            float[] x2 = f(ReferenceOps.rmsNorm(h, w.norm(mlp.normName()), a.rmsNormEps(), t, hidden));
            float[] gate = linear(x2, mlp.linear("gate_proj"), t);
            float[] up = linear(x2, mlp.linear("up_proj"), t);
            float[] act = new float[gate.length];
            for (int i = 0; i < act.length; i++) {
                act[i] = (float) (ReferenceOps.silu(gate[i]) * up[i]);
            }
            add(h, linear(act, mlp.linear("down_proj"), t));
            if (record) {
                layer0LinearInputs.addAll(List.of(x, att, x2, act));
            }
        }
        float[] x = f(ReferenceOps.rmsNorm(h, w.norm(ModelArchitecture.FINAL_NORM), a.rmsNormEps(), t, hidden));
        return linear(x, a.lmHead(), t);
    }

    private float[] linear(float[] x, LinearSpec l, int rows) throws IOException {
        return f(ReferenceOps.linear(x, w.linearWeight(l), w.bias(l), rows, (int) l.inFeatures(), (int) l.outFeatures()));
    }

    private static void add(float[] h, float[] y) {
        for (int i = 0; i < h.length; i++) {
            h[i] += y[i];
        }
    }

    private static float[] f(double[] d) {
        float[] out = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            out[i] = (float) d[i];
        }
        return out;
    }
}
