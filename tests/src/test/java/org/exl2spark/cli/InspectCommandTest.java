package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.io.DType;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

class InspectCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void reportsTheSharedTinyModel() {
        String out = Cli.run("inspect", SharedData.tinyModel().toString()).ok().out();
        assertTrue(out.contains("Parameters             15,735,168 from config.json; the tensors hold 15,735,168 (equal)"),
                out);
        assertTrue(out.contains("LlamaForCausalLM"), out);
        assertTrue(out.contains("6 query, 2 key/value (GQA, 3 per KV head), head_dim 64"), out);
        assertTrue(out.contains("RoPE                 default, theta 10000"), out);
        assertTrue(out.contains("layers 1-7 have the same shapes"), out);
        assertLinear(out, "self_attn.q_proj", 384, 384);
        assertLinear(out, "self_attn.k_proj", 384, 128);
        assertLinear(out, "self_attn.v_proj", 384, 128);
        assertLinear(out, "self_attn.o_proj", 384, 384);
        assertLinear(out, "mlp.gate_proj", 384, 1024);
        assertLinear(out, "mlp.up_proj", 384, 1024);
        assertLinear(out, "mlp.down_proj", 1024, 384);
        assertLinear(out, "lm_head", 384, 4096);
        assertTrue(out.contains("F16: 75 tensors, 15,735,168 parameters"), out);
        assertTrue(out.contains("3 files, 31,478,456 bytes (30.0 MiB)"), out);
        assertTrue(out.contains("model-00001-of-00003.safetensors         13,377,432 bytes (12.8 MiB), 32 tensors"), out);
        assertTrue(out.contains("Problems               none"), out);
    }

    private static void assertLinear(String report, String name, int in, int out) {
        String row = String.format("  %-18s %9d %9d  %-16s no    F16", name, in, out, "[" + out + ", " + in + "]");
        assertTrue(report.contains(row), () -> "no row '" + row + "' in\n" + report);
    }

    @Test
    void jsonReportHasTheSameFacts() throws IOException {
        JsonNode r = JSON.readTree(Cli.run("inspect", "--json", SharedData.tinyModel().toString()).ok().out());
        assertEquals(15_735_168L, r.at("/parameters/from_config").asLong());
        assertEquals(15_735_168L, r.at("/parameters/in_tensors").asLong());
        assertEquals("LlamaForCausalLM", r.at("/architecture/architecture").asText());
        assertEquals(8, r.at("/architecture/num_hidden_layers").asInt());
        assertEquals(2, r.at("/architecture/num_key_value_heads").asInt());
        assertEquals(10000.0, r.at("/architecture/rope/rope_theta").asDouble());
        JsonNode down = r.at("/linears/6");
        assertEquals("mlp.down_proj", down.get("name").asText());
        assertEquals(1024, down.get("in_features").asInt());
        assertEquals(384, down.get("out_features").asInt());
        assertEquals(3, r.get("shards").size());
        long total = 0;
        for (JsonNode s : r.get("shards")) {
            long onDisk = Files.size(SharedData.tinyModel().resolve(s.get("name").asText()));
            assertEquals(onDisk, s.get("bytes").asLong(), s.get("name").asText());
            total += onDisk;
        }
        assertEquals(total, r.get("total_bytes").asLong());
        assertEquals(75, r.at("/dtypes/F16/tensors").asInt());
        assertEquals(0, r.get("problems").size());
    }

    @Test
    void misShapedTensorsAreNamed() throws IOException {
        Path model = tinyWithConfig("misshaped", c -> c.put("intermediate_size", 1000));
        Cli.Result r = Cli.run("inspect", model.toString());
        String line = r.oneLineError(1, "exl2 inspect");
        assertTrue(line.contains("24 tensor problems: tensor model.layers.0.mlp.gate_proj.weight has shape [1024, 384],"
                + " config.json implies [1000, 384]"), line);
        assertTrue(line.endsWith("; and 21 more (listed above)"), line);
        assertTrue(r.out().contains("Problems               24"), r.out());
        assertTrue(r.out().contains("tensor model.layers.7.mlp.down_proj.weight has shape [384, 1024], config.json"
                + " implies [384, 1000]"), r.out());
    }

    @Test
    void missingTensorsAreNamed() throws IOException {
        Path model = tinyWithConfig("missing", c -> c.put("num_hidden_layers", 9));
        Cli.Result r = Cli.run("inspect", model.toString());
        String line = r.oneLineError(1, "exl2 inspect");
        assertTrue(line.contains("9 tensor problems: missing tensor model.layers.8.input_layernorm.weight [384]; missing"
                + " tensor model.layers.8.self_attn.q_proj.weight [384, 384]"), line);
        assertTrue(r.out().contains("missing tensor model.layers.8.mlp.down_proj.weight [384, 1024]"), r.out());
    }

    @Test
    void unexpectedTensorsAreNamed() throws IOException {
        Path model = tinyWithConfig("extra", c -> c.put("tie_word_embeddings", true));
        String line = Cli.run("inspect", model.toString()).oneLineError(1, "exl2 inspect");
        assertTrue(line.endsWith(": 1 tensor problem: unexpected tensor lm_head.weight [4096, 384] (not part of a"
                + " LlamaForCausalLM with this config.json)"), line);
    }

    @Test
    void rotaryBuffersOfOlderCheckpointsAreIgnored() throws IOException {
        ExampleModel tiny = ExampleModel.of(ExamplePreset.TINY, 1, 0);
        List<TensorSpec> tensors = new ArrayList<>(tiny.tensors());
        tensors.add(new TensorSpec("model.layers.0.self_attn.rotary_emb.inv_freq", DType.F32, new long[] {32}));
        Path dir = SharedData.scratch("rotary");
        Files.write(dir.resolve("config.json"), tiny.configJson());
        FileSystem fs = FileSystem.getLocal(new Configuration()).getRawFileSystem();
        SafetensorsWriter.writeFile(fs, new org.apache.hadoop.fs.Path(dir.resolve("model.safetensors").toUri()),
                tensors, null, (t, out) -> out.write(new byte[(int) t.byteSize()]));
        String out = Cli.run("inspect", dir.toString()).ok().out();
        assertTrue(out.contains("Ignored                1 rotary buffers (recomputed from config.json), e.g."
                + " model.layers.0.self_attn.rotary_emb.inv_freq"), out);
        long parameters = tiny.architecture().parameterCount();
        assertTrue(out.contains(String.format("the tensors hold %,d (equal)", parameters)), out);
    }

    /** The shared tiny model's shards and index (linked, not copied) with an edited config.json. */
    static Path tinyWithConfig(String name, Consumer<ObjectNode> edit) throws IOException {
        Path dir = SharedData.scratch(name);
        try (Stream<Path> files = Files.list(SharedData.tinyModel())) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (!f.getFileName().toString().equals("config.json")) {
                    Files.createSymbolicLink(dir.resolve(f.getFileName()), f);
                }
            }
        }
        ObjectNode config = (ObjectNode) JSON.readTree(SharedData.tinyModel().resolve("config.json").toFile());
        edit.accept(config);
        JSON.writeValue(dir.resolve("config.json").toFile(), config);
        return dir;
    }
}
