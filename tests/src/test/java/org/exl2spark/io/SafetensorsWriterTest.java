package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.testing.HadoopFiles;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** planShards, and the writer's file layout and failure handling on the local file system. */
class SafetensorsWriterTest {
    private static final Configuration CONF = new Configuration();
    private FileSystem fs;
    private Path dir;

    @BeforeEach
    void scratch(@TempDir java.nio.file.Path tmp) throws IOException {
        fs = FileSystem.getLocal(CONF);
        dir = new Path(tmp.toUri());
    }

    private static TensorSpec u8(String name, long bytes) {
        return new TensorSpec(name, DType.U8, new long[] {bytes});
    }

    private static List<List<String>> names(List<List<TensorSpec>> shards) {
        List<List<String>> out = new ArrayList<>();
        for (List<TensorSpec> s : shards) {
            out.add(s.stream().map(TensorSpec::name).toList());
        }
        return out;
    }

    // ---- planShards ------------------------------------------------------------------------------------------

    @Test
    void shardsFillInOrderUpToTheLimit() {
        List<TensorSpec> t = List.of(u8("a", 40), u8("b", 60), u8("c", 1), u8("d", 99), u8("e", 100), u8("f", 0));
        assertEquals(List.of(List.of("a", "b"), List.of("c", "d"), List.of("e", "f")),
                names(SafetensorsWriter.planShards(t, 100)));
        // sizes count bytes, not elements
        List<TensorSpec> f32 = List.of(new TensorSpec("x", DType.F32, new long[] {10, 3}),
                new TensorSpec("y", DType.F32, new long[] {1}));
        assertEquals(List.of(List.of("x"), List.of("y")), names(SafetensorsWriter.planShards(f32, 120)));
        assertEquals(List.of(List.of("x", "y")), names(SafetensorsWriter.planShards(f32, 124)));
    }

    @Test
    void aTensorOverTheLimitGetsAShardOfItsOwn() {
        List<TensorSpec> t = List.of(u8("a", 10), u8("huge", 1000), u8("b", 10), u8("c", 10));
        assertEquals(List.of(List.of("a"), List.of("huge"), List.of("b", "c")),
                names(SafetensorsWriter.planShards(t, 25)));
        assertEquals(List.of(List.of("huge")), names(SafetensorsWriter.planShards(List.of(u8("huge", 1000)), 1)));
    }

    @Test
    void planKeepsEveryTensorOnceAndInOrder() {
        List<TensorSpec> t = new ArrayList<>();
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        for (int i = 0; i < 500; i++) {
            t.add(u8("t" + i, r.nextInt(0, 300)));
        }
        for (long limit : new long[] {1, 50, 299, 300, 1000, 1L << 40}) {
            List<List<TensorSpec>> plan = SafetensorsWriter.planShards(t, limit);
            assertEquals(t, plan.stream().flatMap(List::stream).toList(), "limit " + limit);
            for (List<TensorSpec> shard : plan) {
                long bytes = shard.stream().mapToLong(TensorSpec::byteSize).sum();
                assertFalse(shard.isEmpty());
                assertTrue(bytes <= limit || shard.size() == 1, "limit " + limit + ": shard of " + bytes);
            }
            // greedy: no shard could have taken the next shard's first tensor
            for (int i = 0; i + 1 < plan.size(); i++) {
                long bytes = plan.get(i).stream().mapToLong(TensorSpec::byteSize).sum();
                assertTrue(bytes + plan.get(i + 1).get(0).byteSize() > limit, "limit " + limit + " shard " + i);
            }
        }
    }

    @Test
    void hundredBillionParameterSizesDoNotOverflow() {
        // 80 layers of 7 bf16 matrices of 28672^2 (1.64 GB each, 920 GB in all) in shards of 5 GB: three per shard
        List<TensorSpec> t = new ArrayList<>();
        for (int i = 0; i < 560; i++) {
            t.add(new TensorSpec("w" + i, DType.BF16, new long[] {28_672, 28_672}));
        }
        assertEquals(1_644_167_168L, t.get(0).byteSize());
        List<List<TensorSpec>> plan = SafetensorsWriter.planShards(t, 5_000_000_000L);
        assertEquals(187, plan.size());
        assertEquals(3, plan.get(0).size());
        assertEquals(2, plan.get(186).size());
        assertEquals(560 * 1_644_167_168L, plan.stream().flatMap(List::stream).mapToLong(TensorSpec::byteSize).sum());
    }

    @Test
    void emptyPlanAndBadLimit() {
        assertEquals(List.of(List.of()), SafetensorsWriter.planShards(List.of(), 10));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.planShards(List.of(u8("a", 1)), 0));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.planShards(List.of(u8("a", 1)), -5));
    }

    // ---- files ------------------------------------------------------------------------------------------------

    @Test
    void headerIsPaddedAndDataAligned() throws IOException {
        Path file = new Path(dir, "x.safetensors");
        List<TensorSpec> specs = List.of(new TensorSpec("a", DType.F32, new long[] {3}), u8("b", 5),
                new TensorSpec("c", DType.BF16, new long[] {2, 2}));
        long written = SafetensorsWriter.writeFile(fs, file, specs, Map.of("format", "pt"),
                (t, out) -> out.write(new byte[(int) t.byteSize()]));
        byte[] raw = Files.readAllBytes(java.nio.file.Paths.get(file.toUri()));
        assertEquals(written, raw.length);
        long headerLen = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLen % 8);
        assertEquals(8 + headerLen + 12 + 5 + 8, raw.length);
        String header = new String(raw, 8, (int) headerLen, java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"},\"a\":"), header);
        try (SafetensorsFile f = SafetensorsFile.open(file, CONF)) {
            assertEquals(List.of("a", "b", "c"), List.copyOf(f.tensors().keySet()));
            assertEquals(12, f.tensor("b").begin());
            assertEquals(17, f.tensor("c").begin());
        }
    }

    @Test
    void singleShardHasNoIndexAndReplacesAStaleOne() throws IOException {
        List<TensorSpec> specs = List.of(u8("a", 10), u8("b", 10), u8("c", 10));
        SafetensorsWriter.TensorData zeros = (t, out) -> out.write(new byte[(int) t.byteSize()]);
        Map<String, String> sharded = SafetensorsWriter.writeSharded(fs, dir, "model", specs, 15, Map.of(), zeros);
        assertEquals(Set.of("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                "model-00003-of-00003.safetensors"), Set.copyOf(sharded.values()));
        assertTrue(fs.exists(new Path(dir, ModelDirectory.INDEX)));

        Map<String, String> single = SafetensorsWriter.writeSharded(fs, dir, "model", specs, 100, Map.of(), zeros);
        assertEquals(Map.of("a", "model.safetensors", "b", "model.safetensors", "c", "model.safetensors"), single);
        assertFalse(fs.exists(new Path(dir, ModelDirectory.INDEX)), "stale index removed");
        try (ModelDirectory m = ModelDirectory.open(dir, CONF)) {
            assertEquals(Set.of(ModelDirectory.SINGLE), m.shards().keySet());
        }
    }

    @Test
    void duplicateNamesAreRefusedBeforeWriting() throws IOException {
        List<TensorSpec> specs = List.of(u8("a", 10), u8("b", 10), u8("a", 10));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter
                .writeSharded(fs, dir, "model", specs, 10, Map.of(), (t, out) -> out.write(new byte[10])));
        assertTrue(e.getMessage().contains("duplicate tensor name 'a'"), e.getMessage());
        assertEquals(Set.of(), HadoopFiles.names(fs, dir));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.writeFile(fs, new Path(dir, "x"),
                List.of(u8("__metadata__", 1)), Map.of(), (t, out) -> out.write(1)));
    }

    @Test
    void tooManyBytesFromTheSourceFailAndLeaveNothing() throws IOException {
        Path file = new Path(dir, "x.safetensors");
        IOException e = assertThrows(IOException.class, () -> SafetensorsWriter.writeFile(fs, file,
                List.of(u8("a", 4), u8("b", 4)), Map.of(), (t, out) -> out.write(new byte[5])));
        assertTrue(e.getMessage().contains("tensor 'a' supplied 5 bytes, expected 4"), e.getMessage());
        assertFalse(fs.exists(file));
        try (Stream<java.nio.file.Path> left = Files.list(java.nio.file.Paths.get(dir.toUri()))) {
            assertEquals(List.of(), left.toList(), "no temporary file or checksum left");
        }
    }
}
