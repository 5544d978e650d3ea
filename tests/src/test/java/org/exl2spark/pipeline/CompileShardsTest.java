package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.cli.Cli;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/**
 * Compile writes one shard per task: a small {@code -ss} gives several shards, each listed in the index and the
 * manifest with its real checksum, holding exactly the tensors of the single-shard output.
 */
class CompileShardsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void smallShardSizeSplitsTheSameTensorsOverSeveralShards() throws Exception {
        Path single = Conversions.exampleBaseline();
        Path cf = SharedData.scratch("compile-shards").resolve("out");
        // the baseline's job directory: everything but compile is done and skipped
        List<String> args = new ArrayList<>(Conversions.exampleArgs(single.resolveSibling("job"), cf, "local[2]"));
        args.addAll(List.of("-ss", "1"));
        Cli.Result r = Conversions.exl2(args).ok();
        assertTrue(r.out().contains("compile 4.0bpw (3 shards): 3 tasks"), r.out());

        List<String> shards;
        try (Stream<Path> files = Files.list(cf)) {
            shards = files.map(p -> p.getFileName().toString())
                    .filter(n -> n.matches("output-\\d{5}-of-00003\\.safetensors")).sorted().toList();
        }
        assertEquals(List.of("output-00001-of-00003.safetensors", "output-00002-of-00003.safetensors",
                "output-00003-of-00003.safetensors"), shards);

        Map<String, byte[]> expected = tensors(single.resolve("output.safetensors"));
        Map<String, byte[]> actual = new LinkedHashMap<>();
        JsonNode weightMap = JSON.readTree(cf.resolve("output.safetensors.index.json").toFile()).get("weight_map");
        for (String shard : shards) {
            Map<String, byte[]> inShard = tensors(cf.resolve(shard));
            inShard.keySet().forEach(name -> assertEquals(shard, weightMap.path(name).asText(), "index entry of " + name));
            actual.putAll(inShard);
        }
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()), "tensors, in module order");
        expected.forEach((name, bytes) -> assertTrue(java.util.Arrays.equals(bytes, actual.get(name)), name));
        assertEquals(expected.size(), weightMap.size());

        JsonNode manifest = JSON.readTree(cf.resolve(CompilePass.MANIFEST).toFile()).get("files");
        for (String shard : shards) {
            assertEquals(Conversions.sha256(cf.resolve(shard)), manifest.path(shard).path("sha256").asText(), shard);
            assertEquals(Files.size(cf.resolve(shard)), manifest.path(shard).path("bytes").asLong(), shard);
        }
    }

    /** Every tensor's bytes, in file order. */
    private static Map<String, byte[]> tensors(Path file) throws Exception {
        Map<String, byte[]> out = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file.toString(), new Configuration())) {
            List<TensorInfo> inOrder = new ArrayList<>(f.tensors().values());
            inOrder.sort((a, b) -> Long.compare(a.begin(), b.begin()));
            for (TensorInfo t : inOrder) {
                java.nio.ByteBuffer b = f.readTensor(t);
                byte[] bytes = new byte[b.remaining()];
                b.get(bytes);
                out.put(t.name(), bytes);
            }
        }
        return out;
    }
}
