package org.exl2spark.eval;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;

/**
 * Perplexity over rows of tokens as ExLlamaV2's test_inference measures it (EXL2-SPEC.md H.3): each row is one
 * independent sequence; the logits at positions 0…L−2 predict tokens 1…L−1; perplexity is
 * exp(−mean log-probability) over all predicted tokens of all rows (a token-level mean, not a mean of per-row
 * perplexities).
 *
 * <p>Optionally against a reference model (e.g. the fp16 original of a quantized model): the mean over the same
 * positions of KL(P_reference ‖ P_model) of the next-token distributions, and how often both models' most likely
 * next token agree.
 *
 * <p>The model runs layer-major, like the conversion passes: the hidden states of all rows are kept (rows × length ×
 * hidden floats per model), and one layer's weights at a time are loaded and applied to every row, so a model's
 * weights are never all in memory at once. The logits of a batch of rows (at least one row: length × vocab floats) are
 * computed, turned into log-probabilities and scored before the next batch.
 */
public final class PerplexityEval {
    /** Elements per activation tensor a batch of rows may use (256 MiB of fp32). */
    static final long BATCH_ELEMENTS = 1L << 26;
    /** Elements of logits per batch: they are also copied to the host. */
    static final long LOGIT_BATCH_ELEMENTS = 1L << 24;

    private final Backend backend;
    private final Consumer<String> progress;

    public PerplexityEval(Backend backend, Consumer<String> progress) {
        this.backend = backend;
        this.progress = progress;
    }

    /**
     * @param meanKlDivergence KL(P_reference ‖ P_model) in nats averaged over predicted positions; NaN without a
     *                         reference
     * @param top1Agreement    fraction of predicted positions where both argmax tokens agree; NaN without a reference
     */
    public record Result(double perplexity, double meanLogProb, long predictedTokens, double meanKlDivergence,
            double top1Agreement, double seconds) {

        public boolean compared() {
            return !Double.isNaN(meanKlDivergence);
        }
    }

    public Result evaluate(WeightSource model, TokenRows tokens) throws IOException {
        return evaluate(model, null, tokens);
    }

    /** @param reference a model to compare against, or null */
    public Result evaluate(WeightSource model, WeightSource reference, TokenRows tokens) throws IOException {
        long start = System.nanoTime();
        if (tokens.length() < 2) {
            throw new IllegalArgumentException("rows of " + tokens.length() + " token(s) predict nothing; need at least 2");
        }
        ModelArchitecture arch = model.architecture();
        if (reference != null && reference.architecture().vocabSize() != arch.vocabSize()) {
            throw new IllegalArgumentException("the reference model's vocabulary (" + reference.architecture().vocabSize()
                    + ") differs from the model's (" + arch.vocabSize() + ")");
        }
        Transformer transformer = new Transformer(arch, backend);
        Transformer referenceTransformer = reference == null ? null : new Transformer(reference.architecture(), backend);
        int batch = batchRows(arch, tokens.length());
        if (reference != null) {
            batch = Math.min(batch, batchRows(reference.architecture(), tokens.length()));
        }
        progress.accept(String.format(Locale.ROOT, "evaluating %d rows × %d tokens on %s, %d rows per batch",
                tokens.rows(), tokens.length(), backend.describe(), batch));
        List<Tensor> states = new ArrayList<>();
        List<Tensor> referenceStates = new ArrayList<>();
        try {
            states.addAll(finalHiddenStates(transformer, model, tokens, batch, "model", start));
            if (reference != null) {
                referenceStates.addAll(finalHiddenStates(referenceTransformer, reference, tokens, batch, "reference",
                        start));
            }
            return score(transformer, model, referenceTransformer, reference, states, referenceStates, tokens, batch,
                    start);
        } finally {
            states.forEach(Tensor::close);
            referenceStates.forEach(Tensor::close);
        }
    }

    /**
     * Rows per batch: no activation tensor of the forward may exceed {@link #BATCH_ELEMENTS}, no batch of logits
     * {@link #LOGIT_BATCH_ELEMENTS}.
     */
    static int batchRows(ModelArchitecture arch, int length) {
        long widest = Math.max(Math.max(arch.hiddenSize(), arch.intermediateSize()),
                (long) arch.numHeads() * arch.headDim());
        long rows = Math.min(BATCH_ELEMENTS / ((long) length * widest),
                LOGIT_BATCH_ELEMENTS / ((long) length * arch.vocabSize()));
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, rows));
    }

    /** Embeds every row and runs all layers over them, layer by layer; returns the states batch by batch. */
    private List<Tensor> finalHiddenStates(Transformer t, WeightSource source, TokenRows tokens, int batch,
            String label, long start) throws IOException {
        ModelArchitecture arch = t.architecture();
        List<Tensor> states = new ArrayList<>();
        try {
            for (int r = 0; r < tokens.rows(); r += batch) {
                states.add(t.embed(source, tokens.rows(r, Math.min(tokens.rows(), r + batch))));
            }
            for (int l = 0; l < arch.numLayers(); l++) {
                try (Transformer.LayerWeights w = t.loadLayer(source, l)) {
                    for (Tensor s : states) {
                        t.layer(s, w);
                    }
                }
                progress.accept(String.format(Locale.ROOT, "%s: layer %d/%d done over %d rows (%.1f s)", label, l + 1,
                        arch.numLayers(), tokens.rows(), elapsed(start)));
            }
            return states;
        } catch (IOException | RuntimeException e) {
            states.forEach(Tensor::close);
            throw e;
        }
    }

    private Result score(Transformer t, WeightSource model, Transformer refT, WeightSource reference,
            List<Tensor> states, List<Tensor> referenceStates, TokenRows tokens, int batch, long start)
            throws IOException {
        int length = tokens.length();
        int vocab = t.architecture().vocabSize();
        double sumLogProb = 0;
        double sumKl = 0;
        long agree = 0;
        long predicted = 0;
        try (Transformer.OutputWeights out = t.loadOutput(model);
                Transformer.OutputWeights refOut = reference == null ? null : refT.loadOutput(reference)) {
            for (int s = 0; s < states.size(); s++) {
                int firstRow = s * batch;
                int n = (int) states.get(s).dim(0);
                try (Tensor logProbs = logProbs(t, states.get(s), out);
                        Tensor refLogProbs = refOut == null ? null : logProbs(refT, referenceStates.get(s), refOut)) {
                    float[] lp = backend.download(logProbs);
                    float[] kl = null;
                    float[] refLp = null;
                    if (refLogProbs != null) {
                        try (Tensor klRows = backend.zeros((long) n * length)) {
                            backend.klDivergence(refLogProbs, logProbs, klRows);
                            kl = backend.download(klRows);
                        }
                        refLp = backend.download(refLogProbs);
                    }
                    for (int b = 0; b < n; b++) {
                        int[] ids = tokens.row(firstRow + b);
                        for (int p = 0; p < length - 1; p++) {
                            int position = b * length + p;
                            int base = Math.toIntExact((long) position * vocab);
                            sumLogProb += lp[base + ids[p + 1]];
                            if (refLp != null) {
                                sumKl += kl[position];
                                agree += argmax(lp, base, vocab) == argmax(refLp, base, vocab) ? 1 : 0;
                            }
                        }
                        predicted += length - 1;
                    }
                }
                progress.accept(String.format(Locale.ROOT, "scored %d/%d rows, perplexity so far %.4f (%.1f s)",
                        firstRow + n, tokens.rows(), Math.exp(-sumLogProb / predicted), elapsed(start)));
            }
        }
        double meanLogProb = sumLogProb / predicted;
        return new Result(Math.exp(-meanLogProb), meanLogProb, predicted,
                reference == null ? Double.NaN : sumKl / predicted,
                reference == null ? Double.NaN : (double) agree / predicted, elapsed(start));
    }

    /** Log-softmax of the logits of a batch of final hidden states: [rows, length, vocab]. */
    private Tensor logProbs(Transformer t, Tensor hidden, Transformer.OutputWeights out) {
        Tensor logits = t.logits(hidden, out);
        backend.logSoftmax(logits, logits);
        return logits;
    }

    /** Index of the largest of x[base, base + n) (the first one on ties), relative to base. */
    public static int argmax(float[] x, int base, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (x[base + i] > x[base + best]) {
                best = i;
            }
        }
        return best;
    }

    private static double elapsed(long start) {
        return (System.nanoTime() - start) / 1e9;
    }
}
