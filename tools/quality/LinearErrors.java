import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;

/**
 * Diagnostic: for every linear, GPTQ's own loss tr(ΔW·H·ΔWᵀ) / tr(W·H·Wᵀ) of each EXL2 model's dequantized weight
 * against the fp16 weight, with one Hessian H for all models: the Gram matrix of the linear's input on the fp16
 * model's forward over ROWS × 2048 tokens of TEXT (read as `exl2 eval --text` reads it). Comparing two conversions on
 * the same H separates how well their quantizers fit from what their calibration data was.
 *
 * usage (from the repository root, after a build):
 *   java -cp "job/target/exl2-spark.jar:job/target/lib/*" tools/quality/LinearErrors.java FP16_MODEL TEXT ROWS EXL2_MODEL...
 */
public class LinearErrors {
    private static final int LENGTH = 2048;
    private static final int ROWS_PER_FORWARD = 4;

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            throw new IllegalArgumentException("usage: LinearErrors FP16_MODEL TEXT ROWS EXL2_MODEL...");
        }
        Configuration conf = new Configuration();
        int rows = Integer.parseInt(args[2]);
        List<String> models = Arrays.asList(args).subList(3, args.length);
        try (CpuBackend backend = new CpuBackend(); WeightSource fp16 = WeightSources.open(args[0], conf)) {
            ModelArchitecture arch = fp16.architecture();
            TokenRows tokens;
            try (Tokenizer tokenizer = Tokenizer.open(args[0], conf)) {
                tokens = EvalTokens.fromFile(args[1], conf, tokenizer, rows, LENGTH);
            }
            Transformer transformer = new Transformer(arch, backend);
            Map<String, Tensor> grams = new LinkedHashMap<>();
            Map<String, String> inputOf = new HashMap<>();
            LinearInputObserver observer = (linears, input) -> {
                String shared = linears.get(0).key();
                linears.forEach(l -> inputOf.put(l.key(), shared));
                long n = linears.get(0).inFeatures();
                backend.accumulateGram(input, grams.computeIfAbsent(shared, k -> backend.zeros(n, n)));
            };
            for (int r0 = 0; r0 < rows; r0 += ROWS_PER_FORWARD) {
                int[][] ids = new int[Math.min(ROWS_PER_FORWARD, rows - r0)][];
                for (int r = 0; r < ids.length; r++) {
                    ids[r] = tokens.row(r0 + r);
                }
                try (Tensor hidden = transformer.embed(fp16, ids)) {
                    for (int layer = 0; layer < arch.numLayers(); layer++) {
                        try (Transformer.LayerWeights w = transformer.loadLayer(fp16, layer)) {
                            transformer.block(hidden, w.attention(), observer);
                            transformer.block(hidden, w.mlp(), observer);
                        }
                    }
                }
            }
            List<WeightSource> quantized = new ArrayList<>();
            for (String m : models) {
                quantized.add(WeightSources.open(m, conf));
            }
            System.out.printf("relative GPTQ loss on %d × %d tokens of %s%n%-36s %s%n", rows, LENGTH, args[1], "linear",
                    String.join("  ", models));
            double[] sums = new double[models.size()];
            for (LayerSpec layer : arch.layers()) {
                for (BlockSpec block : layer.blocks()) {
                    for (LinearSpec l : block.linears()) {
                        float[] h = backend.download(grams.get(inputOf.get(l.key())));
                        float[] w = fp16.linearWeight(l);
                        double reference = loss(w, null, h, (int) l.inFeatures());
                        System.out.printf("%-36s", l.key());
                        for (int i = 0; i < models.size(); i++) {
                            double e = loss(w, quantized.get(i).linearWeight(l), h, (int) l.inFeatures()) / reference;
                            sums[i] += e;
                            System.out.printf(" %.6e", e);
                        }
                        System.out.println();
                    }
                }
            }
            System.out.printf("%-36s", "sum");
            for (double s : sums) {
                System.out.printf(" %.6e", s);
            }
            System.out.println();
            for (WeightSource q : quantized) {
                q.close();
            }
        }
    }

    /** Σ over output rows of d·H·dᵀ, d = w − q (w itself when q is null); w and q are [out × in]. */
    static double loss(float[] w, float[] q, float[] h, int in) {
        int out = w.length / in;
        double[] d = new double[in];
        double sum = 0;
        for (int o = 0; o < out; o++) {
            for (int k = 0; k < in; k++) {
                d[k] = w[o * in + k] - (q == null ? 0 : q[o * in + k]);
            }
            for (int i = 0; i < in; i++) {
                double hd = 0;
                for (int j = 0; j < in; j++) {
                    hd += h[i * in + j] * d[j];
                }
                sum += d[i] * hd;
            }
        }
        return sum;
    }
}
