package org.exl2spark.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The vector scale-search kernel sums exactly what its scalar twin sums, lane for lane. */
class GridErrorKernelsTest {

    @Test
    void vectorKernelIsBitIdenticalToTheScalarOne() {
        GridErrorKernels vector = new VectorGridErrorKernels();
        GridErrorKernels scalar = new GridErrorKernels.Scalar();
        SplittableRandom rng = new SplittableRandom(5);
        for (int trial = 0; trial < 200; trial++) {
            int cols = 1 + rng.nextInt(300);
            int rows = 1 + rng.nextInt(8);
            float[] w = new float[rows * cols];
            for (int i = 0; i < w.length; i++) {
                double kind = rng.nextDouble();
                w[i] = kind < 0.05 ? 0f : kind < 0.1 ? (float) (rng.nextGaussian() * 1e4) : (float) rng.nextGaussian();
            }
            float[] scale = new float[cols];
            for (int n = 0; n < cols; n++) {
                double kind = rng.nextDouble();
                // zero scales (underflowed fp16), subnormal-sized ones, and ordinary ones
                scale[n] = kind < 0.03 ? 0f : kind < 0.06 ? 1e-30f : (float) (0.01 + rng.nextDouble());
            }
            int bits = new int[] {2, 3, 4, 5, 6, 8}[rng.nextInt(6)];
            float lo = -(1 << (bits - 1));
            float hi = (1 << bits) - 1 - (1 << (bits - 1));
            double[] a = new double[cols];
            double[] b = new double[cols];
            for (int k = 0; k < rows; k++) {
                vector.addRowError(w, k * cols, scale, a, cols, lo, hi);
                scalar.addRowError(w, k * cols, scale, b, cols, lo, hi);
            }
            for (int n = 0; n < cols; n++) {
                // exact equality; NaN (a zero scale) equals NaN whatever its payload bits
                assertEquals(b[n], a[n], 0.0, "trial " + trial + " column " + n);
            }
        }
    }
}
