package org.exl2spark.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** The forward on small random models of each family against {@link ReferenceForward}. */
class ForwardTransformerTest {
    private static final String QWEN2 = RandomWeights.config("Qwen2ForCausalLM", 48, 6, 2, 64, 2, 70,
            "\"tie_word_embeddings\": true");
    private static CpuBackend backend;

    @BeforeAll
    static void start() {
        backend = new CpuBackend(3);
    }

    @AfterAll
    static void stop() {
        backend.close();
    }

    static Stream<Arguments> models() {
        return Stream.of(
                Arguments.of("llama, multi-head", RandomWeights.config("LlamaForCausalLM", 32, 4, 4, 48, 2, 61,
                        "\"head_dim\": 8"), 40),
                Arguments.of("llama, GQA, llama3 rope scaling, two attention tiles",
                        RandomWeights.config("LlamaForCausalLM", 48, 6, 2, 64, 2, 70, "\"rope_scaling\": {\"rope_type\": "
                                + "\"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                + "\"original_max_position_embeddings\": 16}"), 300),
                Arguments.of("qwen2, q/k/v biases, tied embeddings", QWEN2, 40),
                Arguments.of("mistral, sliding window 7, one KV head",
                        RandomWeights.config("MistralForCausalLM", 32, 4, 1, 48, 2, 61, "\"sliding_window\": 7"), 40));
    }

    private static int[][] randomTokens(int batch, int seqLen, int vocab, long seed) {
        Random r = new Random(seed);
        int[][] t = new int[batch][seqLen];
        for (int[] row : t) {
            for (int i = 0; i < seqLen; i++) {
                row[i] = r.nextInt(vocab);
            }
        }
        return t;
    }

    private static void assertClose(float[] expected, float[] actual, int offset, double tolerance, String what) {
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[offset + i]) / (1 + Math.abs(expected[i]));
            if (!(err <= tolerance)) {
                fail(what + ": element " + i + " is " + actual[offset + i] + ", expected " + expected[i]);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("models")
    void forwardMatchesReference(String name, String config, int seqLen) throws Exception {
        RandomWeights w = new RandomWeights(config, 7);
        ModelArchitecture a = w.architecture();
        int[][] tokens = randomTokens(2, seqLen, a.vocabSize(), 11);
        Transformer t = new Transformer(a, backend);
        try (Tensor logits = t.forward(w, tokens)) {
            assertArrayEquals(new long[] {2, seqLen, a.vocabSize()}, logits.shape());
            float[] got = backend.download(logits);
            for (int b = 0; b < tokens.length; b++) {
                float[] expected = new ReferenceForward(w).logits(tokens[b]);
                assertClose(expected, got, b * seqLen * a.vocabSize(), 2e-5, name + ", sequence " + b);
            }
        }
    }

    @Test
    void blockByBlockWithObserverMatchesWholeForward() throws Exception {
        RandomWeights w = new RandomWeights(QWEN2, 3);
        ModelArchitecture a = w.architecture();
        int seqLen = 33;
        int[][] tokens = randomTokens(2, seqLen, a.vocabSize(), 5);
        Transformer t = new Transformer(a, backend);
        List<String> seen = new ArrayList<>();
        List<float[]> layer0Inputs = new ArrayList<>();
        float[] blockwise;
        try (Tensor hidden = t.embed(w, tokens)) {
            for (LayerSpec layer : a.layers()) {
                for (BlockSpec block : layer.blocks()) {
                    try (Transformer.BlockWeights bw = t.loadBlock(w, block)) {
                        t.block(hidden, bw, (linears, input) -> {
                            StringBuilder names = new StringBuilder();
                            linears.forEach(l -> names.append(names.length() == 0 ? "" : "+").append(l.shortName()));
                            seen.add(layer.index() + ":" + names + Arrays.toString(input.shape()));
                            if (layer.index() == 0) {
                                layer0Inputs.add(backend.download(input));
                            }
                        });
                    }
                }
            }
            try (Transformer.OutputWeights out = t.loadOutput(w); Tensor logits = t.logits(hidden, out)) {
                blockwise = backend.download(logits);
            }
        }
        try (Tensor logits = t.forward(w, tokens)) {
            assertArrayEquals(backend.download(logits), blockwise);
        }
        assertEquals(List.of("0:q_proj+k_proj+v_proj[2, 33, 48]", "0:o_proj[2, 33, 48]", "0:gate_proj+up_proj[2, 33, 48]",
                "0:down_proj[2, 33, 64]", "1:q_proj+k_proj+v_proj[2, 33, 48]", "1:o_proj[2, 33, 48]",
                "1:gate_proj+up_proj[2, 33, 48]", "1:down_proj[2, 33, 64]"), seen);
        ReferenceForward ref = new ReferenceForward(w);
        ref.logits(tokens[0]);
        for (int i = 0; i < 4; i++) {
            assertClose(ref.layer0LinearInputs.get(i), layer0Inputs.get(i), 0, 2e-5, "layer 0 linear input " + i);
        }
    }

    @Test
    void fp16CheckpointGivesTheSameForward() throws Exception {
        RandomWeights w = new RandomWeights(QWEN2, 9);
        java.nio.file.Path dir = SharedData.scratch("random-qwen2");
        w.writeCheckpoint(new org.apache.hadoop.fs.Path(dir.toUri()), 20_000);
        assertTrue(Files.exists(dir.resolve("model.safetensors.index.json")), "several shards expected");
        int[][] tokens = randomTokens(1, 20, w.architecture().vocabSize(), 1);
        Transformer t = new Transformer(w.architecture(), backend);
        try (WeightSource fromDisk = WeightSources.open(dir.toString(), new Configuration());
                Tensor expected = t.forward(w, tokens);
                Tensor got = t.forward(fromDisk, tokens)) {
            assertArrayEquals(backend.download(expected), backend.download(got));
        }
    }

    @Test
    void checkpointShapeMismatchNamesTheTensor() throws Exception {
        RandomWeights w = new RandomWeights(QWEN2, 9);
        java.nio.file.Path dir = SharedData.scratch("bad-shape");
        w.writeCheckpoint(new org.apache.hadoop.fs.Path(dir.toUri()), 1 << 30);
        Files.delete(dir.resolve(".config.json.crc"));
        Files.writeString(dir.resolve("config.json"), QWEN2.replace("\"intermediate_size\": 64",
                "\"intermediate_size\": 80"), StandardCharsets.UTF_8);
        try (WeightSource fromDisk = WeightSources.open(dir.toString(), new Configuration())) {
            Transformer t = new Transformer(fromDisk.architecture(), backend);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> t.loadLayer(fromDisk, 0));
            assertTrue(e.getMessage().contains("model.layers.0.mlp.gate_proj.weight")
                    && e.getMessage().contains("[64, 48]") && e.getMessage().contains("[80, 48]"), e.getMessage());
        }
    }

    @Test
    void exl2ModelsAreDecodedAndAnEmptyOneIsNamed() throws Exception {
        try (WeightSource golden = WeightSources.open(SharedData.goldenExl2().toString(), new Configuration())) {
            assertTrue(golden instanceof Exl2Weights, golden.getClass().getName());
            LinearSpec q = golden.architecture().layer(0).attention().linear("q_proj");
            assertEquals(q.outFeatures() * q.inFeatures(), golden.linearWeight(q).length);
        }
        java.nio.file.Path dir = SharedData.scratch("quantized");
        Files.writeString(dir.resolve("config.json"), QWEN2.replace("}", ", \"quantization_config\": "
                + "{\"quant_method\": \"exl2\", \"bits\": 4.0}}"), StandardCharsets.UTF_8);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> WeightSources.open(dir.toString(), new Configuration()));
        assertTrue(e.getMessage().contains(dir.getFileName().toString()) && e.getMessage().contains("EXL2"),
                e.getMessage());
    }
}
