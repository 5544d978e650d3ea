package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The branch-free rounding in {@link Half#fromFloat} against the plain compare-the-dropped-bits rounding. */
class HalfFromFloatTest {

    /** Round half to even by looking at the 13 dropped mantissa bits: slow, obviously right. */
    private static short reference(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int abs = x & 0x7fffffff;
        if (abs >= 0x7f800000) {
            return (short) (sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 : 0));
        }
        if (abs >= 0x477ff000) {
            return (short) (sign | 0x7c00);
        }
        if (abs < 0x38800000) {
            return (short) (sign | (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f));
        }
        int half = (((abs >>> 23) - 112) << 10) | ((abs & 0x7fffff) >>> 13);
        int rest = abs & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) {
            half++;
        }
        return (short) (sign | half);
    }

    @Test
    void matchesTheReferenceOnASpreadOfAllBitPatterns() {
        // every 127th of the 2^32 patterns (an odd stride, so all low-bit combinations occur), ~34M values
        for (long bits = 0; bits <= 0xffffffffL; bits += 127) {
            float f = Float.intBitsToFloat((int) bits);
            assertEquals(reference(f), Half.fromFloat(f), () -> Float.toString(f));
        }
    }

    @Test
    void tiesGoToEvenAndCarriesReachTheExponent() {
        assertEquals((short) 0x3c00, Half.fromFloat(1.0f + 0x1p-11f), "tie below an even mantissa stays");
        assertEquals((short) 0x3c02, Half.fromFloat(1.0f + 3 * 0x1p-11f), "tie above an odd mantissa goes up");
        assertEquals((short) 0x4000, Half.fromFloat(2.0f - 0x1p-12f), "mantissa carry bumps the exponent");
        assertEquals((short) 0x7bff, Half.fromFloat(65504f));
        assertEquals((short) 0x7c00, Half.fromFloat(65520f), "rounds to infinity");
        assertEquals((short) 0x0400, Half.fromFloat(0x1p-14f), "smallest normal");
        assertEquals((short) 0x8001, Half.fromFloat(-0x1p-24f), "smallest subnormal");
    }
}
