package org.exl2spark.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.ReferenceOps;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.model.ForwardingWeightSource;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ForwardPerplexityTest {
    private static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend();
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static TokenRows heldout(int rows, int length) throws Exception {
        try (Tokenizer tok = Tokenizer.open(SharedData.tinyModel().toString(), new Configuration())) {
            return EvalTokens.fromFile(SharedData.heldoutText().toString(), new Configuration(), tok, rows, length);
        }
    }

    private static WeightSource tinyModel() throws IOException {
        return WeightSources.open(SharedData.tinyModel().toString(), new Configuration());
    }

    /** ExLlamaV2 0.2.7's own test_inference figure for the fp16 tiny model on 40 × 2048 held-out tokens. */
    @Test
    void fp16TinyModelMatchesExllamaV2Perplexity() throws Exception {
        TokenRows tokens = heldout(40, 2048);
        try (WeightSource w = tinyModel()) {
            PerplexityEval.Result r = new PerplexityEval(backend, System.out::println).evaluate(w, tokens);
            System.out.printf("perplexity %.5f in %.1f s%n", r.perplexity(), r.seconds());
            assertEquals(40L * 2047, r.predictedTokens());
            assertEquals(42.734, r.perplexity(), 0.02);
            assertTrue(Double.isNaN(r.meanKlDivergence()) && !r.compared());
        }
    }

    /** The tiny model with noise added to one layer's down_proj: a model that predicts a bit differently. */
    private static final class Perturbed extends ForwardingWeightSource {
        Perturbed(WeightSource base) {
            super(base);
        }

        @Override
        public float[] linearWeight(LinearSpec linear) throws IOException {
            float[] w = base.linearWeight(linear);
            if (linear.key().equals("model.layers.3.mlp.down_proj")) {
                Random r = new Random(1);
                for (int i = 0; i < w.length; i++) {
                    w[i] += (float) (r.nextGaussian() * 0.02);
                }
            }
            return w;
        }

        /** This one owns its base: the test opens it for it alone. */
        @Override
        public void close() throws IOException {
            base.close();
        }
    }

    /** Perplexity, KL and top-1 agreement recomputed in double from each model's logits, position by position. */
    @Test
    void comparisonMatchesDirectComputation() throws Exception {
        TokenRows tokens = heldout(3, 100);
        try (WeightSource reference = tinyModel(); WeightSource model = new Perturbed(tinyModel())) {
            PerplexityEval.Result r = new PerplexityEval(backend, s -> { }).evaluate(model, reference, tokens);
            int vocab = reference.architecture().vocabSize();
            double logProbSum = 0;
            double klSum = 0;
            long agree = 0;
            long n = 0;
            for (int row = 0; row < tokens.rows(); row++) {
                int[][] ids = {tokens.row(row)};
                double[] lp = logSoftmax(model, ids, vocab);
                double[] refLp = logSoftmax(reference, ids, vocab);
                for (int p = 0; p < tokens.length() - 1; p++) {
                    int base = p * vocab;
                    logProbSum += lp[base + ids[0][p + 1]];
                    int best = 0;
                    int refBest = 0;
                    for (int v = 0; v < vocab; v++) {
                        klSum += Math.exp(refLp[base + v]) * (refLp[base + v] - lp[base + v]);
                        best = lp[base + v] > lp[base + best] ? v : best;
                        refBest = refLp[base + v] > refLp[base + refBest] ? v : refBest;
                    }
                    agree += best == refBest ? 1 : 0;
                    n++;
                }
            }
            assertEquals(n, r.predictedTokens());
            assertEquals(Math.exp(-logProbSum / n), r.perplexity(), 1e-4 * r.perplexity());
            assertEquals(klSum / n, r.meanKlDivergence(), 1e-3 * r.meanKlDivergence());
            assertTrue(r.meanKlDivergence() > 1e-4, "the perturbation should move the distributions");
            assertEquals((double) agree / n, r.top1Agreement(), 1.5 / n);
            assertTrue(r.top1Agreement() < 1, "some predictions should change");
        }
    }

    @Test
    void modelAgainstItselfHasZeroDivergence() throws Exception {
        TokenRows tokens = heldout(2, 64);
        try (WeightSource a = tinyModel(); WeightSource b = tinyModel()) {
            PerplexityEval.Result r = new PerplexityEval(backend, s -> { }).evaluate(a, b, tokens);
            assertEquals(0, r.meanKlDivergence(), 1e-6);
            assertEquals(1.0, r.top1Agreement());
        }
    }

    private static double[] logSoftmax(WeightSource w, int[][] ids, int vocab) throws IOException {
        Transformer t = new Transformer(w.architecture(), backend);
        try (Tensor logits = t.forward(w, ids)) {
            return ReferenceOps.logSoftmax(backend.download(logits), ids[0].length, vocab);
        }
    }
}
