package org.exl2spark.backend;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link GridErrorKernels} on the Vector API, lane for lane the scalar arithmetic: fp32 quotient and rounding
 * (half to even through the 1.5·2²³ trick, exact for every |x/s| < 2²² the clamp can keep), fp32 cube, then
 * the double square root and product the scalar loop computes, accumulated per column in double.
 */
final class VectorGridErrorKernels implements GridErrorKernels {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_128;
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_256;
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
            DoubleVector ed = (DoubleVector) e.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector cd = (DoubleVector) cube.convertShape(VectorOperators.F2D, D, 0);
            DoubleVector acc = DoubleVector.fromArray(D, colErr, n);
            acc.add(cd.mul(ed.sqrt())).intoArray(colErr, n);
        }
        GridErrorKernels.Scalar.addColumns(w, off, scale, colErr, n, cols, lo, hi);
    }
}
