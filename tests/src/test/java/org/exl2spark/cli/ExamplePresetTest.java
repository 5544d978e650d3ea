package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.Map;
import java.util.stream.Collectors;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.junit.jupiter.api.Test;

/**
 * The big presets' configs and tensor lists, checked without writing their weights (a single layer of either writes
 * 6-8 GB; docs/BENCHMARKS.md has a real run). Parameter counts at 80 layers match the published models.
 */
class ExamplePresetTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void qwen15With110bShapes() throws IOException {
        ExampleModel m = ExampleModel.of(ExamplePreset.QWEN15_110B, null, 0);
        ModelArchitecture a = m.architecture();
        assertEquals(ModelArchitecture.Family.QWEN2, a.family());
        assertEquals(1, a.numLayers());
        assertEquals(64, a.numHeads());
        assertEquals(8, a.numKvHeads());
        assertEquals(128, a.headDim());
        assertEquals(152064, a.vocabSize());
        assertEquals(1e6, a.rope().theta());
        assertEquals("default", a.rope().type());
        BlockSpec mlp = a.layer(0).mlp();
        assertLinear(mlp.linear("down_proj"), 49152, 8192, false);
        assertLinear(mlp.linear("gate_proj"), 8192, 49152, false);
        BlockSpec attn = a.layer(0).attention();
        assertLinear(attn.linear("q_proj"), 8192, 8192, true);
        assertLinear(attn.linear("k_proj"), 8192, 1024, true);
        assertLinear(attn.linear("v_proj"), 8192, 1024, true);
        assertLinear(attn.linear("o_proj"), 8192, 8192, false);
        Map<String, TensorSpec> tensors = m.tensors().stream().collect(Collectors.toMap(TensorSpec::name, t -> t));
        assertEquals(1024, tensors.get("model.layers.0.self_attn.k_proj.bias").shape()[0]);
        assertEquals(2 * a.parameterCount(), m.weightBytes());
        JsonNode c = JSON.readTree(m.configJson());
        assertEquals("Qwen2ForCausalLM", c.at("/architectures/0").asText());
        assertFalse(c.get("use_sliding_window").asBoolean());
        assertEquals(0, a.slidingWindow());
        assertEquals(4096, m.tokenizerVocabSize());
        assertEquals(111_209_914_368L, ExampleModel.of(ExamplePreset.QWEN15_110B, 80, 0).architecture().parameterCount());
    }

    @Test
    void llama3With70bShapesAndLlama3Rope() throws IOException {
        ExampleModel m = ExampleModel.of(ExamplePreset.LLAMA3_70B, null, 0);
        ModelArchitecture a = m.architecture();
        assertEquals(ModelArchitecture.Family.LLAMA, a.family());
        assertEquals(1, a.numLayers());
        assertEquals(64, a.numHeads());
        assertEquals(8, a.numKvHeads());
        assertEquals(128256, a.vocabSize());
        assertEquals(131072, a.maxPositionEmbeddings());
        assertEquals("llama3", a.rope().type());
        assertEquals(500000.0, a.rope().theta());
        assertEquals(8.0, a.rope().parameter("factor"));
        assertEquals(1.0, a.rope().parameter("low_freq_factor"));
        assertEquals(4.0, a.rope().parameter("high_freq_factor"));
        assertEquals(8192.0, a.rope().parameter("original_max_position_embeddings"));
        assertLinear(a.layer(0).mlp().linear("down_proj"), 28672, 8192, false);
        assertLinear(a.layer(0).attention().linear("k_proj"), 8192, 1024, false);
        assertTrue(m.tensors().stream().noneMatch(t -> t.name().endsWith(".bias")));
        JsonNode c = JSON.readTree(m.configJson());
        assertEquals(500000.0, c.get("rope_theta").asDouble(), "transformers 4.x style keys");
        assertEquals("llama3", c.at("/rope_scaling/rope_type").asText());
        assertEquals(70_553_706_496L, ExampleModel.of(ExamplePreset.LLAMA3_70B, 80, 0).architecture().parameterCount());
    }

    @Test
    void tinyUsesTransformers5RopeParameters() throws IOException {
        JsonNode c = JSON.readTree(ExampleModel.of(ExamplePreset.TINY, null, 0).configJson());
        assertTrue(c.has("rope_parameters"));
        assertFalse(c.has("rope_theta"));
        assertEquals(4, c.get("num_hidden_layers").asInt());
    }

    private static void assertLinear(LinearSpec l, long in, long out, boolean bias) {
        assertEquals(in, l.inFeatures(), l.key());
        assertEquals(out, l.outFeatures(), l.key());
        assertEquals(bias, l.hasBias(), l.key());
    }
}
