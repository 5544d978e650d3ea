package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.BlockWeights;
import org.exl2spark.model.Transformer.LinearWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The measurement's shared candidate forward and the quantize pass's Hessian-only forward against plain block
 * forwards: the same numbers, bit for bit, on random blocks (GQA attention with q/k/v biases, and an MLP).
 */
class BlockRunnerTest {
    private static final int TOKENS = 37;
    private static CpuBackend backend;
    private static ModelArchitecture arch;

    @BeforeAll
    static void start() throws Exception {
        backend = new CpuBackend(2);
        String config = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 48, \"num_attention_heads\": 6,"
                + " \"num_key_value_heads\": 2, \"intermediate_size\": 64, \"num_hidden_layers\": 1,"
                + " \"vocab_size\": 50, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0}";
        arch = ModelArchitecture.fromConfig(config.getBytes(StandardCharsets.UTF_8), "test config");
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    private static float[] gaussian(Random r, long n, double mean, double scale) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (mean + r.nextGaussian() * scale);
        }
        return v;
    }

    private static LinearWeights randomLinear(LinearSpec l, Random r) {
        return new LinearWeights(l, backend.upload(gaussian(r, l.outFeatures() * l.inFeatures(), 0,
                1 / Math.sqrt(l.inFeatures())), l.outFeatures(), l.inFeatures()),
                l.hasBias() ? backend.upload(gaussian(r, l.outFeatures(), 0, 0.1), l.outFeatures()) : null);
    }

    private static BlockSpec block(BlockSpec.Kind kind) {
        return kind == BlockSpec.Kind.ATTENTION ? arch.layer(0).attention() : arch.layer(0).mlp();
    }

    private static HiddenStates randomStates(Random r, int rows) {
        return new HiddenStates(gaussian(r, (long) rows * TOKENS * arch.hiddenSize(), 0, 1), rows, TOKENS,
                arch.hiddenSize());
    }

    private static BlockWeights randomBlock(BlockSpec spec, Random r) {
        List<LinearWeights> linears = new ArrayList<>();
        for (LinearSpec l : spec.linears()) {
            linears.add(randomLinear(l, r));
        }
        return new BlockWeights(spec, backend.upload(gaussian(r, arch.hiddenSize(), 1, 0.1), arch.hiddenSize()), linears);
    }

    @ParameterizedTest
    @EnumSource(BlockSpec.Kind.class)
    void sharedCandidateForwardGivesTheSameErrorsAsSeparateForwards(BlockSpec.Kind kind) {
        BlockSpec spec = block(kind);
        Random r = new Random(17 + kind.ordinal());
        Transformer t = new Transformer(arch, backend);
        // 5 rows in chunks of 2: the last chunk is short
        BlockRunner runner = new BlockRunner(t, 2);
        HiddenStates input = randomStates(r, 5);
        try (BlockWeights original = randomBlock(spec, r)) {
            HiddenStates reference = runner.forward(input, original, LinearInputObserver.NONE);
            // two variants of every projection: candidates 0 and 1 differ only in the output projection (they share
            // the rest of the forward), candidate 2 differs from 0 in the first projection only
            List<List<LinearWeights>> variants = new ArrayList<>();
            for (LinearSpec l : spec.linears()) {
                variants.add(List.of(randomLinear(l, r), randomLinear(l, r)));
            }
            int output = spec.linears().indexOf(spec.linear(spec.outputProjection()));
            int[][] choice = new int[3][spec.linears().size()];
            choice[1][output] = 1;
            choice[2][0] = 1;
            List<BlockWeights> candidates = new ArrayList<>();
            List<String> keys = new ArrayList<>();
            for (int[] c : choice) {
                List<LinearWeights> linears = new ArrayList<>();
                StringBuilder key = new StringBuilder();
                for (int i = 0; i < c.length; i++) {
                    linears.add(variants.get(i).get(c[i]));
                    if (!spec.linears().get(i).shortName().equals(spec.outputProjection())) {
                        key.append(c[i]);
                    }
                }
                candidates.add(new BlockWeights(spec, original.norm(), linears));
                keys.add(key.toString());
            }
            double[] shared = runner.relativeErrorSums(input, reference, candidates, keys);
            double[] separate = new double[candidates.size()];
            for (int c = 0; c < candidates.size(); c++) {
                separate[c] = BlockRunner.relativeErrorSum(runner.forward(input, candidates.get(c),
                        LinearInputObserver.NONE), reference);
            }
            assertArrayEquals(separate, shared, 0.0);
            assertEquals(keys.get(0), keys.get(1), "candidates 0 and 1 share the forward up to the output projection");
            assertNotEquals(keys.get(0), keys.get(2));
            // the candidates differ, so equal sums are not an artefact of computing one candidate three times
            assertNotEquals(shared[0], shared[1]);
            assertNotEquals(shared[0], shared[2]);
            variants.forEach(v -> v.forEach(LinearWeights::close));
        }
    }

    @ParameterizedTest
    @EnumSource(BlockSpec.Kind.class)
    void observeShowsTheLinearsTheSameInputsAsTheForward(BlockSpec.Kind kind) {
        BlockSpec spec = block(kind);
        Random r = new Random(29 + kind.ordinal());
        BlockRunner runner = new BlockRunner(new Transformer(arch, backend), 2);
        HiddenStates input = randomStates(r, 3);
        try (BlockWeights weights = randomBlock(spec, r)) {
            List<String> forwardNames = new ArrayList<>();
            List<float[]> forwardInputs = new ArrayList<>();
            runner.forward(input, weights, (ls, x) -> {
                forwardNames.add(ls.toString());
                forwardInputs.add(backend.download(x));
            });
            List<String> observedNames = new ArrayList<>();
            List<float[]> observedInputs = new ArrayList<>();
            runner.observe(input, weights, (ls, x) -> {
                observedNames.add(ls.toString());
                observedInputs.add(backend.download(x));
            });
            // two inputs per chunk (q/k/v then o, or gate/up then down), two chunks (rows 0-1, row 2)
            assertEquals(4, forwardNames.size());
            assertEquals(forwardNames, observedNames);
            for (int i = 0; i < forwardInputs.size(); i++) {
                assertArrayEquals(forwardInputs.get(i), observedInputs.get(i), "input " + i);
            }
        }
    }
}
