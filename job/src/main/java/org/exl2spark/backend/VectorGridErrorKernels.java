package org.exl2spark.backend;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link GridErrorKernels} on the Vector API, lane for lane the scalar arithmetic: fp32 quotient and rounding
 * (half to even through the 1.5·2²³ trick, exact for every |x/s| < 2²² the clamp can keep), fp32 cube, then
 * the double square root and product the scalar loop computes, accumulated per column in double.
 *
 * <p>The float vectors have the preferred shape, the one {@link VectorExpKernels} uses: C2 inlines FloatVector's
 * shared methods by the vector classes their profiles saw, and a second float shape in the same JVM (this kernel
 * ran on 128-bit vectors before) made the attention softmax's exp fall back to boxed vectors, doubling the CPU
 * time of an attention forward on the AVX-512 development VM.
 */
final class VectorGridErrorKernels implements GridErrorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    /** Doubles of the same shape: half as many lanes, so each float vector converts in two parts. */
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final float ROUNDER = 12582912f;

    @Override
    public void addRowError(float[] w, int off, float[] scale, double[] colErr, int cols, float lo, float hi) {
        int n = 0;
        int bound = F.loopBound(cols);
        for (; n < bound; n += F.length()) {
            FloatVector s = FloatVector.fromArray(F, scale, n);
            FloatVector x = FloatVector.fromArray(F, w, off + n);
            FloatVector t = x.div(s);
            // |t| ≥ 2^22 rounds inexactly but keeps its sign and a magnitude far beyond the clamp bounds (≤ 128), so
            // the clamped value is the scalar one; ±Inf and NaN (s = 0) come through unchanged as in the scalar loop
            FloatVector q = t.add(ROUNDER).sub(ROUNDER).max(lo).min(hi);
            FloatVector e = q.mul(s).sub(x).abs();
            FloatVector cube = e.mul(e).mul(e);
            // written out for both halves, not a helper taking the vectors: a call C2 does not inline boxes them
            DoubleVector lowE = (DoubleVector) e.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector lowCube = (DoubleVector) cube.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector.fromArray(D, colErr, n).add(lowCube.mul(lowE.sqrt())).intoArray(colErr, n);
            int upper = n + D.length();
            DoubleVector highE = (DoubleVector) e.convertShape(VectorOperators.F2D, D, 1);
            DoubleVector highCube = (DoubleVector) cube.convertShape(VectorOperators.F2D, D, 1);
            DoubleVector.fromArray(D, colErr, upper).add(highCube.mul(highE.sqrt())).intoArray(colErr, upper);
        }
        GridErrorKernels.Scalar.addColumns(w, off, scale, colErr, n, cols, lo, hi);
    }
}
