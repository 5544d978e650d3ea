package org.exl2spark.kernels;

import java.util.Locale;

/** Human-readable byte counts for messages: the exact count and a binary-prefixed figure. */
public final class Bytes {
    private Bytes() {
    }

    public static String format(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = 0;
        while (Math.abs(v) >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return u == 0 ? bytes + " B" : String.format(Locale.ROOT, "%d bytes (%.2f %s)", bytes, v, units[u]);
    }
}
