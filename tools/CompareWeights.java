import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;

/**
 * Compares two EXL2 conversions of one model linear by linear, on the dequantized weights in the original column
 * order (the packed tensors are not comparable once act-order permutations differ): each one's quantization error
 * against the original, and their distance from each other, all relative to the original's norm.
 * Usage (docs/BENCHMARKS.md): java -cp "job/target/exl2-spark.jar:job/target/lib/*" tools/CompareWeights.java
 * ORIGINAL A B
 */
public final class CompareWeights {
    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        try (WeightSource original = WeightSources.open(args[0], conf);
                WeightSource a = WeightSources.open(args[1], conf);
                WeightSource b = WeightSources.open(args[2], conf)) {
            List<LinearSpec> linears = new ArrayList<>();
            for (LayerSpec layer : original.architecture().layers()) {
                for (BlockSpec block : layer.blocks()) {
                    linears.addAll(block.linears());
                }
            }
            linears.add(original.architecture().lmHead());
            System.out.printf("%-34s %12s %12s %12s %10s%n", "linear", "err A", "err B", "|A-B|", "differ");
            double worst = 0;
            for (LinearSpec linear : linears) {
                float[] w = original.linearWeight(linear);
                float[] x = a.linearWeight(linear);
                float[] y = b.linearWeight(linear);
                double norm = 0, errA = 0, errB = 0, diff = 0;
                long differ = 0;
                for (int i = 0; i < w.length; i++) {
                    norm += (double) w[i] * w[i];
                    errA += sq(x[i] - w[i]);
                    errB += sq(y[i] - w[i]);
                    diff += sq(x[i] - y[i]);
                    differ += x[i] != y[i] ? 1 : 0;
                }
                double rel = Math.sqrt(diff / norm);
                worst = Math.max(worst, rel);
                System.out.printf("%-34s %12.6f %12.6f %12.6f %10.4f%n", linear.key(), Math.sqrt(errA / norm),
                        Math.sqrt(errB / norm), rel, (double) differ / w.length);
            }
            System.out.printf("largest |A-B| relative to the original: %.6f%n", worst);
        }
    }

    private static double sq(double v) {
        return v * v;
    }
}
