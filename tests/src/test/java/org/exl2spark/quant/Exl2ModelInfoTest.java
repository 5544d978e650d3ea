package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class Exl2ModelInfoTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static SafetensorsFile output;
    private static JsonNode config;
    private static Exl2ModelInfo info;

    @BeforeAll
    static void open() throws Exception {
        Path golden = SharedData.goldenExl2();
        output = SafetensorsFile.open(golden.resolve("output.safetensors").toString(), new Configuration());
        config = JSON.readTree(Files.readAllBytes(golden.resolve("config.json")));
        info = Exl2ModelInfo.of(config, TensorSource.of(output), golden.toString());
    }

    @AfterAll
    static void close() throws Exception {
        output.close();
    }

    @Test
    void decoderLayerBitsMatchExllamaV2sOptimizerChoice() {
        // spec E: at 4.0 bpw the budget was 50,356,224 bits of 12,589,056 numel and the chosen strategy cost 50,331,200
        assertEquals(16, info.blocks().size());
        assertEquals(50_331_200L, info.layerBits());
        assertEquals(12_589_056L, info.layerNumel());
        assertTrue(info.layerBits() <= (long) (info.layerNumel() * 4.0));
        assertEquals(50_331_200.0 / 12_589_056, info.budgetBitsPerWeight(), 1e-12);
        assertEquals(12_582_912L, info.layerWeights());
    }

    @Test
    void everyBlockCostsExactlyOneMeasuredCandidate() throws Exception {
        JsonNode measurement = JSON.readTree(Files.readAllBytes(SharedData.goldenMeasurement())).get("measurement");
        for (Exl2ModelInfo.Block block : info.blocks()) {
            int matches = 0;
            for (JsonNode candidate : measurement.get(block.key())) {
                if (candidate.get("total_bits").asLong() == block.bits()) {
                    matches++;
                }
            }
            assertEquals(1, matches, block.key() + " costs " + block.bits() + " bits");
        }
    }

    @Test
    void fileBitsEqualExl2BitsForThisUnpaddedModel() {
        for (Exl2ModelInfo.Module m : info.modules()) {
            assertTrue(m.quantized(), m.key());
            assertEquals(m.bits(), m.fileBits(), m.key());
        }
        assertEquals(57, info.modules().size());
        assertEquals(8 * (output.fileLength() - output.dataStart()), info.tensorBits());
    }

    @Test
    void headIsReportedWithItsGroups() {
        Exl2ModelInfo.Module head = info.lmHead().orElseThrow();
        assertEquals("8b 1x128, 6b 2x128", head.layout().groupSummary());
        // 4096 columns x (128 x 8 + 256 x 6) code bits + 3 groups x (16 + 32 + 4096 x 4) + 384 x 32 permutation bits
        assertEquals(10_547_344L, head.bits());
        assertEquals(384 * 4096L, head.weights());
        assertEquals(6, info.quantizationConfig().orElseThrow().headBits());
    }

    @Test
    void renderShowsModulesAndTotals() {
        String text = info.render();
        assertTrue(text.contains("quantization_config: ExLlamaV2 0.2.7, target 4.0 bpw, head bits 6, calibration"
                + " 115 rows x 2048 tokens ((default))"), text);
        assertTrue(text.lines().anyMatch(l -> l.startsWith("model.layers.0.mlp.down_proj ")
                && l.endsWith("8b 2x32, 4b 7x128+64")), text);
        assertTrue(text.contains("decoder layers: 50,331,200 bits for 12,582,912 weights = 4.0000 bpw; 3.9980 bits"
                + " per block numel"), text);
        assertTrue(text.contains("lm_head: 10,547,344 bits for 1,572,864 weights = 6.7058 bpw, groups 8b 1x128,"
                + " 6b 2x128 (head bits 6)"), text);
        assertEquals(57, text.lines().filter(l -> l.startsWith("model.layers.") || l.startsWith("lm_head ")).count());
    }

    @Test
    void worksOnAModelDirectory() throws Exception {
        // the golden directory carries the source's stale index; a clean single-file copy opens as a model directory
        Path dir = SharedData.scratch("exl2-info");
        Files.copy(SharedData.goldenExl2().resolve("config.json"), dir.resolve("config.json"));
        Files.copy(SharedData.goldenExl2().resolve("output.safetensors"), dir.resolve(ModelDirectory.SINGLE));
        try (ModelDirectory model = ModelDirectory.open(dir.toString(), new Configuration())) {
            Exl2ModelInfo fromDir = Exl2ModelInfo.of(model);
            assertEquals(info.layerBits(), fromDir.layerBits());
            assertEquals(info.tensorBits(), fromDir.tensorBits());
            assertTrue(Exl2ModelInfo.isExl2(model.config(), TensorSource.of(model)));
        }
    }

    @Test
    void aPlainModelIsNotExl2() throws Exception {
        try (ModelDirectory model = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            assertFalse(Exl2ModelInfo.isExl2(model.config(), TensorSource.of(model)));
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> Exl2ModelInfo.of(model));
            assertTrue(e.getMessage().endsWith(": not an EXL2 model: no tensor ends in .q_weight"), e.getMessage());
        }
    }

    @Test
    void aLinearStoredNeitherWayIsNamed() throws Exception {
        InMemoryTensors tensors = new InMemoryTensors(TensorSource.of(output));
        for (String suffix : new String[] {".q_weight", ".q_scale", ".q_scale_max", ".q_groups", ".q_invperm"}) {
            tensors.remove("model.layers.3.self_attn.k_proj" + suffix);
        }
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Exl2ModelInfo.of(config, tensors, "m"));
        assertTrue(e.getMessage().contains("linear 'model.layers.3.self_attn.k_proj' has neither"
                + " model.layers.3.self_attn.k_proj.q_weight nor model.layers.3.self_attn.k_proj.weight"), e.getMessage());
    }
}
