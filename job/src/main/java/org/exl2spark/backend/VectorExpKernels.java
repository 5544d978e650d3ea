package org.exl2spark.backend;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link ExpKernels} on the Vector API: {@link FastExp}'s range reduction and polynomial, lane by lane, with the same
 * edge behaviour (below −86 → 0, NaN stays NaN, above 88 → e^88). Loaded only when jdk.incubator.vector is present.
 */
final class VectorExpKernels implements ExpKernels {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ExpKernels TAIL = new ScalarExpKernels();

    @Override
    public String describe() {
        return "vectorised exp (" + LANES + " lanes)";
    }

    /** e^x for each lane of x. */
    private static FloatVector exp(FloatVector x) {
        VectorMask<Float> flushed = x.lt(FastExp.MIN_INPUT);
        VectorMask<Float> nan = x.test(VectorOperators.IS_NAN);
        FloatVector c = x.max(FastExp.MIN_INPUT).min(FastExp.MAX_INPUT);
        FloatVector t = c.mul(FastExp.LOG2E).add(FastExp.ROUNDER);
        FloatVector k = t.sub(FastExp.ROUNDER);
        FloatVector r = c.sub(k.mul(FastExp.LN2_HI)).sub(k.mul(FastExp.LN2_LO));
        FloatVector p = r.mul(FastExp.P7).add(FastExp.P6).mul(r).add(FastExp.P5).mul(r).add(FastExp.P4).mul(r)
                .add(FastExp.P3).mul(r).add(FastExp.P2).mul(r).add(1f).mul(r).add(1f);
        IntVector scale = t.reinterpretAsInts().sub(Float.floatToRawIntBits(FastExp.ROUNDER))
                .lanewise(VectorOperators.LSHL, 23);
        FloatVector e = p.reinterpretAsInts().add(scale).reinterpretAsFloats();
        return e.blend(0f, flushed).blend(x, nan);
    }

    @Override
    public float expInPlace(float[] a, int from, int to, float shift) {
        FloatVector sum = FloatVector.zero(SPECIES);
        int i = from;
        for (int end = to - LANES; i <= end; i += LANES) {
            FloatVector e = exp(FloatVector.fromArray(SPECIES, a, i).sub(shift));
            e.intoArray(a, i);
            sum = sum.add(e);
        }
        return sum.reduceLanes(VectorOperators.ADD) + TAIL.expInPlace(a, i, to, shift);
    }

    @Override
    public float sumExp(float[] a, int from, int to, float shift) {
        FloatVector sum = FloatVector.zero(SPECIES);
        int i = from;
        for (int end = to - LANES; i <= end; i += LANES) {
            sum = sum.add(exp(FloatVector.fromArray(SPECIES, a, i).sub(shift)));
        }
        return sum.reduceLanes(VectorOperators.ADD) + TAIL.sumExp(a, i, to, shift);
    }

    @Override
    public void swiGlu(float[] gate, float[] up, float[] out, int from, int to) {
        int i = from;
        for (int end = to - LANES; i <= end; i += LANES) {
            FloatVector g = FloatVector.fromArray(SPECIES, gate, i);
            g.div(exp(g.neg()).add(1f)).mul(FloatVector.fromArray(SPECIES, up, i)).intoArray(out, i);
        }
        TAIL.swiGlu(gate, up, out, i, to);
    }
}
