package org.exl2spark.backend;

import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link ExpKernels} on the Vector API: {@link FastExp}'s range reduction and polynomial, lane by lane, with the same
 * edge behaviour (below −86 → 0, NaN stays NaN, above 88 → e^88). Loaded only when jdk.incubator.vector is present.
 *
 * <p>e^x is written out once, inside {@link #expInPlace}'s loop, and the other kernels go through that loop: C2
 * decides whether to inline a helper from call profiles, which other vector code in the JVM (the scale search)
 * pollutes. Out of line, every call boxed its vectors (a heap object each; 4720 garbage collections in one tiny
 * conversion), and softmax and SwiGLU took two thirds of the conversion's Java execution samples (JFR,
 * docs/BENCHMARKS.md).
 */
final class VectorExpKernels implements ExpKernels {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ExpKernels TAIL = new ScalarExpKernels();

    @Override
    public String describe() {
        return "vectorised exp (" + LANES + " lanes)";
    }

    @Override
    public float expInPlace(float[] a, int from, int to, float shift) {
        FloatVector sum = FloatVector.zero(SPECIES);
        byte[] bits = new byte[SPECIES.vectorByteSize()];
        int i = from;
        for (int end = to - LANES; i <= end; i += LANES) {
            FloatVector x = FloatVector.fromArray(SPECIES, a, i).sub(shift);
            VectorMask<Float> flushed = x.lt(FastExp.MIN_INPUT);
            VectorMask<Float> nan = x.test(VectorOperators.IS_NAN);
            FloatVector c = x.max(FastExp.MIN_INPUT).min(FastExp.MAX_INPUT);
            FloatVector t = c.mul(FastExp.LOG2E).add(FastExp.ROUNDER);
            FloatVector k = t.sub(FastExp.ROUNDER);
            FloatVector r = c.sub(k.mul(FastExp.LN2_HI)).sub(k.mul(FastExp.LN2_LO));
            FloatVector p = r.mul(FastExp.P7).add(FastExp.P6).mul(r).add(FastExp.P5).mul(r).add(FastExp.P4).mul(r)
                    .add(FastExp.P3).mul(r).add(FastExp.P2).mul(r).add(1f).mul(r).add(1f);
            // 2^k from k in t's low mantissa bits, the bits moved through memory: C2 did not intrinsify the register
            // reinterpretation (reinterpretAsInts) in this loop, and the Vector API's Java fallback then dominated an
            // attention micro-benchmark. p·2^k is exact and normal for every clamped input (k in [−124, 127], p near
            // 1), so it equals FastExp's exponent addition bit for bit.
            t.intoByteArray(bits, 0, ByteOrder.LITTLE_ENDIAN);
            IntVector.fromByteArray(INTS, bits, 0, ByteOrder.LITTLE_ENDIAN)
                    .sub(Float.floatToRawIntBits(FastExp.ROUNDER) - 127).lanewise(VectorOperators.LSHL, 23)
                    .intoByteArray(bits, 0, ByteOrder.LITTLE_ENDIAN);
            FloatVector scale = FloatVector.fromByteArray(SPECIES, bits, 0, ByteOrder.LITTLE_ENDIAN);
            FloatVector e = p.mul(scale).blend(0f, flushed).blend(x, nan);
            e.intoArray(a, i);
            sum = sum.add(e);
        }
        return sum.reduceLanes(VectorOperators.ADD) + TAIL.expInPlace(a, i, to, shift);
    }

    /** Computed in a copy by {@link #expInPlace}, lanes grouped as there, so the sum is the same. */
    @Override
    public float sumExp(float[] a, int from, int to, float shift) {
        return expInPlace(Arrays.copyOfRange(a, from, to), 0, to - from, shift);
    }

    /** e^−g by {@link #expInPlace} on a copy (e^(−g − 0) is e^−g bit for bit), then the quotient and product. */
    @Override
    public void swiGlu(float[] gate, float[] up, float[] out, int from, int to) {
        float[] e = new float[to - from];
        for (int i = from; i < to; i++) {
            e[i - from] = -gate[i];
        }
        expInPlace(e, 0, e.length, 0f);
        // out may be gate: each element is read before it is written
        for (int i = from; i < to; i++) {
            out[i] = gate[i] / (1f + e[i - from]) * up[i];
        }
    }

    @Override
    public float max(float[] a, int from, int to) {
        FloatVector m = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        int i = from;
        for (int end = to - LANES; i <= end; i += LANES) {
            m = m.max(FloatVector.fromArray(SPECIES, a, i));
        }
        return Math.max(m.reduceLanes(VectorOperators.MAX), TAIL.max(a, i, to));
    }
}
