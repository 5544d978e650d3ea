package org.exl2spark.model;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.Tensor;

/**
 * The reference forward of a Llama / Mistral / Qwen2 decoder on a {@link Backend}, in fp32, one block at a time:
 * <pre>
 *   h = embed(tokens)
 *   per layer:  h += o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = rmsNorm(h)
 *               h += down_proj(silu(gate_proj(n)) · up_proj(n))                        n = rmsNorm(h)
 *   logits = lm_head(rmsNorm(h))
 * </pre>
 * Hidden states are [batch, seqLen, hidden]; each sequence starts at position 0 and attends causally within itself
 * (and within Mistral's sliding window). The block and layer methods update the hidden states in place so a pass can
 * run the model one layer at a time over states it stored. One thread at a time per instance.
 */
public final class Transformer {
    private final ModelArchitecture arch;
    private final Backend backend;
    private Tensor ropeCos;
    private Tensor ropeSin;

    public Transformer(ModelArchitecture architecture, Backend backend) {
        this.arch = architecture;
        this.backend = backend;
    }

    public ModelArchitecture architecture() {
        return arch;
    }

    public Backend backend() {
        return backend;
    }

    // ---- weights ----------------------------------------------------------------------------------------------

    /** A linear layer's weight [out, in] and bias [out] (or null) on the backend. */
    public record LinearWeights(LinearSpec spec, Tensor weight, Tensor bias) implements AutoCloseable {
        @Override
        public void close() {
            weight.close();
            if (bias != null) {
                bias.close();
            }
        }
    }

    /** A block's input norm and linears on the backend. */
    public record BlockWeights(BlockSpec spec, Tensor norm, List<LinearWeights> linears) implements AutoCloseable {
        public BlockWeights {
            linears = List.copyOf(linears);
        }

        public LinearWeights linear(String shortName) {
            for (LinearWeights l : linears) {
                if (l.spec().shortName().equals(shortName)) {
                    return l;
                }
            }
            throw new IllegalArgumentException(spec.key() + " has no linear '" + shortName + "'");
        }

        @Override
        public void close() {
            norm.close();
            linears.forEach(LinearWeights::close);
        }
    }

    public record LayerWeights(BlockWeights attention, BlockWeights mlp) implements AutoCloseable {
        @Override
        public void close() {
            attention.close();
            mlp.close();
        }
    }

    /** The final norm and the output head. */
    public record OutputWeights(Tensor norm, LinearWeights head) implements AutoCloseable {
        @Override
        public void close() {
            norm.close();
            head.close();
        }
    }

    /** A linear's weight and bias on the backend; 16-bit stored weights are widened by the backend, where it computes. */
    public LinearWeights loadLinear(WeightSource source, LinearSpec linear) throws IOException {
        checkSource(source);
        WeightSource.StoredWeight stored = source.storedLinearWeight(linear);
        Tensor w = stored == null
                ? backend.upload(source.linearWeight(linear), linear.outFeatures(), linear.inFeatures())
                : backend.uploadWidened(stored.bytes(), stored.bf16(), linear.outFeatures(), linear.inFeatures());
        float[] b = source.bias(linear);
        return new LinearWeights(linear, w, b == null ? null : backend.upload(b, linear.outFeatures()));
    }

    public BlockWeights loadBlock(WeightSource source, BlockSpec block) throws IOException {
        checkSource(source);
        List<LinearWeights> linears = new ArrayList<>();
        for (LinearSpec l : block.linears()) {
            linears.add(loadLinear(source, l));
        }
        return new BlockWeights(block, backend.upload(source.norm(block.normName()), arch.hiddenSize()), linears);
    }

    public LayerWeights loadLayer(WeightSource source, int layer) throws IOException {
        LayerSpec spec = arch.layer(layer);
        return new LayerWeights(loadBlock(source, spec.attention()), loadBlock(source, spec.mlp()));
    }

    public OutputWeights loadOutput(WeightSource source) throws IOException {
        checkSource(source);
        return new OutputWeights(backend.upload(source.norm(ModelArchitecture.FINAL_NORM), arch.hiddenSize()),
                loadLinear(source, arch.lmHead()));
    }

    private void checkSource(WeightSource source) {
        ModelArchitecture a = source.architecture();
        if (a.family() != arch.family() || a.numLayers() != arch.numLayers() || a.hiddenSize() != arch.hiddenSize()
                || a.vocabSize() != arch.vocabSize() || a.intermediateSize() != arch.intermediateSize()) {
            throw new IllegalArgumentException("weights of a " + a.family() + " model (" + a.numLayers() + " layers, hidden "
                    + a.hiddenSize() + ") do not fit this " + arch.family() + " transformer (" + arch.numLayers()
                    + " layers, hidden " + arch.hiddenSize() + ")");
        }
    }

    // ---- forward ----------------------------------------------------------------------------------------------

    /**
     * Token embeddings of equal-length sequences: [tokens.length, seqLen, hidden]. Reads only the table rows of the
     * distinct tokens present and gathers from that compact table.
     */
    public Tensor embed(WeightSource source, int[][] tokens) throws IOException {
        checkSource(source);
        int seqLen = tokens.length == 0 ? 0 : tokens[0].length;
        int[] ids = new int[Math.multiplyExact(tokens.length, seqLen)];
        for (int b = 0; b < tokens.length; b++) {
            if (tokens[b].length != seqLen) {
                throw new IllegalArgumentException("sequence " + b + " has " + tokens[b].length + " tokens, sequence 0 has "
                        + seqLen + "; a batch needs equal lengths");
            }
            System.arraycopy(tokens[b], 0, ids, b * seqLen, seqLen);
        }
        int[] distinct = Arrays.stream(ids).distinct().sorted().toArray();
        if (distinct.length > 0 && (distinct[0] < 0 || distinct[distinct.length - 1] >= arch.vocabSize())) {
            throw new IllegalArgumentException("token id " + (distinct[0] < 0 ? distinct[0] : distinct[distinct.length - 1])
                    + " is outside the vocabulary [0, " + arch.vocabSize() + ")");
        }
        int[] compactIds = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            compactIds[i] = Arrays.binarySearch(distinct, ids[i]);
        }
        Tensor h = backend.zeros(tokens.length, seqLen, arch.hiddenSize());
        try (Tensor table = backend.upload(source.embeddingRows(distinct), distinct.length, arch.hiddenSize())) {
            backend.embed(compactIds, table, h);
        }
        return h;
    }

    /** One pre-norm residual block (attention or MLP) on hidden [batch, seqLen, hidden], in place. */
    public void block(Tensor hidden, BlockWeights w, LinearInputObserver observer) {
        try (Tensor projectionInput = blockUpToOutputProjection(hidden, w, observer)) {
            addOutputProjection(hidden, projectionInput, w);
        }
    }

    /**
     * The first part of a block, everything its output projection ({@link BlockSpec#outputProjection}) does not
     * change: the attention output o_proj reads, or the SwiGLU product down_proj reads. {@code hidden} is left
     * unchanged; the caller closes the result. Candidates that differ only in the output projection share it.
     */
    public Tensor blockUpToOutputProjection(Tensor hidden, BlockWeights w, LinearInputObserver observer) {
        checkHidden(hidden);
        return switch (w.spec().kind()) {
            case ATTENTION -> attention(hidden, w, observer);
            case MLP -> swiGlu(hidden, w, observer);
        };
    }

    /** The rest of a block: {@code hidden += outputProjection(projectionInput)}. */
    public void addOutputProjection(Tensor hidden, Tensor projectionInput, BlockWeights w) {
        checkHidden(hidden);
        LinearWeights proj = w.linear(w.spec().outputProjection());
        try (Tensor y = backend.zeros(hidden.shape())) {
            backend.linear(projectionInput, proj.weight(), proj.bias(), y);
            backend.add(hidden, y, hidden);
        }
    }

    public void layer(Tensor hidden, LayerWeights w) {
        block(hidden, w.attention(), LinearInputObserver.NONE);
        block(hidden, w.mlp(), LinearInputObserver.NONE);
    }

    private Tensor attention(Tensor hidden, BlockWeights w, LinearInputObserver observer) {
        long batch = hidden.dim(0);
        long seqLen = hidden.dim(1);
        int heads = arch.numHeads();
        int kvHeads = arch.numKvHeads();
        int headDim = arch.headDim();
        LinearWeights qProj = w.linear("q_proj");
        LinearWeights kProj = w.linear("k_proj");
        LinearWeights vProj = w.linear("v_proj");
        try (Tensor x = normed(hidden, w.norm());
                Tensor q = backend.zeros(batch, seqLen, (long) heads * headDim);
                Tensor k = backend.zeros(batch, seqLen, (long) kvHeads * headDim);
                Tensor v = backend.zeros(batch, seqLen, (long) kvHeads * headDim)) {
            observer.accept(List.of(qProj.spec(), kProj.spec(), vProj.spec()), x);
            backend.linear(x, qProj.weight(), qProj.bias(), q);
            backend.linear(x, kProj.weight(), kProj.bias(), k);
            backend.linear(x, vProj.weight(), vProj.bias(), v);
            ensureRope((int) seqLen);
            backend.rope(q, heads, headDim, ropeCos, ropeSin);
            backend.rope(k, kvHeads, headDim, ropeCos, ropeSin);
            Tensor attended = backend.zeros(batch, seqLen, (long) heads * headDim);
            backend.attention(q, k, v, attended, heads, kvHeads, headDim, arch.slidingWindow());
            observer.accept(List.of(w.linear("o_proj").spec()), attended);
            return attended;
        }
    }

    private Tensor swiGlu(Tensor hidden, BlockWeights w, LinearInputObserver observer) {
        long batch = hidden.dim(0);
        long seqLen = hidden.dim(1);
        LinearWeights gateProj = w.linear("gate_proj");
        LinearWeights upProj = w.linear("up_proj");
        Tensor gate = backend.zeros(batch, seqLen, arch.intermediateSize());
        try (Tensor x = normed(hidden, w.norm());
                Tensor up = backend.zeros(batch, seqLen, arch.intermediateSize())) {
            observer.accept(List.of(gateProj.spec(), upProj.spec()), x);
            backend.linear(x, gateProj.weight(), gateProj.bias(), gate);
            backend.linear(x, upProj.weight(), upProj.bias(), up);
            backend.swiGlu(gate, up, gate);
            observer.accept(List.of(w.linear("down_proj").spec()), gate);
            return gate;
        }
    }

    /** Final norm and output head: logits [batch, seqLen, vocab]. */
    public Tensor logits(Tensor hidden, OutputWeights w) {
        checkHidden(hidden);
        try (Tensor x = normed(hidden, w.norm())) {
            Tensor logits = backend.zeros(hidden.dim(0), hidden.dim(1), arch.vocabSize());
            backend.linear(x, w.head().weight(), w.head().bias(), logits);
            return logits;
        }
    }

    /**
     * The whole model on equal-length sequences, loading one layer's weights at a time: logits
     * [tokens.length, seqLen, vocab].
     */
    public Tensor forward(WeightSource source, int[][] tokens) throws IOException {
        try (Tensor hidden = embed(source, tokens)) {
            for (int l = 0; l < arch.numLayers(); l++) {
                try (LayerWeights w = loadLayer(source, l)) {
                    layer(hidden, w);
                }
            }
            try (OutputWeights out = loadOutput(source)) {
                return logits(hidden, out);
            }
        }
    }

    /**
     * Floating-point operations (a multiply-add counts 2) of {@link #forward} on one sequence of {@code seqLen}
     * tokens: every linear including lm_head, and attention's QKᵀ and PV over the key positions each query can see
     * (causal, within the sliding window). Norms, RoPE, softmax and activations are not counted.
     */
    public long forwardFlops(int seqLen) {
        long linear = 0;
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec block : layer.blocks()) {
                for (LinearSpec l : block.linears()) {
                    linear += l.inFeatures() * l.outFeatures();
                }
            }
        }
        linear += arch.lmHead().inFeatures() * arch.lmHead().outFeatures();
        long visiblePairs = 0;
        for (long i = 0; i < seqLen; i++) {
            visiblePairs += arch.slidingWindow() > 0 ? Math.min(i + 1, arch.slidingWindow()) : i + 1;
        }
        long attention = 2L * 2 * arch.headDim() * arch.numHeads() * visiblePairs * arch.numLayers();
        return 2 * linear * seqLen + attention;
    }

    private Tensor normed(Tensor hidden, Tensor norm) {
        Tensor x = backend.zeros(hidden.shape());
        backend.rmsNorm(hidden, norm, (float) arch.rmsNormEps(), x);
        return x;
    }

    private void checkHidden(Tensor hidden) {
        if (hidden.rank() != 3 || hidden.dim(2) != arch.hiddenSize()) {
            throw new IllegalArgumentException("hidden states " + hidden.shapeString() + " are not [batch, seqLen, "
                    + arch.hiddenSize() + "]");
        }
    }

    /**
     * cos/sin of position·frequency for positions [0, seqLen), as transformers and ExLlamaV2 compute them: the angle
     * is the fp32 product of the position and the fp32 inverse frequency.
     */
    private void ensureRope(int seqLen) {
        if (ropeCos != null && ropeCos.dim(0) >= seqLen) {
            return;
        }
        double[] inv = arch.rope().inverseFrequencies(arch.headDim());
        int half = inv.length;
        float[] cos = new float[Math.multiplyExact(seqLen, half)];
        float[] sin = new float[cos.length];
        for (int p = 0; p < seqLen; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * (float) inv[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        if (ropeCos != null) {
            ropeCos.close();
            ropeSin.close();
        }
        ropeCos = backend.upload(cos, seqLen, half);
        ropeSin = backend.upload(sin, seqLen, half);
    }
}
