package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.Tensor;
import org.exl2spark.cli.Cli;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.model.Exl2Weights;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.exl2spark.quant.Exl2Group;
import org.exl2spark.quant.Exl2Layout;
import org.exl2spark.quant.Exl2Linear;
import org.exl2spark.quant.Exl2ModelInfo;
import org.exl2spark.quant.Exl2QuantizationConfig;
import org.exl2spark.quant.Measurement;
import org.exl2spark.quant.TensorSource;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * The quantizer's acceptance on the shared 16M-parameter Llama: one conversion at {@code -b 4.0,2.5} (measurement
 * included), then every property of its two outputs, with ExLlamaV2 0.2.7's own 4.0 bpw conversion of the same
 * model as the reference for the file's structure.
 */
class ConvertEndToEndTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Configuration CONF = new Configuration();
    /** A few token ids of the model's 4,096, two sequences. */
    private static final int[][] TOKENS = {{0, 17, 300, 1021, 2048, 4095, 5, 77}, {0, 400, 401, 402, 9, 3000, 12, 1}};

    private static Path job;
    private static Path cf;
    private static Cli.Result run;

    @BeforeAll
    static void convert() throws IOException {
        Path dir = SharedData.scratch("convert-e2e");
        job = dir.resolve("job");
        cf = dir.resolve("out");
        run = Conversions.exl2(Conversions.convertArgs(SharedData.tinyModel(), job, cf, "4.0,2.5")).ok();
    }

    private static Path output(String bpw) {
        return cf.resolve(bpw + "bpw");
    }

    @Test
    void severalBitratesGoToTheirOwnFolders() throws IOException {
        try (Stream<Path> entries = Files.list(cf)) {
            assertEquals(List.of("2.5bpw", "4.0bpw"), entries.map(p -> p.getFileName().toString()).sorted().toList());
        }
        assertTrue(run.out().contains("4.0bpw: model written to"), run.out());
        assertTrue(run.out().contains("2.5bpw: model written to"), run.out());
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void loadsAndGivesFiniteLogitsCloseToTheOriginal(String bpw) throws IOException {
        float[] original = logits(SharedData.tinyModel());
        float[] quantized = logits(output(bpw));
        for (int i = 0; i < quantized.length; i++) {
            assertTrue(Float.isFinite(quantized[i]), bpw + " bpw: logit " + i + " is " + quantized[i]);
        }
        float[] golden = logits(SharedData.goldenExl2());
        double ours = relativeError(quantized, original);
        double exllama = relativeError(golden, original);
        System.out.printf(Locale.ROOT, "%s bpw logits: relative error vs fp16 %.4f (ExLlamaV2 4.0 bpw: %.4f)%n", bpw,
                ours, exllama);
        // finite but far from the original means wrong weights. The bound: twice ExLlamaV2's error at 4.0 bpw (our
        // calibration is tiny), doubling per bit below 4 (each bit removed about doubles the quantization error)
        double bound = 2 * exllama * Math.pow(2, 4.0 - Double.parseDouble(bpw));
        assertTrue(ours < bound, bpw + " bpw: relative logit error " + ours + ", bound " + bound
                + " from ExLlamaV2's 4.0 bpw " + exllama);
    }

    private static float[] logits(Path model) throws IOException {
        try (WeightSource w = WeightSources.open(model.toString(), CONF); CpuBackend backend = new CpuBackend(2)) {
            if (!model.equals(SharedData.tinyModel())) {
                assertInstanceOf(Exl2Weights.class, w, model.toString());
            }
            Transformer t = new Transformer(w.architecture(), backend);
            try (Tensor logits = t.forward(w, TOKENS)) {
                assertArrayEquals(new long[] {TOKENS.length, TOKENS[0].length, 4096}, logits.shape());
                return backend.download(logits);
            }
        }
    }

    private static double relativeError(float[] a, float[] reference) {
        double diff = 0;
        double norm = 0;
        for (int i = 0; i < a.length; i++) {
            diff += (double) (a[i] - reference[i]) * (a[i] - reference[i]);
            norm += (double) reference[i] * reference[i];
        }
        return Math.sqrt(diff / norm);
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void tensorsHaveExllamaV2sStructure(String bpw) throws IOException {
        Path golden = SharedData.goldenExl2().resolve("output.safetensors");
        try (SafetensorsFile g = SafetensorsFile.open(golden.toString(), CONF);
                ModelDirectory ours = ModelDirectory.open(output(bpw).toString(), CONF)) {
            TensorSource source = TensorSource.of(ours);
            assertEquals(new TreeSet<>(g.tensors().keySet()), new TreeSet<>(source.names()),
                    bpw + " bpw: tensor names differ from ExLlamaV2's");
            TensorSource goldenSource = TensorSource.of(g);
            TreeSet<String> modules = new TreeSet<>();
            for (String name : g.tensors().keySet()) {
                if (name.endsWith(Exl2Layout.Q_WEIGHT)) {
                    modules.add(name.substring(0, name.length() - Exl2Layout.Q_WEIGHT.length()));
                }
            }
            assertEquals(57, modules.size(), "7 linears x 8 layers + lm_head");
            for (String name : g.tensors().keySet()) {
                TensorInfo want = g.tensor(name);
                TensorInfo got = ours.tensor(name);
                assertEquals(want.dtype(), got.dtype(), bpw + " bpw: dtype of " + name);
                if (!isQuantizedPart(name)) {
                    assertEquals(DType.F16, got.dtype(), name);
                    assertArrayEquals(want.shape(), got.shape(), bpw + " bpw: shape of " + name);
                }
            }
            for (String key : modules) {
                checkModule(bpw, key, source, goldenSource);
            }
        }
    }

    private static boolean isQuantizedPart(String name) {
        return Stream.of(Exl2Layout.Q_WEIGHT, Exl2Layout.Q_SCALE, Exl2Layout.Q_SCALE_MAX, Exl2Layout.Q_GROUPS,
                Exl2Layout.Q_INVPERM).anyMatch(name::endsWith);
    }

    /** The shape rules of one module, against its q_groups and ExLlamaV2's module of the same name. */
    private static void checkModule(String bpw, String key, TensorSource ours, TensorSource golden)
            throws IOException {
        String where = bpw + " bpw " + key;
        Exl2Linear linear = Exl2Linear.read(ours, key);
        Exl2Linear reference = Exl2Linear.read(golden, key);
        int in = reference.inFeatures();
        int out = reference.layout().width();
        List<Exl2Group> groups = linear.layout().groups();
        int g = groups.size();
        long qRows = 0;
        int rows = 0;
        for (Exl2Group group : groups) {
            assertEquals(qRows, group.qRowStart(), where + ": q-row start of a group");
            assertEquals(rows, group.rowStart(), where + ": row start of a group");
            qRows += (group.rows() * (long) group.bits() + 31) / 32;
            rows += group.rows();
        }
        assertEquals(in, rows, where + ": groups cover in_features");
        assertArrayEquals(new long[] {qRows, out}, ours.tensor(key + Exl2Layout.Q_WEIGHT).shape(), where + " q_weight");
        assertArrayEquals(new long[] {g, out / 8}, ours.tensor(key + Exl2Layout.Q_SCALE).shape(), where + " q_scale");
        assertArrayEquals(new long[] {g}, ours.tensor(key + Exl2Layout.Q_SCALE_MAX).shape(), where + " q_scale_max");
        assertArrayEquals(new long[] {2L * g}, ours.tensor(key + Exl2Layout.Q_GROUPS).shape(), where + " q_groups");
        assertEquals(DType.I16, ours.tensor(key + Exl2Layout.Q_GROUPS).dtype(), where + " q_groups");
        assertArrayEquals(new long[] {in}, ours.tensor(key + Exl2Layout.Q_INVPERM).shape(), where + " q_invperm");
        assertEquals(DType.I32, ours.tensor(key + Exl2Layout.Q_INVPERM).dtype(), where + " q_invperm");
        if (key.equals("lm_head")) {
            // -hb 6 is one fixed setting, so the head's groups are ExLlamaV2's exactly
            assertEquals(reference.layout().groupSummary(), linear.layout().groupSummary(), where);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void configDeclaresTheQuantization(String bpw) throws IOException {
        JsonNode source = JSON.readTree(SharedData.tinyModel().resolve("config.json").toFile());
        JsonNode config = JSON.readTree(output(bpw).resolve("config.json").toFile());
        ObjectNode rest = config.deepCopy();
        JsonNode q = rest.remove(Exl2QuantizationConfig.KEY);
        assertEquals(source, rest, "config.json is the source's plus quantization_config");
        assertEquals("exl2", q.path("quant_method").asText());
        assertEquals(Double.parseDouble(bpw), q.path("bits").asDouble(), 0);
        assertEquals(6, q.path("head_bits").asInt());
        assertEquals(4, q.path("calibration").path("rows").asInt());
        assertEquals(128, q.path("calibration").path("length").asInt());
        assertEquals("heldout.txt", q.path("calibration").path("dataset").asText());
        Exl2QuantizationConfig parsed = Exl2QuantizationConfig.fromConfig(config, "config.json").orElseThrow();
        assertEquals(6, parsed.headBits());
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void achievedBitsPerWeightAreWithinTheTarget(String bpw) throws IOException {
        double target = Double.parseDouble(bpw);
        try (ModelDirectory dir = ModelDirectory.open(output(bpw).toString(), CONF)) {
            Exl2ModelInfo info = Exl2ModelInfo.of(dir);
            double achieved = info.budgetBitsPerWeight();
            System.out.printf(Locale.ROOT, "%s bpw: achieved %.4f bpw%n", bpw, achieved);
            assertTrue(achieved <= target, bpw + " bpw: achieved " + achieved);
            assertTrue(achieved > target - 0.1, bpw + " bpw: achieved only " + achieved + ", the budget is unused");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void tokenizerAndSmallFilesAreCopiedAndNoIndexNamesMissingShards(String bpw) throws IOException {
        for (String name : List.of("tokenizer.json", "tokenizer_config.json", "generation_config.json")) {
            assertArrayEquals(Files.readAllBytes(SharedData.tinyModel().resolve(name)),
                    Files.readAllBytes(output(bpw).resolve(name)), name);
        }
        Path index = output(bpw).resolve(ModelDirectory.INDEX);
        if (Files.exists(index)) {
            JsonNode map = JSON.readTree(index.toFile()).path("weight_map");
            map.fields().forEachRemaining(e -> assertTrue(Files.isRegularFile(output(bpw).resolve(e.getValue().asText())),
                    "index names " + e.getValue().asText() + " for " + e.getKey() + ", which is missing"));
        }
        try (Stream<Path> files = Files.list(output(bpw))) {
            List<String> shards = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".safetensors"))
                    .toList();
            assertEquals(List.of("output.safetensors"), shards, "one shard at the default -ss");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"4.0", "2.5"})
    void manifestChecksumsMatchTheFiles(String bpw) throws IOException {
        Path dir = output(bpw);
        JsonNode manifest = JSON.readTree(dir.resolve(CompilePass.MANIFEST).toFile());
        Map<String, String> listed = new TreeMap<>();
        manifest.path("files").fields().forEachRemaining(e -> {
            listed.put(e.getKey(), e.getValue().path("sha256").asText());
            try {
                assertEquals(Files.size(dir.resolve(e.getKey())), e.getValue().path("bytes").asLong(), e.getKey());
            } catch (IOException x) {
                throw new java.io.UncheckedIOException(x);
            }
        });
        Map<String, String> actual = Conversions.fileHashes(dir);
        actual.remove(CompilePass.MANIFEST);
        assertEquals(actual, listed);
        assertTrue(manifest.path("job").asText().endsWith("/" + bpw + "bpw"), manifest.toString());
    }

    @Test
    void measurementInTheJobDirectoryDescribesTheModel() throws IOException {
        Path file = job.resolve("measurement.json");
        Measurement m = Measurement.parse(Files.readAllBytes(file), file.toString());
        ModelArchitecture arch = ModelArchitecture.fromConfig(
                Files.readAllBytes(SharedData.tinyModel().resolve("config.json")), "config.json");
        m.checkMatches(arch, file.toString());
        assertEquals(16, m.blocks().size());
        assertEquals(18, m.lastModuleIdx());
        // every candidate of ExLlamaV2's table was measured, and each has a sensible accuracy
        Measurement golden = Measurement.parse(Files.readAllBytes(SharedData.goldenMeasurement()), "golden");
        List<String> problems = new ArrayList<>();
        m.blocks().forEach((block, candidates) -> {
            if (candidates.size() != golden.blocks().get(block).size()) {
                problems.add(block + ": " + candidates.size() + " candidates");
            }
            candidates.forEach(c -> {
                if (!(c.accuracy() > 0 && c.accuracy() <= 1)) {
                    problems.add(block + ": accuracy " + c.accuracy());
                }
            });
        });
        assertEquals(List.of(), problems);
    }
}
