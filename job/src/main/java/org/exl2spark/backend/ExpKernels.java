package org.exl2spark.backend;

/**
 * The inner loops of softmax (shift and exponentials) and SwiGLU, which run billions of times per evaluation. Two
 * implementations compute the same function ({@link FastExp}'s polynomial): {@link VectorExpKernels} on the JDK's
 * Vector API (about 10× faster) when the JVM runs with {@code --add-modules jdk.incubator.vector}
 * (conf/jvm-flags.txt), and the scalar loops here otherwise.
 */
interface ExpKernels {

    /** {@code a[i] = e^(a[i] − shift)} over [from, to); returns the sum of the new values. */
    float expInPlace(float[] a, int from, int to, float shift);

    /** Σ e^(a[i] − shift) over [from, to), leaving a unchanged. */
    float sumExp(float[] a, int from, int to, float shift);

    /** {@code out[i] = gate[i] / (1 + e^−gate[i]) · up[i]} over [from, to). */
    void swiGlu(float[] gate, float[] up, float[] out, int from, int to);

    /**
     * The largest of a[from, to) as {@link Math#max} folds it (NaN if any is NaN; −∞ for an empty range): softmax's
     * shift. Math.max is commutative and associative, so any order of folding gives these bits.
     */
    float max(float[] a, int from, int to);

    /** For logs: which implementation runs. */
    String describe();

    /** The vector kernels when the module is present, else the scalar ones. */
    static ExpKernels best() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent() ? new VectorExpKernels()
                : new ScalarExpKernels();
    }

    /** The plain loops, also the reference the vector kernels are tested against. */
    final class ScalarExpKernels implements ExpKernels {
        @Override
        public String describe() {
            return "scalar exp";
        }

        @Override
        public float expInPlace(float[] a, int from, int to, float shift) {
            // two partial sums: one running sum would serialise the loop on its addition latency
            float s0 = 0;
            float s1 = 0;
            int i = from;
            for (; i + 1 < to; i += 2) {
                a[i] = FastExp.exp(a[i] - shift);
                a[i + 1] = FastExp.exp(a[i + 1] - shift);
                s0 += a[i];
                s1 += a[i + 1];
            }
            if (i < to) {
                a[i] = FastExp.exp(a[i] - shift);
                s0 += a[i];
            }
            return s0 + s1;
        }

        @Override
        public float sumExp(float[] a, int from, int to, float shift) {
            float s0 = 0;
            float s1 = 0;
            int i = from;
            for (; i + 1 < to; i += 2) {
                s0 += FastExp.exp(a[i] - shift);
                s1 += FastExp.exp(a[i + 1] - shift);
            }
            if (i < to) {
                s0 += FastExp.exp(a[i] - shift);
            }
            return s0 + s1;
        }

        @Override
        public void swiGlu(float[] gate, float[] up, float[] out, int from, int to) {
            for (int i = from; i < to; i++) {
                float g = gate[i];
                out[i] = g / (1f + FastExp.exp(-g)) * up[i];
            }
        }

        @Override
        public float max(float[] a, int from, int to) {
            float m = Float.NEGATIVE_INFINITY;
            for (int i = from; i < to; i++) {
                m = Math.max(m, a[i]);
            }
            return m;
        }
    }
}
