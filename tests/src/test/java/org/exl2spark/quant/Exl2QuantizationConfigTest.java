package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Files;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

class Exl2QuantizationConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode config(java.nio.file.Path dir) throws Exception {
        return JSON.readTree(Files.readAllBytes(dir.resolve("config.json")));
    }

    @Test
    void readsTheGoldenBlock() throws Exception {
        JsonNode config = config(SharedData.goldenExl2());
        Exl2QuantizationConfig q = Exl2QuantizationConfig.fromConfig(config, "golden").orElseThrow();
        assertEquals(new Exl2QuantizationConfig("0.2.7", 4.0, 6,
                new Exl2QuantizationConfig.Calibration(115, 2048, "(default)")), q);
        assertTrue(Exl2QuantizationConfig.declaresExl2(config));
        // written back, it is the block ExLlamaV2 wrote, field for field
        assertEquals(config.get("quantization_config"), q.toJson());
        assertEquals(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(config.get("quantization_config")),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsString(q.toJson()));
    }

    @Test
    void aPlainModelOrAnotherMethodHasNone() throws Exception {
        JsonNode plain = config(SharedData.tinyModel());
        assertTrue(Exl2QuantizationConfig.fromConfig(plain, "tiny").isEmpty());
        assertFalse(Exl2QuantizationConfig.declaresExl2(plain));
        ObjectNode gptq = ((ObjectNode) plain.deepCopy());
        gptq.putObject("quantization_config").put("quant_method", "gptq").put("bits", 4);
        assertTrue(Exl2QuantizationConfig.fromConfig(gptq, "gptq").isEmpty());
    }

    @Test
    void malformedExl2BlockNamesTheField() throws Exception {
        ObjectNode config = (ObjectNode) config(SharedData.goldenExl2());
        ObjectNode q = (ObjectNode) config.get("quantization_config");
        q.remove("head_bits");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Exl2QuantizationConfig.fromConfig(config, "x/config.json"));
        assertEquals("x/config.json: quantization_config has no 'head_bits'", e.getMessage());

        q.put("head_bits", 6).put("bits", "4.0");
        e = assertThrows(ModelFormatException.class, () -> Exl2QuantizationConfig.fromConfig(config, "x/config.json"));
        assertEquals("x/config.json: quantization_config.bits must be a positive number, got \"4.0\"", e.getMessage());

        q.put("bits", 4.0);
        ((ObjectNode) q.get("calibration")).put("rows", -1);
        e = assertThrows(ModelFormatException.class, () -> Exl2QuantizationConfig.fromConfig(config, "x/config.json"));
        assertEquals("x/config.json: quantization_config.calibration.rows must be a positive integer, got -1",
                e.getMessage());
    }
}
