package org.exl2spark.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** Our forward and eval of ExLlamaV2's own 4.0 bpw model against ExLlamaV2's figures on it. */
class GoldenExl2ForwardTest {

    /** ExLlamaV2's logits of the quantized model on probe.input_ids: it computes in fp16, we in fp32. */
    @Test
    void forwardAgreesWithExLlamaV2sLogits() throws Exception {
        Configuration conf = new Configuration();
        int[] ids;
        float[] expected;
        try (SafetensorsFile ref = SafetensorsFile.open(
                SharedData.goldenExl2().resolve("dequant-reference.safetensors").toString(), conf)) {
            var t = ref.tensor("probe.input_ids");
            ids = new int[(int) t.numElements()];
            ref.readTensor(t).asIntBuffer().get(ids);
            expected = ref.readFloats("probe.logits");
        }
        float[] logits;
        try (CpuBackend backend = new CpuBackend();
                WeightSource golden = WeightSources.open(SharedData.goldenExl2().toString(), conf)) {
            Transformer t = new Transformer(golden.architecture(), backend);
            try (Tensor out = t.forward(golden, new int[][] {ids})) {
                logits = backend.download(out);
            }
        }
        assertEquals(expected.length, logits.length);
        int vocab = 4096;
        int agree = 0;
        double maxDiff = 0;
        for (int p = 0; p < ids.length; p++) {
            int a = argmax(logits, p * vocab, vocab);
            int b = argmax(expected, p * vocab, vocab);
            agree += a == b ? 1 : 0;
            for (int v = 0; v < vocab; v++) {
                maxDiff = Math.max(maxDiff, Math.abs(logits[p * vocab + v] - expected[p * vocab + v]));
            }
        }
        double agreement = agree / (double) ids.length;
        System.out.printf("probe: top-1 agreement %.4f, max |diff| %.4f%n", agreement, maxDiff);
        assertTrue(agreement >= 0.99, "top-1 agreement " + agreement);
        assertTrue(maxDiff <= 0.1, "max abs logit difference " + maxDiff);
    }

    /** ExLlamaV2 0.2.7's test_inference figure for its 4.0 bpw tiny model on 40 × 2048 held-out tokens. */
    @Test
    void goldenModelPerplexityMatchesExLlamaV2s() throws Exception {
        Configuration conf = new Configuration();
        TokenRows tokens;
        try (Tokenizer tok = Tokenizer.open(SharedData.goldenExl2().toString(), conf)) {
            tokens = EvalTokens.fromFile(SharedData.heldoutText().toString(), conf, tok, 40, 2048);
        }
        try (CpuBackend backend = new CpuBackend();
                WeightSource golden = WeightSources.open(SharedData.goldenExl2().toString(), conf)) {
            PerplexityEval.Result r = new PerplexityEval(backend, s -> { }).evaluate(golden, tokens);
            System.out.printf("golden 4.0 bpw perplexity %.4f%n", r.perplexity());
            assertEquals(43.583, r.perplexity(), 0.02);
        }
    }

    private static int argmax(float[] v, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (v[off + i] > v[off + best]) {
                best = i;
            }
        }
        return best;
    }
}
