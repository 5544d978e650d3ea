package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ExampleCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** What the tiny preset writes with its defaults (4 MB shards). */
    private static final List<String> TINY_FILES = List.of("config.json", "generation_config.json",
            "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
            "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json");

    private static Path tiny;

    @BeforeAll
    static void writeTiny() throws IOException {
        tiny = SharedData.scratch("example").resolve("tiny");
        String out = Cli.run("example", tiny.toString()).ok().out();
        assertTrue(out.startsWith("Wrote the tiny example (LlamaForCausalLM, 4 layers, 5,245,184 parameters, seed 0)"),
                out);
    }

    @Test
    void writesTheHuggingFaceLayoutAndNothingElse() throws IOException {
        assertEquals(TINY_FILES, list(tiny));
        assertEquals(List.of("tiny"), list(tiny.getParent()), "no temporary directory left beside the output");
        JsonNode config = JSON.readTree(tiny.resolve("config.json").toFile());
        assertEquals("default", config.at("/rope_parameters/rope_type").asText());
        assertEquals(10000.0, config.at("/rope_parameters/rope_theta").asDouble());
        assertEquals(4096, config.get("vocab_size").asInt());
        JsonNode index = JSON.readTree(tiny.resolve("model.safetensors.index.json").toFile());
        assertEquals(5_245_184L * 2, index.at("/metadata/total_size").asLong());
    }

    @Test
    void inspectReadsItBack() {
        // 4 layers of (q 256x256, k/v 128x256, o 256x256, gate/up 768x256, down 256x768, 2 norms of 256),
        // embedding and lm_head 4096x256, final norm 256
        String out = Cli.run("inspect", tiny.toString()).ok().out();
        assertTrue(out.contains("Parameters             5,245,184 from config.json; the tensors hold 5,245,184 (equal)"),
                out);
        assertTrue(out.contains("  mlp.down_proj            768       256  [256, 768]       no    F16"), out);
        assertTrue(out.contains("  self_attn.k_proj         256       128  [128, 256]       no    F16"), out);
        assertTrue(out.contains("Shards                 3 files,"), out);
        assertTrue(out.contains("Problems               none"), out);
    }

    @Test
    void weightsHaveTheirIntendedScales() throws IOException {
        try (ModelDirectory m = ModelDirectory.open(tiny.toString(), new Configuration())) {
            assertMoments(m.readFloats("model.layers.0.self_attn.q_proj.weight"), 0, 1 / Math.sqrt(256));
            assertMoments(m.readFloats("model.layers.3.mlp.down_proj.weight"), 0, 1 / Math.sqrt(768));
            assertMoments(m.readFloats("model.embed_tokens.weight"), 0, 1);
            assertMoments(m.readFloats("lm_head.weight"), 0, 1 / Math.sqrt(256));
            assertMoments(m.readFloats("model.layers.2.input_layernorm.weight"), 1, 0.02);
            assertMoments(m.readFloats("model.norm.weight"), 1, 0.02);
            float[] a = m.readFloats("model.layers.0.mlp.up_proj.weight");
            float[] b = m.readFloats("model.layers.1.mlp.up_proj.weight");
            assertFalse(java.util.Arrays.equals(a, b), "each tensor has its own values");
        }
    }

    private static void assertMoments(float[] v, double mean, double std) {
        double sum = 0;
        double sq = 0;
        for (float x : v) {
            assertTrue(Float.isFinite(x));
            sum += x;
            sq += (double) x * x;
        }
        double m = sum / v.length;
        double s = Math.sqrt(sq / v.length - m * m);
        assertEquals(mean, m, 5 * std / Math.sqrt(v.length) + 1e-3 * std, "mean");
        assertEquals(std, s, 0.05 * std, "standard deviation");
    }

    @Test
    void sameSeedGivesIdenticalBytesOtherSeedOtherWeights() throws IOException {
        Path again = SharedData.scratch("example-again").resolve("tiny");
        Cli.run("example", "--seed", "0", again.toString()).ok();
        for (String f : TINY_FILES) {
            assertArrayEquals(Files.readAllBytes(tiny.resolve(f)), Files.readAllBytes(again.resolve(f)), f);
        }
        Path other = SharedData.scratch("example-other").resolve("tiny");
        Cli.run("example", "--seed", "7", other.toString()).ok();
        assertArrayEquals(Files.readAllBytes(tiny.resolve("config.json")),
                Files.readAllBytes(other.resolve("config.json")));
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(tiny.resolve("model-00001-of-00003.safetensors")),
                Files.readAllBytes(other.resolve("model-00001-of-00003.safetensors"))));
    }

    @Test
    void tokenizerLoadsInDjlAndRoundTrips() throws IOException {
        JsonNode tok = JSON.readTree(tiny.resolve("tokenizer.json").toFile());
        assertEquals(4096, tok.at("/model/vocab").size(), "tokenizer vocabulary = config vocab_size for tiny");
        String text = "The quick brown fox jumps over the lazy dog. Then it sat, and it rested.\n"
                + "    def f(x): return x * 2  # 12345\u00fcn\u00efc\u00f6d\u00e9 \ud83d\ude00 \u4e2d\u6587\ttab";
        Map<String, String> opts = Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false");
        try (HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(tiny.resolve("tokenizer.json"), opts)) {
            Encoding e = t.encode(text);
            long[] ids = e.getIds();
            for (long id : ids) {
                assertTrue(id >= 3 && id < 4096, "id " + id);
            }
            assertEquals(text, t.decode(ids));
            int bytes = text.getBytes(StandardCharsets.UTF_8).length;
            assertTrue(ids.length < bytes * 0.7, ids.length + " tokens for " + bytes + " bytes: merges are not applied");
            assertEquals(0, t.encode("hi", true, false).getIds()[0], "<s> is id 0 when special tokens are added");
        }
    }

    @Test
    void singleShardHasNoIndex() throws IOException {
        Path one = SharedData.scratch("example-one").resolve("m");
        Cli.run("example", "--layers", "1", "--shard-size", "1024", "--seed", "3", one.toString()).ok();
        assertTrue(Files.exists(one.resolve("model.safetensors")));
        assertFalse(Files.exists(one.resolve("model.safetensors.index.json")));
        String out = Cli.run("inspect", one.toString()).ok().out();
        assertTrue(out.contains("  layers               1\n"), out);
        assertTrue(out.contains("Shards                 1 file,"), out);
    }

    @Test
    void refusesADirectoryThatHoldsFiles() throws IOException {
        Path dir = SharedData.scratch("example-full");
        Files.writeString(dir.resolve("keep.txt"), "mine");
        String line = Cli.run("example", dir.toString()).oneLineError(1, "exl2 example");
        assertTrue(line.endsWith("already exists and is not empty; choose a new directory"), line);
        assertEquals(List.of("keep.txt"), list(dir));
        assertEquals("mine", Files.readString(dir.resolve("keep.txt")));
    }

    @Test
    void fillsAnEmptyDirectory() throws IOException {
        Path dir = Files.createDirectory(SharedData.scratch("example-empty").resolve("empty"));
        Cli.run("example", "--layers", "1", dir.toString()).ok();
        assertTrue(Files.exists(dir.resolve("config.json")));
        assertEquals(List.of("empty"), list(dir.getParent()), "no temporary directory left beside the output");
    }

    @Test
    void badValuesAreOneLineErrors() throws IOException {
        Path dir = SharedData.scratch("example-bad");
        String preset = Cli.run("example", "--preset", "gpt5", dir.resolve("a").toString()).oneLineError(2, "exl2 example");
        assertTrue(preset.contains("unknown preset 'gpt5'; choose one of tiny, llama3-70b, qwen1.5-110b"), preset);
        String layers = Cli.run("example", "--layers", "0", dir.resolve("b").toString()).oneLineError(1, "exl2 example");
        assertTrue(layers.endsWith("--layers must be at least 1, got 0"), layers);
        String shard = Cli.run("example", "--shard-size", "0", dir.resolve("c").toString()).oneLineError(1, "exl2 example");
        assertTrue(shard.endsWith("--shard-size must be at least 1 MB, got 0"), shard);
        String seed = Cli.run("example", "--seed", "x", dir.resolve("d").toString()).oneLineError(2, "exl2 example");
        assertTrue(seed.contains("'x'"), seed);
        assertEquals(List.of(), list(dir), "nothing written for rejected options");
    }

    static List<String> list(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
