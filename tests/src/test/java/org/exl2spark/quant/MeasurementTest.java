package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class MeasurementTest {
    static ModelArchitecture arch;
    static byte[] golden;

    @BeforeAll
    static void load() throws Exception {
        try (ModelDirectory m = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            arch = m.architecture();
        }
        golden = Files.readAllBytes(SharedData.goldenMeasurement());
    }

    @Test
    void goldenMeasurementLoadsAndItsBitsMatchOurAccounting() throws Exception {
        Measurement m = Measurement.parse(golden, "golden");
        assertEquals(16, m.blocks().size());
        assertEquals(18, m.lastModuleIdx());
        assertEquals(Measurement.lastModuleIdx(arch), m.lastModuleIdx());
        m.checkMatches(arch, "golden");
        int checked = 0;
        for (var layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                List<BlockCandidate> list = m.candidates(b);
                List<Map<String, QParams>> table = b.kind() == BlockSpec.Kind.ATTENTION ? Candidates.ATTENTION
                        : Candidates.MLP;
                assertEquals(table.size(), list.size());
                for (int i = 0; i < list.size(); i++) {
                    long bits = 0;
                    for (LinearSpec l : b.linears()) {
                        assertEquals(table.get(i).get(l.shortName()), list.get(i).projections().get(l.shortName()),
                                b.key() + " row " + i + " " + l.shortName());
                        bits += table.get(i).get(l.shortName()).totalBits(l.inFeatures(), l.outFeatures(), l.hasBias());
                    }
                    assertEquals(list.get(i).totalBits(), bits, b.key() + " row " + i);
                    checked++;
                }
            }
        }
        assertEquals(288, checked);
    }

    @Test
    void writesExLlamaV2sLayoutByteForByte() throws Exception {
        Measurement m = Measurement.parse(golden, "golden");
        String ours = new String(m.toJson(arch), StandardCharsets.UTF_8);
        assertEquals(new String(golden, StandardCharsets.UTF_8).strip(), ours.strip());
    }

    @Test
    void measurementOfAnotherModelIsRefused() throws Exception {
        Measurement m = Measurement.parse(golden, "golden.json");
        String other = new String(Files.readAllBytes(SharedData.tinyModel().resolve("config.json")), StandardCharsets.UTF_8)
                .replace("\"intermediate_size\": 1024", "\"intermediate_size\": 2048");
        ModelArchitecture wider = ModelArchitecture.fromConfig(other.getBytes(StandardCharsets.UTF_8), "config.json");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> m.checkMatches(wider, "golden.json"));
        assertTrue(e.getMessage().contains("golden.json") && e.getMessage().contains("model.layers.0.mlp"), e.getMessage());
        String deeper = other.replace("\"intermediate_size\": 2048", "\"intermediate_size\": 1024")
                .replace("\"num_hidden_layers\": 8", "\"num_hidden_layers\": 9");
        ModelFormatException e2 = assertThrows(ModelFormatException.class, () -> m.checkMatches(
                ModelArchitecture.fromConfig(deeper.getBytes(StandardCharsets.UTF_8), "c"), "golden.json"));
        assertTrue(e2.getMessage().contains("model.layers.8.self_attn"), e2.getMessage());
    }

    @Test
    void notAMeasurementIsAClearError() {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Measurement.parse("{\"foo\": 1}".getBytes(StandardCharsets.UTF_8), "m.json"));
        assertTrue(e.getMessage().startsWith("m.json: no 'measurement'"), e.getMessage());
    }
}
