package org.exl2spark.plan;

import java.util.Locale;

/** Memory sizes as Spark writes them: "24g", "512m", "24000000000" (binary k, m, g, t; an optional trailing b). */
public final class ByteSize {
    private ByteSize() {
    }

    /** The size in bytes; {@code what} names the option or setting in the error. */
    public static long parse(String text, String what) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        if (t.endsWith("b")) {
            t = t.substring(0, t.length() - 1);
        }
        long unit = 1;
        int shift = t.isEmpty() ? -1 : "kmgt".indexOf(t.charAt(t.length() - 1));
        if (shift >= 0) {
            unit = 1L << (10 * (shift + 1));
            t = t.substring(0, t.length() - 1);
        }
        try {
            double v = Double.parseDouble(t);
            if (!(v > 0) || v * unit > Long.MAX_VALUE) {
                throw new NumberFormatException();
            }
            return (long) (v * unit);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(what + ": '" + text + "' is not a positive size (e.g. 24g,"
                    + " 24000000000)");
        }
    }
}
