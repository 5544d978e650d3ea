package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** fp16 and bf16 conversions against definitions and against round-to-nearest-even done in exact arithmetic. */
class HalfTest {
    private static final int HALF_INF = 0x7c00;
    private static final int BF16_INF = 0x7f80;

    // ---- fp16 ------------------------------------------------------------------------------------------------

    @Test
    void everyHalfDecodesToItsValueAndEncodesBack() {
        for (int h = 0; h < 1 << 16; h++) {
            float f = Half.toFloat((short) h);
            int sign = h >>> 15;
            int exp = (h >>> 10) & 0x1f;
            int mant = h & 0x3ff;
            String what = String.format("half 0x%04x", h);
            if (exp == 0x1f) {
                if (mant == 0) {
                    assertEquals(sign == 0 ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY, f, what);
                } else {
                    assertTrue(Float.isNaN(f), what);
                    assertHalfNaN(Half.fromFloat(f), sign, what);
                }
                if (mant == 0) {
                    assertEquals((short) h, Half.fromFloat(f), what);
                }
                continue;
            }
            // the definition: subnormals are mant * 2^-24, normals (1024 + mant) * 2^(exp - 25)
            double magnitude = exp == 0 ? Math.scalb((double) mant, -24) : Math.scalb((double) (1024 + mant), exp - 25);
            double value = sign == 0 ? magnitude : -magnitude;
            assertEquals(Double.doubleToRawLongBits(value), Double.doubleToRawLongBits(f), what); // keeps -0
            assertEquals((short) h, Half.fromFloat(f), what);
        }
    }

    @Test
    void floatToHalfRoundsToNearestEvenLikeExactArithmetic() {
        SplittableRandom random = new SplittableRandom(20261125);
        int checked = 0;
        // random floats whose exponents cover zero, subnormal, normal and overflowing halves
        for (int i = 0; i < 6000; i++) {
            int biasedExp = 127 - 30 + random.nextInt(48); // 2^-30 .. 2^17
            int bits = (random.nextInt(2) << 31) | (biasedExp << 23) | random.nextInt(1 << 23);
            checkHalf(Float.intBitsToFloat(bits));
            checked++;
        }
        // exact ties between neighbouring halves (representable in float): these decide round-half-even
        for (int i = 0; i < 2000; i++) {
            int h = random.nextInt(0x7bff); // a finite half below the largest
            BigDecimal mid = halfValue(h).add(halfValue(h + 1)).divide(BigDecimal.valueOf(2));
            float tie = mid.floatValue();
            assertEquals(0, new BigDecimal(tie).compareTo(mid), "tie must be exact");
            checkHalf(tie);
            checkHalf(-tie);
            checkHalf(Math.nextUp(tie));
            checkHalf(Math.nextDown(tie));
            checked += 4;
        }
        assertTrue(checked > 10_000);
    }

    @Test
    void subnormalHalves() {
        assertEquals((short) 0x0001, Half.fromFloat(0x1p-24f)); // smallest subnormal
        assertEquals((short) 0x0000, Half.fromFloat(0x1p-25f)); // tie between 0 and 2^-24: to even (0)
        assertEquals((short) 0x0001, Half.fromFloat(Math.nextUp(0x1p-25f)));
        assertEquals((short) 0x0002, Half.fromFloat(3 * 0x1p-25f)); // tie between 1 and 2 ulps: to even (2)
        assertEquals((short) 0x0002, Half.fromFloat(5 * 0x1p-25f)); // tie between 2 and 3: to even (2)
        assertEquals((short) 0x03ff, Half.fromFloat(1023 * 0x1p-24f)); // largest subnormal
        assertEquals((short) 0x0400, Half.fromFloat(1023.5f * 0x1p-24f)); // rounds up into the smallest normal
        assertEquals((short) 0x0400, Half.fromFloat(0x1p-14f));
        assertEquals((short) 0x8001, Half.fromFloat(-0x1p-24f));
        assertEquals((short) 0x8000, Half.fromFloat(-Float.MIN_VALUE)); // underflow keeps the sign
        assertEquals((short) 0x0000, Half.fromFloat(Float.MIN_NORMAL));
        assertEquals(0x1p-24f, Half.toFloat((short) 0x0001));
        assertEquals(-1023 * 0x1p-24f, Half.toFloat((short) 0x83ff));
    }

    @Test
    void overflowGoesToInfinity() {
        assertEquals((short) 0x7bff, Half.fromFloat(65504f)); // largest half
        assertEquals((short) 0x7bff, Half.fromFloat(Math.nextDown(65520f)));
        assertEquals((short) HALF_INF, Half.fromFloat(65520f)); // halfway to 2^16 rounds to even: infinity
        assertEquals((short) HALF_INF, Half.fromFloat(1e10f));
        assertEquals((short) HALF_INF, Half.fromFloat(Float.MAX_VALUE));
        assertEquals((short) HALF_INF, Half.fromFloat(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xfc00, Half.fromFloat(-65520f));
        assertEquals((short) 0xfc00, Half.fromFloat(Float.NEGATIVE_INFINITY));
    }

    @Test
    void nanStaysNan() {
        assertHalfNaN(Half.fromFloat(Float.NaN), 0, "NaN");
        assertHalfNaN(Half.fromFloat(Float.intBitsToFloat(0xffc00000)), 1, "-NaN");
        // payload bits that fp16 cannot hold (a signalling NaN with only low bits) must not become infinity
        assertHalfNaN(Half.fromFloat(Float.intBitsToFloat(0x7f800001)), 0, "sNaN low payload");
        assertHalfNaN(Half.fromFloat(Float.intBitsToFloat(0xff800001)), 1, "-sNaN low payload");
        assertTrue(Float.isNaN(Half.toFloat((short) 0x7e00)));
        assertTrue(Float.isNaN(Half.toFloat((short) 0xfc01)));
    }

    private static void assertHalfNaN(short h, int sign, String what) {
        assertEquals(0x7c00, h & 0x7c00, what + ": exponent all ones");
        assertTrue((h & 0x3ff) != 0, what + ": mantissa not zero");
        assertEquals(sign, (h & 0xffff) >>> 15, what + ": sign");
    }

    /** Round-to-nearest-even by exact comparison with the two neighbouring halves (2^16 standing for infinity). */
    private static void checkHalf(float f) {
        BigDecimal a = new BigDecimal(Math.abs((double) f));
        int lo = 0;
        int hi = HALF_INF; // invariant: value(lo) <= a < value(hi), with value(HALF_INF) = 2^16
        if (a.compareTo(halfValue(HALF_INF)) >= 0) {
            lo = HALF_INF;
        } else {
            while (hi - lo > 1) {
                int m = (lo + hi) >>> 1;
                if (halfValue(m).compareTo(a) <= 0) {
                    lo = m;
                } else {
                    hi = m;
                }
            }
        }
        int want;
        if (lo == HALF_INF) {
            want = HALF_INF;
        } else {
            int c = a.subtract(halfValue(lo)).compareTo(halfValue(hi).subtract(a));
            want = c < 0 ? lo : c > 0 ? hi : (lo & 1) == 0 ? lo : hi;
        }
        int sign = Float.floatToRawIntBits(f) < 0 ? 0x8000 : 0;
        assertEquals(String.format("0x%04x", sign | want), String.format("0x%04x", Half.fromFloat(f) & 0xffff),
                "fromFloat(" + f + " = " + Float.toHexString(f) + ")");
    }

    private static BigDecimal halfValue(int h) {
        if (h == HALF_INF) {
            return BigDecimal.valueOf(65536);
        }
        return new BigDecimal((double) Half.toFloat((short) h));
    }

    // ---- bf16 ------------------------------------------------------------------------------------------------

    @Test
    void everyBf16DecodesToItsValueAndEncodesBack() {
        for (int b = 0; b < 1 << 16; b++) {
            float f = Half.bf16ToFloat((short) b);
            assertEquals(b << 16, Float.floatToRawIntBits(f), String.format("bf16 0x%04x", b));
            if (Float.isNaN(f)) {
                short back = Half.bf16FromFloat(f);
                assertEquals(BF16_INF, back & 0x7f80);
                assertTrue((back & 0x7f) != 0);
                assertEquals(b >>> 15, (back & 0xffff) >>> 15);
            } else {
                assertEquals((short) b, Half.bf16FromFloat(f), String.format("bf16 0x%04x", b));
            }
        }
    }

    @Test
    void floatToBf16RoundsToNearestEvenLikeExactArithmetic() {
        SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < 6000; i++) {
            int bits = random.nextInt();
            if ((bits & 0x7f800000) == 0x7f800000) {
                continue; // inf/NaN: covered above
            }
            checkBf16(Float.intBitsToFloat(bits));
            // the exact tie with the next bf16 and its neighbours
            float tie = Float.intBitsToFloat((bits & 0xffff0000) | 0x8000);
            checkBf16(tie);
            checkBf16(Math.nextUp(tie));
            checkBf16(Math.nextDown(tie));
        }
        assertEquals((short) BF16_INF, Half.bf16FromFloat(Float.MAX_VALUE)); // halfway above the largest bf16
        assertEquals((short) 0xff80, Half.bf16FromFloat(-Float.MAX_VALUE));
        assertEquals((short) 0x7f7f, Half.bf16FromFloat(Float.intBitsToFloat(0x7f7f7fff)));
        assertEquals((short) 0x0000, Half.bf16FromFloat(Float.MIN_VALUE));
        assertEquals((short) 0x8000, Half.bf16FromFloat(-0.0f));
    }

    private static void checkBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int magnitude = bits & 0x7fffffff;
        int lo = magnitude >>> 16; // truncation: the bf16 at or below |f|
        int hi = lo + 1;
        BigDecimal a = new BigDecimal(Math.abs((double) f));
        int c = a.subtract(bf16Value(lo)).compareTo(bf16Value(hi).subtract(a));
        int want = c < 0 ? lo : c > 0 ? hi : (lo & 1) == 0 ? lo : hi;
        int sign = bits < 0 ? 0x8000 : 0;
        assertEquals(String.format("0x%04x", sign | want), String.format("0x%04x", Half.bf16FromFloat(f) & 0xffff),
                "bf16FromFloat(" + Float.toHexString(f) + ")");
    }

    private static BigDecimal bf16Value(int b) {
        if (b == BF16_INF) {
            return new BigDecimal(Math.scalb(1.0, 128)); // rounding treats infinity as the next power of two
        }
        return new BigDecimal((double) Float.intBitsToFloat(b << 16));
    }
}
