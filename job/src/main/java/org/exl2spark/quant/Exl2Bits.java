package org.exl2spark.quant;

/** The bit widths EXL2 packs. */
public final class Exl2Bits {
    private Exl2Bits() {
    }

    public static boolean isSupported(int bits) {
        return bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
    }
}
