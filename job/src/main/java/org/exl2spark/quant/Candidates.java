package org.exl2spark.quant;

import java.util.List;
import java.util.Map;

/**
 * ExLlamaV2's measurement candidates: one row per candidate, one QParams per projection of the block (EXL2-SPEC C.2).
 * The rows are ordered roughly by cost, which the optimizer's greedy fill relies on.
 */
public final class Candidates {
    private Candidates() {
    }

    private static final double[] P1 = {1};

    private static QParams q(int gs, int[] bits, double[] prop) {
        return QParams.of(gs, bits, prop);
    }

    private static QParams q(int[] gs, int[] bits, double[] prop) {
        return new QParams(gs, bits, prop, QParams.SCALE_BITS);
    }

    private static int[] b(int... bits) {
        return bits;
    }

    private static double[] p(double... prop) {
        return prop;
    }

    private static Map<String, QParams> attn(QParams qp, QParams kp, QParams vp, QParams op) {
        return Map.of("q_proj", qp, "k_proj", kp, "v_proj", vp, "o_proj", op);
    }

    private static Map<String, QParams> mlp(QParams gate, QParams up, QParams down) {
        return Map.of("gate_proj", gate, "up_proj", up, "down_proj", down);
    }

    /** The 19 attention candidates (q_proj, k_proj, v_proj, o_proj). */
    public static final List<Map<String, QParams>> ATTENTION = List.of(
            attn(q(64, b(3, 2), p(.05, .95)), q(64, b(3, 2), p(.05, .95)), q(64, b(3, 2), p(.05, .95)), q(64, b(3, 2), p(.05, .95))),
            attn(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.25, .75)), q(64, b(3, 2), p(.1, .9))),
            attn(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.1, .9)), q(128, b(4, 3), p(.1, .9)), q(64, b(3, 2), p(.1, .9))),
            attn(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.1, .9)), q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9))),
            attn(q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9))),
            attn(q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9)), q(64, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.1, .9))),
            attn(q(128, b(4), P1), q(128, b(4), P1), q(128, b(4), P1), q(128, b(4), P1)),
            attn(q(128, b(4), P1), q(128, b(4), P1), q(64, b(4), P1), q(128, b(4), P1)),
            attn(q(64, b(4), P1), q(64, b(4), P1), q(32, b(4), P1), q(64, b(4), P1)),
            attn(q(32, b(4), P1), q(32, b(4), P1), q(32, b(4), P1), q(32, b(4), P1)),
            attn(q(128, b(5, 4), p(.1, .9)), q(128, b(5, 4), p(.1, .9)), q(64, b(5, 4), p(.1, .9)), q(128, b(5, 4), p(.1, .9))),
            attn(q(64, b(5, 4), p(.1, .9)), q(64, b(5, 4), p(.1, .9)), q(32, b(5, 4), p(.1, .9)), q(64, b(5, 4), p(.1, .9))),
            attn(q(64, b(5, 4), p(.1, .9)), q(64, b(5, 4), p(.1, .9)), q(64, b(5), P1), q(64, b(5, 4), p(.1, .9))),
            attn(q(32, b(5, 4), p(.1, .9)), q(32, b(5, 4), p(.1, .9)), q(32, b(5), P1), q(32, b(5, 4), p(.1, .9))),
            attn(q(128, b(6, 5), p(.1, .9)), q(128, b(6, 5), p(.1, .9)), q(128, b(6), P1), q(128, b(6, 5), p(.1, .9))),
            attn(q(32, b(6, 5), p(.1, .9)), q(32, b(6, 5), p(.1, .9)), q(32, b(6), P1), q(32, b(6, 5), p(.1, .9))),
            attn(q(128, b(6), P1), q(128, b(6), P1), q(128, b(6), P1), q(128, b(6), P1)),
            attn(q(32, b(6), P1), q(32, b(6), P1), q(32, b(8), P1), q(32, b(6), P1)),
            attn(q(128, b(8), P1), q(128, b(8), P1), q(128, b(8), P1), q(128, b(8), P1)));

    /** The 17 MLP candidates (gate_proj, up_proj, down_proj). */
    public static final List<Map<String, QParams>> MLP = List.of(
            mlp(q(64, b(3, 2), p(.05, .95)), q(64, b(3, 2), p(.05, .95)), q(new int[] {32, 64, 64}, b(6, 3, 2), p(.05, .2, .75))),
            mlp(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.25, .75)), q(new int[] {32, 64, 64}, b(6, 3, 2), p(.05, .2, .75))),
            mlp(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.3, .7)), q(32, b(5, 3), p(.05, .95))),
            mlp(q(64, b(3, 2), p(.1, .9)), q(64, b(3, 2), p(.3, .7)), q(32, b(5, 4), p(.05, .95))),
            mlp(q(128, b(4, 3), p(.1, .9)), q(128, b(4, 3), p(.25, .75)), q(new int[] {32, 128, 128}, b(8, 4, 3), p(.05, .1, .85))),
            mlp(q(32, b(4, 3), p(.1, .9)), q(32, b(4, 3), p(.25, .75)), q(new int[] {32, 32, 32}, b(8, 4, 3), p(.05, .1, .85))),
            mlp(q(32, b(4, 3), p(.1, .9)), q(32, b(4, 3), p(.25, .75)), q(new int[] {32, 128}, b(8, 4), p(.05, .95))),
            mlp(q(128, b(4), P1), q(32, b(4), P1), q(new int[] {32, 128}, b(8, 4), p(.05, .95))),
            mlp(q(32, b(4), P1), q(32, b(4), P1), q(new int[] {32, 32}, b(8, 4), p(.05, .95))),
            mlp(q(128, b(5, 4), p(.1, .9)), q(128, b(5, 4), p(.25, .75)), q(new int[] {32, 128, 128}, b(8, 5, 4), p(.05, .1, .85))),
            mlp(q(32, b(5, 4), p(.1, .9)), q(32, b(5, 4), p(.25, .75)), q(new int[] {32, 32, 32}, b(8, 5, 4), p(.05, .1, .85))),
            mlp(q(128, b(6, 5), p(.1, .9)), q(128, b(6, 5), p(.25, .75)), q(new int[] {32, 128, 128}, b(8, 6, 5), p(.05, .1, .85))),
            mlp(q(32, b(6, 5), p(.1, .9)), q(32, b(6, 5), p(.25, .75)), q(new int[] {32, 32, 32}, b(8, 6, 5), p(.05, .1, .85))),
            mlp(q(128, b(6), P1), q(128, b(6), P1), q(new int[] {32, 128}, b(8, 6), p(.05, .95))),
            mlp(q(128, b(8, 6), p(.1, .9)), q(128, b(8, 6), p(.1, .9)), q(128, b(8, 6), p(.15, .85))),
            mlp(q(128, b(8, 6), p(.1, .9)), q(128, b(8, 6), p(.1, .9)), q(128, b(8), P1)),
            mlp(q(128, b(8), P1), q(128, b(8), P1), q(128, b(8), P1)));

    /** The fixed settings of the output head for {@code -hb} (EXL2-SPEC B); the head is outside the bpw budget. */
    public static QParams headParams(int headBits) {
        return switch (headBits) {
            case 2 -> q(32, b(4, 2), p(.3, .7));
            case 3 -> q(32, b(4, 3), p(.15, .85));
            case 4 -> q(32, b(6, 4), p(.15, .85));
            case 5 -> q(128, b(6, 5), p(.15, .85));
            case 6 -> q(128, b(8, 6), p(.15, .85));
            case 8 -> q(128, b(8), p(1.0));
            default -> throw new IllegalArgumentException("head bits must be one of 2, 3, 4, 5, 6, 8; got " + headBits);
        };
    }
}
