package org.exl2spark.plan;

import java.util.Locale;

/**
 * One task's plan: what it is, its module and shape, the predicted peak device bytes, how it is split (calibration
 * rows per forward chunk; dequantized weights a measurement keeps at once) and the estimated device time.
 *
 * @param rowChunk        calibration rows per forward chunk
 * @param dequantSlots    measurement only: dequantized projection weights held at once (0 for other tasks)
 * @param residentStates  measurement only: the input and reference states stay on the device while candidates are
 *                        scored, instead of going up once per scoring pass
 * @param gptqRuns        GPTQ runs (a projection quantized with one setting) in the task
 */
public record TaskPlan(Kind kind, String module, String shape, long peakBytes, int rowChunk, int dequantSlots,
        boolean residentStates, int gptqRuns, double seconds) {

    public enum Kind {
        MEASURE_ATTENTION("measure"), MEASURE_MLP("measure"), QUANTIZE_GROUP("quantize"), FORWARD("forward");

        private final String verb;

        Kind(String verb) {
            this.verb = verb;
        }

        public String verb() {
            return verb;
        }
    }

    /** "12.3 GiB (13.2 GB)". */
    public static String bytes(long b) {
        return String.format(Locale.ROOT, "%.2f GiB (%.2f GB)", b / (double) (1L << 30), b / 1e9);
    }

    public String render() {
        String split = "rows/chunk " + rowChunk + (dequantSlots > 0 ? ", dequantized weights held " + dequantSlots : "")
                + (residentStates ? ", states kept on the device" : "")
                + (gptqRuns > 0 ? ", GPTQ runs " + gptqRuns : "");
        return String.format(Locale.ROOT, "%-8s %-32s %-28s peak %8.2f GiB  est %8.2f s  (%s)", kind.verb(), module,
                shape, peakBytes / (double) (1L << 30), seconds, split);
    }
}
