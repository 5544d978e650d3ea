package org.exl2spark.backend;

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
