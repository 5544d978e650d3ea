package org.exl2spark.eval;

import java.lang.management.ManagementFactory;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/**
 * Figures for docs/BENCHMARKS.md ("Eval and forward (CPU)"), not a test: the name keeps it out of the default test
 * run. {@code mvn -B -q -o test -Dtest=EvalForwardBenchmark -Dsurefire.failIfNoSpecifiedTests=false}
 */
class EvalForwardBenchmark {
    private static final int ROWS = 40;
    private static final int LENGTH = 2048;

    private static double processCpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime() / 1e9;
    }

    @Test
    void tinyModelEvalAndForward() throws Exception {
        Configuration conf = new Configuration();
        String model = SharedData.tinyModel().toString();
        try (CpuBackend backend = new CpuBackend(); WeightSource w = WeightSources.open(model, conf)) {
            System.out.println("backend: " + backend.describe());
            long t0 = System.nanoTime();
            TokenRows tokens;
            try (Tokenizer tok = Tokenizer.open(model, conf)) {
                tokens = EvalTokens.fromFile(SharedData.heldoutText().toString(), conf, tok, ROWS, LENGTH);
            }
            double tokenizeSeconds = (System.nanoTime() - t0) / 1e9;

            double cpu0 = processCpuSeconds();
            PerplexityEval.Result r = new PerplexityEval(backend, s -> { }).evaluate(w, tokens);
            double evalCpu = processCpuSeconds() - cpu0;
            Transformer t = new Transformer(w.architecture(), backend);
            double flops = (double) t.forwardFlops(LENGTH) * ROWS;
            System.out.printf(Locale.ROOT, "eval %d x %d: perplexity %.4f, %.1f s wall (%.1f s process CPU), "
                    + "tokenize %.2f s; forward FLOPs %.3e -> %.0f GFLOP/s over the whole eval%n", ROWS, LENGTH,
                    r.perplexity(), r.seconds(), evalCpu, tokenizeSeconds, flops, flops / r.seconds() / 1e9);

            // the forward alone: all layers + lm_head on 2-row batches, weights already in memory
            int batch = 2;
            int[][] ids = tokens.rows(0, batch);
            Transformer.LayerWeights[] layers = new Transformer.LayerWeights[w.architecture().numLayers()];
            for (int l = 0; l < layers.length; l++) {
                layers[l] = t.loadLayer(w, l);
            }
            try (Transformer.OutputWeights out = t.loadOutput(w)) {
                for (int rep = 0; rep < 4; rep++) {
                    double c0 = processCpuSeconds();
                    long s0 = System.nanoTime();
                    try (Tensor h = t.embed(w, ids)) {
                        for (Transformer.LayerWeights lw : layers) {
                            t.layer(h, lw);
                        }
                        t.logits(h, out).close();
                    }
                    double s = (System.nanoTime() - s0) / 1e9;
                    System.out.printf(Locale.ROOT, "forward %d x %d (run %d): %.3f s wall (%.3f s CPU), %.0f GFLOP/s%n",
                            batch, LENGTH, rep, s, processCpuSeconds() - c0,
                            (double) t.forwardFlops(LENGTH) * batch / s / 1e9);
                }
            }
            for (Transformer.LayerWeights lw : layers) {
                lw.close();
            }
        }
    }
}
