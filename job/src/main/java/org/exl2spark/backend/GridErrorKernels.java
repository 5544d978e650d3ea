package org.exl2spark.backend;

/**
 * The inner loop of the scale search (EXL2-SPEC F.5), run 97 times over every weight of every group of every
 * measured setting: for one row of a group and each column n, adds {@code |clamp(rint(x/s), lo, hi)·s − x|^3.5}
 * to {@code colErr[n]}. Two implementations give bit-identical sums: {@link VectorGridErrorKernels} on the JDK's
 * Vector API when the JVM runs with {@code --add-modules jdk.incubator.vector} (conf/jvm-flags.txt), and the scalar
 * loop here otherwise (also the reference the vector one is tested against).
 */
interface GridErrorKernels {

    void addRowError(float[] w, int off, float[] scale, double[] colErr, int cols, float lo, float hi);


    static GridErrorKernels best() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent() ? new VectorGridErrorKernels()
                : new Scalar();
    }

    final class Scalar implements GridErrorKernels {
        @Override
        public void addRowError(float[] w, int off, float[] scale, double[] colErr, int cols, float lo, float hi) {
            addColumns(w, off, scale, colErr, 0, cols, lo, hi);
        }

        /** Columns [from, to) of one row: the whole row here, the vector kernel's leftover columns there. */
        static void addColumns(float[] w, int off, float[] scale, double[] colErr, int from, int to, float lo,
                float hi) {
            for (int n = from; n < to; n++) {
                float s = scale[n];
                float x = w[off + n];
                float q = (float) Math.rint(x / s);
                q = Math.min(Math.max(q, lo), hi);
                float e = Math.abs(q * s - x);
                colErr[n] += e * e * e * Math.sqrt(e);
            }
        }
    }
}
