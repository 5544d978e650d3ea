package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.s3a.S3AFileSystem;
import org.apache.hadoop.fs.statistics.IOStatisticsSource;
import org.exl2spark.testing.HadoopFiles;
import org.exl2spark.testing.MiniHdfs;
import org.exl2spark.testing.S3ProxyServer;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The same model read and written on local disk, HDFS (MiniDFSCluster) and S3 (s3proxy) gives the same bytes. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CrossStorageTest {
    enum Store { LOCAL, HDFS, S3 }

    private static final long SHARD_BYTES = 4L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private static MiniHdfs hdfs;
    private static S3ProxyServer s3;
    private static java.nio.file.Path localRoot;
    private static final Map<Store, Path> roots = new EnumMap<>(Store.class);
    private static final Map<Store, Configuration> confs = new EnumMap<>(Store.class);

    @BeforeAll
    static void startStores() throws IOException {
        hdfs = new MiniHdfs();
        s3 = new S3ProxyServer();
        localRoot = SharedData.scratch("cross-storage");
        roots.put(Store.LOCAL, new Path(localRoot.toUri()));
        roots.put(Store.HDFS, hdfs.path("/cross"));
        roots.put(Store.S3, s3.path("cross"));
        confs.put(Store.LOCAL, new Configuration());
        confs.put(Store.HDFS, hdfs.configuration());
        confs.put(Store.S3, s3.configuration());
        HadoopFiles.copyDirectory(SharedData.tinyModel(), fs(Store.HDFS), tinyModel(Store.HDFS));
        HadoopFiles.copyDirectory(SharedData.tinyModel(), fs(Store.S3), tinyModel(Store.S3));
    }

    @AfterAll
    static void stopStores() throws IOException {
        try {
            deleteLocal(localRoot);
        } finally {
            try {
                if (s3 != null) {
                    s3.close();
                }
            } finally {
                if (hdfs != null) {
                    hdfs.close();
                }
            }
        }
    }

    private static FileSystem fs(Store store) throws IOException {
        return roots.get(store).getFileSystem(confs.get(store));
    }

    private static Path tinyModel(Store store) {
        return store == Store.LOCAL ? new Path(SharedData.tinyModel().toUri()) : new Path(roots.get(store), "tiny");
    }

    @Test
    void tinyModelReadsTheSameBytesFromEveryStore() throws IOException {
        java.nio.file.Path dir = SharedData.tinyModel();
        Map<Store, ModelDirectory> models = new EnumMap<>(Store.class);
        try {
            for (Store s : Store.values()) {
                models.put(s, ModelDirectory.open(tinyModel(s).toString(), confs.get(s)));
            }
            ModelDirectory local = models.get(Store.LOCAL);
            assertEquals(75, local.tensorLocations().size());
            MessageDigest all = HadoopFiles.sha256();
            for (Map.Entry<String, SafetensorsFile> e : local.tensorLocations().entrySet()) {
                String name = e.getKey();
                TensorInfo t = local.tensor(name);
                // the bytes at the header's offsets, read without our reader
                byte[] expected = rawBytes(dir.resolve(e.getValue().path().getName()), t.fileOffset(), t.byteSize());
                all.update(expected);
                for (Store s : Store.values()) {
                    ModelDirectory m = models.get(s);
                    assertEquals(t, m.tensor(name), s + " " + name);
                    assertEquals(e.getValue().path().getName(), m.shardOf(name).path().getName(), s + " " + name);
                    ByteBuffer got = m.readTensor(name);
                    assertArrayEquals(expected, toArray(got), s + " " + name);
                    assertArrayEquals(local.readFloats(name), m.readFloats(name), s + " " + name);
                }
            }
            // all 75 tensors, 31,470,336 bytes as the index's total_size says, hashed in index order
            assertEquals(31_470_336L, local.tensorLocations().keySet().stream()
                    .mapToLong(n -> tensor(local, n).byteSize()).sum());
            String digest = HexFormat.of().formatHex(all.digest());
            for (Store s : Store.values()) {
                assertEquals(digest, sha256OfTensors(models.get(s)), s.toString());
                assertEquals(local.config(), models.get(s).config(), s.toString());
                assertEquals(local.architecture().parameterCount(), models.get(s).architecture().parameterCount());
            }
        } finally {
            for (ModelDirectory m : models.values()) {
                m.close();
            }
        }
    }

    @Test
    void directBufferRangesReadTheSameBytesOnEveryStore() throws IOException {
        for (Store s : Store.values()) {
            try (ModelDirectory local = ModelDirectory.open(tinyModel(Store.LOCAL), confs.get(Store.LOCAL));
                    ModelDirectory m = ModelDirectory.open(tinyModel(s), confs.get(s))) {
                String name = "model.embed_tokens.weight"; // 3 MiB
                byte[] whole = toArray(local.readTensor(name));
                for (long[] range : new long[][] {{0, 1}, {1, 4097}, {123_457, 1_000_003}, {whole.length - 5, 5}}) {
                    ByteBuffer direct = ByteBuffer.allocateDirect((int) range[1]);
                    m.readRange(name, range[0], direct);
                    assertFalse(direct.hasRemaining());
                    byte[] got = toArray(direct.flip());
                    byte[] want = java.util.Arrays.copyOfRange(whole, (int) range[0], (int) (range[0] + range[1]));
                    assertArrayEquals(want, got, s + " range " + range[0] + "+" + range[1]);
                }
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> m.readRange(name, whole.length - 4, ByteBuffer.allocateDirect(5)));
                assertTrue(e.getMessage().contains("outside tensor '" + name + "'"), e.getMessage());
            }
        }
    }

    /** One open model serves several threads (as one executor's tasks share it), each getting its own bytes. */
    @Test
    void concurrentReadsFromOneOpenModelGetTheRightBytes() throws Exception {
        Map<String, byte[]> expected = new LinkedHashMap<>();
        try (ModelDirectory local = ModelDirectory.open(tinyModel(Store.LOCAL), confs.get(Store.LOCAL))) {
            for (String name : local.tensorLocations().keySet()) {
                expected.put(name, toArray(local.readTensor(name)));
            }
        }
        List<String> names = List.copyOf(expected.keySet());
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            for (Store s : Store.values()) {
                try (ModelDirectory m = ModelDirectory.open(tinyModel(s), confs.get(s))) {
                    List<Future<Integer>> done = new ArrayList<>();
                    for (int thread = 0; thread < 4; thread++) {
                        long seed = thread;
                        done.add(pool.submit(() -> {
                            SplittableRandom r = new SplittableRandom(seed);
                            for (int i = 0; i < 40; i++) {
                                String name = names.get(r.nextInt(names.size()));
                                byte[] want = expected.get(name);
                                int from = r.nextInt(want.length);
                                int len = r.nextInt(1, Math.min(want.length - from, 300_000) + 1);
                                ByteBuffer b = r.nextBoolean() ? ByteBuffer.allocate(len)
                                        : ByteBuffer.allocateDirect(len);
                                m.readRange(name, from, b);
                                assertArrayEquals(java.util.Arrays.copyOfRange(want, from, from + len),
                                        toArray(b.flip()), s + " " + name + " [" + from + ", +" + len + ")");
                            }
                            return 40;
                        }));
                    }
                    for (Future<Integer> f : done) {
                        assertEquals(40, f.get(60, TimeUnit.SECONDS));
                    }
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shardedWritesRoundTripOnEveryStore() throws IOException {
        try (ModelDirectory source = ModelDirectory.open(tinyModel(Store.LOCAL), confs.get(Store.LOCAL))) {
            List<TensorSpec> specs = specsOf(source);
            int expectedShards = SafetensorsWriter.planShards(specs, SHARD_BYTES).size();
            assertTrue(expectedShards >= 5, "shard size should give several shards, got " + expectedShards);
            Map<Store, Map<String, String>> hashes = new EnumMap<>(Store.class);
            for (Store s : Store.values()) {
                FileSystem fs = fs(s);
                Path dir = new Path(roots.get(s), "written");
                Map<String, String> weightMap = SafetensorsWriter.writeSharded(fs, dir, "model", specs, SHARD_BYTES,
                        Map.of("format", "pt"), copyFrom(source));

                Set<String> expectedNames = new TreeSet<>(weightMap.values());
                assertEquals(expectedShards, expectedNames.size(), s.toString());
                expectedNames.add(ModelDirectory.INDEX);
                assertEquals(expectedNames, HadoopFiles.names(fs, dir), s + ": exactly the shards and the index");
                assertNoTemporaryFiles(s, fs, dir);

                JsonNode index = JSON.readTree(ModelDirectory.readSmallFile(fs, new Path(dir, ModelDirectory.INDEX)));
                assertEquals(31_470_336L, index.get("metadata").get("total_size").asLong(), s.toString());
                Map<String, String> indexed = new LinkedHashMap<>();
                index.get("weight_map").properties().forEach(e -> indexed.put(e.getKey(), e.getValue().asText()));
                assertEquals(weightMap, indexed, s.toString());

                try (ModelDirectory back = ModelDirectory.open(dir, confs.get(s))) {
                    assertEquals(List.copyOf(source.tensorLocations().keySet()),
                            List.copyOf(back.tensorLocations().keySet()), s + ": tensors in the same order");
                    for (String name : source.tensorLocations().keySet()) {
                        TensorInfo t = back.tensor(name);
                        assertEquals(source.tensor(name).dtype(), t.dtype(), s + " " + name);
                        assertArrayEquals(source.tensor(name).shape(), t.shape(), s + " " + name);
                        assertEquals(0, t.fileOffset() % 8, s + " " + name + ": data is 8-byte aligned");
                        assertEquals(source.readTensor(name), back.readTensor(name), s + " " + name);
                        assertEquals(weightMap.get(name), back.shardOf(name).path().getName(), s + " " + name);
                    }
                    for (SafetensorsFile shard : back.shards().values()) {
                        assertEquals(Map.of("format", "pt"), shard.metadata(), s + " " + shard);
                    }
                }
                Map<String, String> h = new LinkedHashMap<>();
                for (String name : new TreeSet<>(weightMap.values())) {
                    h.put(name, HadoopFiles.sha256(fs, new Path(dir, name)));
                }
                hashes.put(s, h);
            }
            assertEquals(hashes.get(Store.LOCAL), hashes.get(Store.HDFS), "same files on local disk and HDFS");
            assertEquals(hashes.get(Store.LOCAL), hashes.get(Store.S3), "same files on local disk and S3");
        }
    }

    @Test
    void failedWritesPublishNothingOnEveryStore() throws IOException {
        try (ModelDirectory source = ModelDirectory.open(tinyModel(Store.LOCAL), confs.get(Store.LOCAL))) {
            List<TensorSpec> specs = specsOf(source);
            List<List<TensorSpec>> plan = SafetensorsWriter.planShards(specs, SHARD_BYTES);
            String failing = plan.get(1).get(plan.get(1).size() - 1).name();
            SafetensorsWriter.TensorData good = copyFrom(source);
            for (Store s : Store.values()) {
                FileSystem fs = fs(s);
                Path dir = new Path(roots.get(s), "failed");
                // the data source dies half way through the last tensor of the second shard
                IOException e = assertThrows(IOException.class, () -> SafetensorsWriter.writeSharded(fs, dir,
                        "model", specs, SHARD_BYTES, Map.of(), (t, out) -> {
                            if (t.name().equals(failing)) {
                                out.write(new byte[(int) (t.byteSize() / 2)]);
                                throw new IOException("source went away");
                            }
                            good.writeTo(t, out);
                        }), s.toString());
                assertEquals("source went away", e.getMessage());
                assertEquals(Set.of(String.format("model-00001-of-%05d.safetensors", plan.size())),
                        HadoopFiles.names(fs, dir), s + ": only the first, complete shard; no index");
                assertNoTemporaryFiles(s, fs, dir);

                // a source that supplies too few bytes is caught before the file is published
                Path single = new Path(dir, "short.safetensors");
                TensorSpec spec = new TensorSpec("w", DType.F16, new long[] {4, 4});
                IOException shortData = assertThrows(IOException.class, () -> SafetensorsWriter.writeFile(fs, single,
                        List.of(spec), Map.of(), (t, out) -> out.write(new byte[30])), s.toString());
                assertTrue(shortData.getMessage().contains("tensor 'w' supplied 30 bytes, expected 32"),
                        shortData.getMessage());
                assertFalse(fs.exists(single), s + ": nothing published");
                assertNoTemporaryFiles(s, fs, dir);

                // a file past the multipart threshold: parts are already uploaded when the source fails
                Path big = new Path(dir, "big.safetensors");
                TensorSpec bigSpec = new TensorSpec("w", DType.F16, new long[] {6, 1 << 20});
                IOException late = assertThrows(IOException.class, () -> SafetensorsWriter.writeFile(fs, big,
                        List.of(bigSpec), Map.of(), (t, out) -> {
                            out.write(new byte[11 << 20]);
                            out.flush();
                            if (s == Store.S3) {
                                assertFalse(pendingUploads(fs, dir).isEmpty(), "upload in progress");
                            }
                            throw new IOException("late failure");
                        }), s.toString());
                assertEquals("late failure", late.getMessage());
                assertFalse(fs.exists(big), s + ": nothing published");
                assertNoTemporaryFiles(s, fs, dir);
                if (s == Store.S3) {
                    assertEquals(List.of(), pendingUploads(fs, dir), "the multipart upload was aborted");
                }
            }
        }
    }

    @Test
    void rewritingReplacesFilesWhole() throws IOException {
        for (Store s : Store.values()) {
            FileSystem fs = fs(s);
            Path file = new Path(new Path(roots.get(s), "rewrite"), "config.json");
            SafetensorsWriter.writeSmallFile(fs, file, "{\"a\":1}".getBytes());
            SafetensorsWriter.writeSmallFile(fs, file, "{\"b\":22}".getBytes());
            assertEquals("{\"b\":22}", new String(ModelDirectory.readSmallFile(fs, file)), s.toString());
            assertEquals(Set.of("config.json"), HadoopFiles.names(fs, file.getParent()), s.toString());
        }
    }

    /**
     * Opening a model on an object store costs a fixed number of requests plus about one per shard, not one per
     * tensor (a 100B model has thousands of tensors; each S3 request is tens of milliseconds). Counted with S3A's own
     * statistics, with both input streams of Hadoop 3.5: "analytics" (the default, which prefetches and caches) and
     * "classic". Each gets a fresh bucket, hence a fresh client with cold caches.
     */
    @ParameterizedTest
    @ValueSource(strings = {"analytics", "classic"})
    void openingOnS3CostsRequestsPerShardNotPerTensor(String streamType) throws IOException {
        String bucket = s3.createBucket(streamType);
        Configuration conf = s3.configuration();
        conf.set("fs.s3a.bucket." + bucket + ".input.stream.type", streamType);
        Path model = new Path("s3a://" + bucket + "/tiny");
        FileSystem fs = model.getFileSystem(conf);
        HadoopFiles.copyDirectory(SharedData.tinyModel(), fs, model);
        String tensor = "model.layers.3.mlp.up_proj.weight";

        // S3A adds a stream's GETs to the client's statistics when the stream closes: count whole sessions
        Map<String, Long> opened = requestsOf(fs, model, conf, m -> m.config());
        assertEquals(1L, opened.get("object_list_request"), "one listing: " + opened);
        assertEquals(0L, opened.get("object_metadata_request"), "no HEAD per shard: " + opened);
        // index + config + one header read per shard (each header fits the prefetch), whatever the tensor count
        assertEquals(2L + 3, opened.get("action_http_get_request"), "GETs: " + opened);

        Map<String, Long> openedAndRead = requestsOf(fs, model, conf, m -> {
            m.config();
            m.readTensor(tensor);
        });
        Map<String, Long> read = delta(opened, openedAndRead);
        assertEquals(0L, read.get("object_list_request") + read.get("object_metadata_request"), read.toString());
        if (streamType.equals("classic")) {
            assertEquals(1L, read.get("action_http_get_request"), "a tensor read is one ranged GET: " + read);
        } else {
            // the analytics stream caches what it read: the second session may need fewer GETs in all
            assertTrue(read.get("action_http_get_request") <= 1, "at most one GET for a tensor: " + read);
        }
    }

    private interface ModelUse {
        void accept(ModelDirectory m) throws IOException;
    }

    private static Map<String, Long> requestsOf(FileSystem fs, Path model, Configuration conf, ModelUse use)
            throws IOException {
        Map<String, Long> before = s3Requests(fs);
        try (ModelDirectory m = ModelDirectory.open(model, conf)) {
            assertEquals(3, m.shards().size());
            use.accept(m);
        }
        return delta(before, s3Requests(fs));
    }

    private static List<String> pendingUploads(FileSystem fs, Path dir) throws IOException {
        List<String> keys = new ArrayList<>();
        for (var u : ((S3AFileSystem) fs).listMultipartUploads(dir.toUri().getPath().substring(1) + "/")) {
            keys.add(u.key());
        }
        return keys;
    }

    private static Map<String, Long> s3Requests(FileSystem fs) {
        Map<String, Long> m = new LinkedHashMap<>();
        // the client's own counters (its StorageStatistics can be another instance's, shared by name)
        Map<String, Long> counters = ((IOStatisticsSource) fs).getIOStatistics().counters();
        for (String k : List.of("object_list_request", "object_metadata_request", "action_http_get_request")) {
            m.put(k, counters.getOrDefault(k, 0L));
        }
        return m;
    }

    private static Map<String, Long> delta(Map<String, Long> before, Map<String, Long> after) {
        Map<String, Long> d = new LinkedHashMap<>();
        after.forEach((k, v) -> d.put(k, v - before.get(k)));
        return d;
    }

    private static void assertNoTemporaryFiles(Store s, FileSystem fs, Path dir) throws IOException {
        for (String name : HadoopFiles.names(fs, dir)) {
            assertFalse(SafetensorsWriter.isTemporary(name), s + ": temporary file left: " + name);
        }
        if (s == Store.LOCAL) {
            // Hadoop's listing hides dot files of checksums; look at the disk itself
            try (Stream<java.nio.file.Path> all = Files.list(Paths.get(dir.toUri()))) {
                all.forEach(p -> assertFalse(SafetensorsWriter.isTemporary(p.getFileName().toString()),
                        "temporary file left: " + p));
            }
        }
        if (s == Store.S3) {
            // the filesystem backend keeps each object, and each pending multipart part, as a file
            java.nio.file.Path onDisk = s3.bucketDir().resolve(dir.toUri().getPath().substring(1));
            Set<String> stored = new TreeSet<>();
            try (Stream<java.nio.file.Path> all = Files.list(onDisk)) {
                all.forEach(p -> stored.add(p.getFileName().toString()));
            }
            assertEquals(HadoopFiles.names(fs, dir), stored, "objects stored by s3proxy under " + onDisk);
        }
    }

    private static List<TensorSpec> specsOf(ModelDirectory m) {
        List<TensorSpec> specs = new ArrayList<>();
        for (String name : m.tensorLocations().keySet()) {
            TensorInfo t = tensor(m, name);
            specs.add(new TensorSpec(name, t.dtype(), t.shape()));
        }
        return specs;
    }

    /** Streams each tensor from the source model in 1 MiB ranges, as the compile step will. */
    private static SafetensorsWriter.TensorData copyFrom(ModelDirectory source) {
        return (spec, out) -> {
            SafetensorsFile f = source.shardOf(spec.name());
            TensorInfo t = f.tensor(spec.name());
            ByteBuffer buf = ByteBuffer.allocate(1 << 20);
            for (long off = 0; off < t.byteSize(); ) {
                int n = (int) Math.min(buf.capacity(), t.byteSize() - off);
                buf.clear().limit(n);
                f.readRange(t, off, buf);
                out.write(buf.array(), 0, n);
                off += n;
            }
        };
    }

    private static TensorInfo tensor(ModelDirectory m, String name) {
        try {
            return m.tensor(name);
        } catch (ModelFormatException e) {
            throw new AssertionError(e);
        }
    }

    private static String sha256OfTensors(ModelDirectory m) throws IOException {
        MessageDigest md = HadoopFiles.sha256();
        for (String name : m.tensorLocations().keySet()) {
            md.update(m.readTensor(name));
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static byte[] rawBytes(java.nio.file.Path file, long offset, long length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate((int) length);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            while (b.hasRemaining()) {
                if (ch.read(b, offset + b.position()) < 0) {
                    throw new IOException("short file " + file);
                }
            }
        }
        return b.array();
    }

    private static byte[] toArray(ByteBuffer b) {
        byte[] a = new byte[b.remaining()];
        b.duplicate().get(a);
        return a;
    }

    private static void deleteLocal(java.nio.file.Path dir) throws IOException {
        if (dir == null) {
            return;
        }
        try (Stream<java.nio.file.Path> all = Files.walk(dir)) {
            for (java.nio.file.Path p : (Iterable<java.nio.file.Path>) all.sorted(java.util.Comparator.reverseOrder())::iterator) {
                Files.delete(p);
            }
        }
    }
}
