package org.exl2spark.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The CPU backend against the double-precision reference, plus its own limits. */
class ForwardCpuBackendTest extends BackendContract {

    @Override
    protected Backend createBackend() {
        // more workers than cores so the splitting and per-worker scratch paths run even on one core
        return new CpuBackend(3);
    }

    @Test
    void nativeBlasIsLoaded() {
        // CI installs OpenBLAS; without it everything still works, 4-100x slower, which this makes visible
        assertEquals("dev.ludovic.netlib.blas.JNIBLAS", CpuBackend.blasName(), backend.describe());
        assertTrue(backend.describe().contains("OpenBLAS"), backend.describe());
    }

    @Test
    void tensorsBeyondOneJavaArrayFailClearly() {
        IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                () -> backend.zeros(49152, 49152));
        assertTrue(big.getMessage().contains("[49152, 49152]") && big.getMessage().contains("2415919104"),
                big.getMessage());
        IllegalArgumentException overflow = assertThrows(IllegalArgumentException.class,
                () -> backend.zeros(1L << 32, 1L << 32));
        assertTrue(overflow.getMessage().contains("2^63"), overflow.getMessage());
        assertThrows(IllegalArgumentException.class, () -> backend.upload(new float[6], 2, 4));
    }

    /** The Vector API kernels against their scalar twin: the same arithmetic, so the same bits per element. */
    @Test
    void vectorExpKernelsMatchScalarTwin() {
        ExpKernels vector = new VectorExpKernels();
        ExpKernels scalar = new ExpKernels.ScalarExpKernels();
        java.util.Random r = new java.util.Random(5);
        for (int n : new int[] {1, 7, 16, 17, 100, 10_003}) {
            float[] x = new float[n + 5];
            float[] up = new float[n + 5];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (r.nextGaussian() * 40);
                up[i] = (float) r.nextGaussian();
            }
            float[] special = {Float.NEGATIVE_INFINITY, Float.NaN, Float.POSITIVE_INFINITY, -86f, -86.0001f, 88.5f, 0f};
            if (n == 17) {
                System.arraycopy(special, 0, x, 5, special.length);
            }
            float shift = n == 100 ? 0f : 3.5f;
            float[] a = x.clone();
            float[] b = x.clone();
            float sumV = vector.expInPlace(a, 3, 3 + n, shift);
            float sumS = scalar.expInPlace(b, 3, 3 + n, shift);
            assertArrayEquals(b, a, "expInPlace n=" + n);
            assertSameSum(sumS, sumV, "expInPlace n=" + n);
            assertSameSum(scalar.sumExp(x, 3, 3 + n, shift), vector.sumExp(x, 3, 3 + n, shift), "sumExp n=" + n);
            float[] outV = new float[x.length];
            float[] outS = new float[x.length];
            vector.swiGlu(x, up, outV, 3, 3 + n);
            scalar.swiGlu(x, up, outS, 3, 3 + n);
            assertArrayEquals(outS, outV, "swiGlu n=" + n);
            assertEquals(Float.floatToRawIntBits(scalar.max(x, 3, 3 + n)),
                    Float.floatToRawIntBits(vector.max(x, 3, 3 + n)), "max n=" + n);
        }
        // signed zeros (Math.max orders −0 below +0) and −∞ for an empty range
        float[] zeros = new float[40];
        zeros[33] = -0f;
        java.util.Arrays.fill(zeros, 0, 20, -0f);
        for (int[] range : new int[][] {{0, 20}, {0, 40}, {5, 5}, {20, 39}}) {
            assertEquals(Float.floatToRawIntBits(scalar.max(zeros, range[0], range[1])),
                    Float.floatToRawIntBits(vector.max(zeros, range[0], range[1])), "max of zeros " + range[0]);
        }
        assertTrue(backend.describe().contains("vectorised"), backend.describe());
    }

    /** Sums of the same terms in another order: equal up to rounding, or both NaN. */
    private static void assertSameSum(float expected, float actual, String what) {
        if (Float.isNaN(expected)) {
            assertTrue(Float.isNaN(actual), what + ": " + actual);
        } else {
            assertEquals(expected, actual, Math.abs(expected) * 1e-6, what);
        }
    }

    @Test
    void fastExpIsWithinTwoUlp() {
        double worst = 0;
        for (double x = -86; x <= 88; x += 0.000731) {
            float xf = (float) x;
            double e = Math.exp(xf);
            worst = Math.max(worst, Math.abs(FastExp.exp(xf) - e) / e);
        }
        assertTrue(worst < 2.5e-7, "max relative error " + worst);
        assertEquals(0f, FastExp.exp(-87f));
        assertEquals(0f, FastExp.exp(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(FastExp.exp(Float.NaN)));
        assertTrue(Float.isFinite(FastExp.exp(1000f)));
    }
}
