package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Broken and hostile safetensors files and model directories: each must fail fast with a {@link ModelFormatException}
 * naming the file and the problem, never run out of memory, hang, or hand back the wrong bytes.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class MalformedFilesTest {
    private static final Configuration CONF = new Configuration();
    /** Under java.io.tmpdir, which the build points at tests/target/tmp; removed afterwards. */
    @TempDir
    static java.nio.file.Path dir;
    private static int counter;

    // ---- single files ------------------------------------------------------------------------------------------

    @Test
    void fileShorterThanTheLengthField() throws IOException {
        java.nio.file.Path f = write(new byte[] {8, 0, 0, 0, 0});
        expectFile(f, "5 bytes, shorter than the 8-byte header length");
        expectFile(write(new byte[0]), "0 bytes, shorter than the 8-byte header length");
    }

    @Test
    void headerLengthPastTheEndOfTheFile() throws IOException {
        expectFile(write(concat(le(1000), "{}".getBytes())), "header length 1000 runs past the end of the file (10 bytes");
    }

    @Test
    void truncatedHeader() throws IOException {
        // the file was cut inside the header: the length field promises more than there is
        byte[] whole = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]);
        expectFile(write(Arrays.copyOf(whole, 30)), "header length 54 runs past the end of the file (30 bytes");
        // the header itself stops mid-object (length consistent with the file)
        expectFile(write(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]", new byte[0])),
                "header is not valid JSON", "end-of-input");
    }

    @Test
    void hugeHeaderLengthsAreRefusedBeforeAllocating() throws IOException {
        expectFile(write(concat(le(1L << 60), new byte[64])), "header length 1152921504606846976 is outside 2..");
        expectFile(write(concat(le(-1L), new byte[64])), "header length 18446744073709551615 is outside 2..");
        expectFile(write(concat(le(SafetensorsFile.MAX_HEADER_BYTES + 1), new byte[64])),
                "header length 100000001 is outside 2..");
        expectFile(write(concat(le(0), new byte[64])), "header length 0 is outside 2..");
    }

    @Test
    void badJson() throws IOException {
        expectFile(write(file("{\"a\": nope}", new byte[0])), "header is not valid JSON", "nope");
        expectFile(write(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}} trailing",
                new byte[4])), "header is not valid JSON");
        expectFile(write(file("{} {}", new byte[0])), "header is not valid JSON", "after the top-level object");
        expectFile(write(file("{'a':1}", new byte[0])), "header is not valid JSON");
        expectFile(write(file("{\"w\":{\"x\":" + "[".repeat(5000), new byte[0])), "header is not valid JSON",
                "nesting depth");
    }

    @Test
    void headerNotAnObject() throws IOException {
        expectFile(write(file("[1, 2]", new byte[0])), "header is not a JSON object");
        expectFile(write(file("\"text\"", new byte[0])), "header is not a JSON object");
        expectFile(write(file("        ", new byte[0])), "header is not a JSON object");
        expectFile(write(file("{\"a\": [1]}", new byte[0])), "tensor 'a': entry is not an object");
    }

    @Test
    void nonUtf8Header() throws IOException {
        byte[] header = "{\"we\u00e9ght\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"
                .getBytes(StandardCharsets.ISO_8859_1);
        expectFile(write(concat(le(header.length), header, new byte[1])), "header is not valid UTF-8",
                "header byte 4");
    }

    @Test
    void unknownOrMissingDtype() throws IOException {
        expectFile(write(file(entry("w", "F17", "[2]", "[0,4]"), new byte[4])), "tensor 'w': unknown dtype 'F17'");
        expectFile(write(file(entry("w", "f16", "[2]", "[0,4]"), new byte[4])), "tensor 'w': unknown dtype 'f16'");
        expectFile(write(file("{\"w\":{\"shape\":[2],\"data_offsets\":[0,4]}}", new byte[4])), "tensor 'w': missing dtype");
        expectFile(write(file("{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,4]}}", new byte[4])),
                "tensor 'w': dtype is not a string");
    }

    @Test
    void shapeAndSizeDisagree() throws IOException {
        expectFile(write(file(entry("w", "F16", "[2, 3]", "[0, 10]"), new byte[10])),
                "tensor 'w': shape [2, 3] of F16 needs 12 bytes but data_offsets [0, 10] hold 10");
        expectFile(write(file(entry("w", "F32", "[4294967296, 4294967296]", "[0, 16]"), new byte[16])),
                "tensor 'w'", "needs more than 2^63 bytes");
        expectFile(write(file(entry("w", "I64", "[1152921504606846976, 2]", "[0, 16]"), new byte[16])),
                "tensor 'w'", "needs more than 2^63 bytes");
    }

    @ParameterizedTest
    @ValueSource(strings = {"[-1, 4]", "[1.5]", "[\"3\"]", "[18446744073709551616]", "[null]", "[[2]]", "[1e2]"})
    void shapeDimensionsMustBeNonNegativeIntegers(String shape) throws IOException {
        expectFile(write(file(entry("w", "U8", shape, "[0, 4]"), new byte[4])), "tensor 'w': shape has an element",
                "not a non-negative 64-bit integer");
    }

    @Test
    void shapeOrOffsetsNotArrays() throws IOException {
        expectFile(write(file(entry("w", "U8", "4", "[0, 4]"), new byte[4])), "tensor 'w': shape is not an array");
        expectFile(write(file(entry("w", "U8", "[4]", "\"0-4\""), new byte[4])),
                "tensor 'w': data_offsets is not an array");
        expectFile(write(file("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", new byte[4])),
                "tensor 'w': missing shape");
        expectFile(write(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[4]}}", new byte[4])),
                "tensor 'w': missing data_offsets");
        expectFile(write(file(entry("w", "U8", "[4]", "[0, 2, 4]"), new byte[4])),
                "tensor 'w': data_offsets [0, 2, 4] must be [begin, end]");
        expectFile(write(file(entry("w", "U8", "[4]", "[0.0, 4]"), new byte[4])),
                "tensor 'w': data_offsets has an element '0.0'");
        expectFile(write(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"shape\":[4],\"data_offsets\":[0,4]}}",
                new byte[4])), "tensor 'w': shape given twice");
    }

    @Test
    void offsetsOutOfRange() throws IOException {
        expectFile(write(file(entry("w", "U8", "[4]", "[8, 12]"), new byte[10])),
                "tensor 'w': data_offsets [8, 12] run past the end of the data section (10 bytes");
        expectFile(write(file(entry("w", "U8", "[4]", "[9223372036854775800, 9223372036854775804]"), new byte[4])),
                "tensor 'w': data_offsets", "run past the end of the data section (4 bytes");
        expectFile(write(file(entry("w", "U8", "[0]", "[6, 2]"), new byte[8])),
                "tensor 'w': data_offsets [6, 2] end before they begin");
        expectFile(write(file(entry("w", "U8", "[4]", "[-4, 0]"), new byte[8])),
                "tensor 'w': data_offsets has an element '-4'");
    }

    @Test
    void overlappingTensors() throws IOException {
        String header = "{" + body(entry("a", "F32", "[4]", "[0, 16]")) + ","
                + body(entry("b", "F32", "[2]", "[8, 16]")) + "}";
        expectFile(write(file(header, new byte[16])), "tensors 'a' [0, 16) and 'b' [8, 16) overlap");
        // same range twice: two names for the same bytes
        String twice = "{" + body(entry("a", "U8", "[4]", "[0, 4]")) + "," + body(entry("b", "U8", "[4]", "[0, 4]"))
                + "}";
        expectFile(write(file(twice, new byte[4])), "overlap");
    }

    @Test
    void duplicateNamesInTheHeader() throws IOException {
        String header = "{" + body(entry("w", "U8", "[4]", "[0, 4]")) + "," + body(entry("w", "U8", "[4]", "[4, 8]"))
                + "}";
        expectFile(write(file(header, new byte[8])), "duplicate tensor name 'w' in the header");
        expectFile(write(file("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", new byte[0])),
                "__metadata__ has key 'k' twice");
    }

    @Test
    void badMetadata() throws IOException {
        expectFile(write(file("{\"__metadata__\":[1]}", new byte[0])), "__metadata__ is not an object");
        expectFile(write(file("{\"__metadata__\":{\"n\":1}}", new byte[0])), "__metadata__ value of 'n' is not a string");
    }

    @Test
    void fileTruncatedAfterOpeningIsNotReadAsZeros() throws IOException {
        java.nio.file.Path f = write(file(entry("w", "U8", "[64]", "[0, 64]"), filled(64)));
        try (SafetensorsFile st = SafetensorsFile.open(f.toString(), CONF)) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
                ch.truncate(Files.size(f) - 10);
            }
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> st.readTensor("w"));
            assertMessage(e, f.getFileName().toString(), "unexpected end of file reading 64 bytes");
        }
    }

    @Test
    void validFileWithOddButLegalContentReads() throws IOException {
        // unknown fields are allowed, zero-size tensors may share offsets, gaps are tolerated, padding is spaces
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"z1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                + "\"z2\":{\"dtype\":\"BF16\",\"shape\":[2,0],\"data_offsets\":[4,4],\"extra\":{\"x\":[1,{}]}},"
                + "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[3,4]},"
                + "\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[6,8]}}    ";
        java.nio.file.Path f = write(file(header, new byte[] {0, 0, 0, 42, 0, 0, 7, 9}));
        try (SafetensorsFile st = SafetensorsFile.open(f.toString(), CONF)) {
            assertEquals(java.util.List.of("z1", "z2", "s", "w"), java.util.List.copyOf(st.tensors().keySet()));
            assertEquals(java.util.Map.of("format", "pt"), st.metadata());
            assertEquals(42, st.readTensor("s").get(0));
            assertEquals(1, st.tensor("s").numElements());
            assertArrayEquals(new byte[] {7, 9}, bytes(st.readTensor("w")));
            assertEquals(0, st.readFloats("z1").length);
            ModelFormatException notFloat = assertThrows(ModelFormatException.class, () -> st.readFloats("w"));
            assertMessage(notFloat, "tensor 'w' is U8, not a floating-point tensor");
            ModelFormatException missing = assertThrows(ModelFormatException.class, () -> st.tensor("nope"));
            assertMessage(missing, f.getFileName().toString(), "no tensor named 'nope'");
        }
    }

    @Test
    void tensorInfoOfAnotherFileIsRefused() throws IOException {
        java.nio.file.Path a = write(file(entry("w", "U8", "[4]", "[0, 4]"), filled(4)));
        java.nio.file.Path b = write(file(entry("w", "U8", "[2]", "[0, 2]"), filled(2)));
        try (SafetensorsFile fa = SafetensorsFile.open(a.toString(), CONF);
                SafetensorsFile fb = SafetensorsFile.open(b.toString(), CONF)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> fb.readRange(fa.tensor("w"), 0, ByteBuffer.allocate(2)));
            assertTrue(e.getMessage().contains("does not belong to this file"), e.getMessage());
        }
    }

    @Test
    void missingFileOrDirectoryInsteadOfFile() throws IOException {
        java.nio.file.Path missing = dir.resolve("absent.safetensors");
        expectFile(missing, "absent.safetensors: file not found");
        java.nio.file.Path sub = Files.createDirectories(dir.resolve("a-directory.safetensors"));
        expectFile(sub, "a-directory.safetensors: not a file");
    }

    // ---- model directories -------------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"../x.safetensors", "/abs/path.safetensors", "s3a://other/x.safetensors", "sub/x.safetensors",
        "..", ".", "", "a\\\\b.safetensors", "C:x.safetensors"})
    void indexMayNotPointOutsideTheDirectory(String shard) throws IOException {
        java.nio.file.Path m = model();
        index(m, "{\"weight_map\":{\"w\":\"" + shard + "\"}}");
        expectDir(m, ModelDirectory.INDEX, "shard name '" + shard.replace("\\\\", "\\") + "'",
                "is not a plain file name in the model directory");
    }

    @Test
    void missingShard() throws IOException {
        java.nio.file.Path m = model();
        Files.write(m.resolve("a.safetensors"), file(entry("w", "U8", "[1]", "[0, 1]"), new byte[1]));
        index(m, "{\"weight_map\":{\"w\":\"a.safetensors\",\"v\":\"b.safetensors\"}}");
        expectDir(m, ModelDirectory.INDEX, "shard 'b.safetensors' named in the index does not exist");
    }

    @Test
    void sameTensorInTwoShards() throws IOException {
        java.nio.file.Path m = model();
        Files.write(m.resolve("a.safetensors"), file(entry("w", "U8", "[1]", "[0, 1]"), new byte[1]));
        Files.write(m.resolve("b.safetensors"), file(entry("w", "U8", "[2]", "[0, 2]"), new byte[2]));
        index(m, "{\"weight_map\":{\"w\":\"a.safetensors\",\"v\":\"b.safetensors\"}}");
        expectDir(m, m.getFileName().toString(), "tensor 'w' appears in both a.safetensors and b.safetensors");
    }

    @Test
    void indexNamesATensorItsShardDoesNotHold() throws IOException {
        java.nio.file.Path m = model();
        Files.write(m.resolve("a.safetensors"), file(entry("w", "U8", "[1]", "[0, 1]"), new byte[1]));
        Files.write(m.resolve("b.safetensors"), file(entry("v", "U8", "[1]", "[0, 1]"), new byte[1]));
        index(m, "{\"weight_map\":{\"w\":\"a.safetensors\",\"v\":\"b.safetensors\",\"u\":\"b.safetensors\"}}");
        expectDir(m, ModelDirectory.INDEX, "tensor 'u' is indexed in 'b.safetensors' but that shard does not hold it");
        index(m, "{\"weight_map\":{\"w\":\"b.safetensors\",\"v\":\"b.safetensors\"}}");
        // w is really in a.safetensors, which the index never names: reading b's w would be the wrong tensor
        expectDir(m, ModelDirectory.INDEX, "tensor 'w' is indexed in 'b.safetensors' but that shard does not hold it");
        index(m, "{\"weight_map\":{\"w\":\"b.safetensors\",\"v\":\"a.safetensors\"}}");
        expectDir(m, ModelDirectory.INDEX, "tensor 'w' is indexed in 'b.safetensors'", "(a.safetensors does)");
    }

    @Test
    void brokenIndex() throws IOException {
        java.nio.file.Path m = model();
        index(m, "{\"weight_map\": {");
        expectDir(m, ModelDirectory.INDEX, "not valid JSON");
        index(m, "{\"weight_map\":{}} {}");
        expectDir(m, ModelDirectory.INDEX, "not valid JSON");
        index(m, "[]");
        expectDir(m, ModelDirectory.INDEX, "not a JSON object");
        index(m, "{\"metadata\":{}}");
        expectDir(m, ModelDirectory.INDEX, "no 'weight_map' object");
        index(m, "{\"weight_map\":{}}");
        expectDir(m, ModelDirectory.INDEX, "'weight_map' lists no tensors");
        index(m, "{\"weight_map\":{\"w\":3}}");
        expectDir(m, ModelDirectory.INDEX, "shard of tensor 'w' is not a string");
        index(m, "{\"weight_map\":{\"w\":\"a.safetensors\",\"w\":\"a.safetensors\"}}");
        // Jackson keeps the last of duplicate keys; that is harmless here, the shard is still checked
        expectDir(m, ModelDirectory.INDEX, "shard 'a.safetensors' named in the index does not exist");
    }

    @Test
    void brokenShardIsNamed() throws IOException {
        java.nio.file.Path m = model();
        Files.write(m.resolve("a.safetensors"), file(entry("w", "U8", "[1]", "[0, 1]"), new byte[1]));
        Files.write(m.resolve("b.safetensors"), file(entry("v", "Q4", "[1]", "[0, 1]"), new byte[1]));
        index(m, "{\"weight_map\":{\"w\":\"a.safetensors\",\"v\":\"b.safetensors\"}}");
        expectDir(m, "b.safetensors", "tensor 'v': unknown dtype 'Q4'");
    }

    @Test
    void notAModelDirectory() throws IOException {
        java.nio.file.Path m = model();
        expectDir(m, m.getFileName().toString(), "neither " + ModelDirectory.INDEX + " nor model.safetensors found");
        expectDir(m.resolve("absent"), "absent: model directory not found");
        java.nio.file.Path f = write(file("{}", new byte[0]));
        expectDir(f, f.getFileName().toString(), "not a directory");
    }

    @Test
    void brokenConfigIsNamed() throws IOException {
        java.nio.file.Path m = model();
        Files.write(m.resolve(ModelDirectory.SINGLE), file(entry("w", "U8", "[1]", "[0, 1]"), new byte[1]));
        try (ModelDirectory d = ModelDirectory.open(m.toString(), CONF)) {
            assertMessage(assertThrows(ModelFormatException.class, d::config), "config.json: file not found");
        }
        Files.writeString(m.resolve(ModelDirectory.CONFIG), "{\"hidden_size\": 38");
        try (ModelDirectory d = ModelDirectory.open(m.toString(), CONF)) {
            assertMessage(assertThrows(ModelFormatException.class, d::config), "config.json: not valid JSON");
            assertMessage(assertThrows(ModelFormatException.class, () -> d.tensor("v")), "model has no tensor 'v'");
        }
    }

    // ---- helpers -----------------------------------------------------------------------------------------------

    private static String entry(String name, String dtype, String shape, String offsets) {
        return "{\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets
                + "}}";
    }

    /** The inside of a one-entry object, to join several entries. */
    private static String body(String oneEntryObject) {
        return oneEntryObject.substring(1, oneEntryObject.length() - 1);
    }

    private static byte[] file(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return concat(le(h.length), h, data);
    }

    private static byte[] le(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array();
    }

    private static byte[] filled(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 7 + 1);
        }
        return b;
    }

    private static byte[] concat(byte[]... parts) {
        ByteBuffer b = ByteBuffer.allocate(Arrays.stream(parts).mapToInt(p -> p.length).sum());
        for (byte[] p : parts) {
            b.put(p);
        }
        return b.array();
    }

    private static byte[] bytes(ByteBuffer b) {
        byte[] a = new byte[b.remaining()];
        b.duplicate().get(a);
        return a;
    }

    private static java.nio.file.Path write(byte[] content) throws IOException {
        java.nio.file.Path f = dir.resolve("case-" + (++counter) + ".safetensors");
        try (OutputStream out = Files.newOutputStream(f)) {
            out.write(content);
        }
        return f;
    }

    private static java.nio.file.Path model() throws IOException {
        return Files.createDirectory(dir.resolve("model-" + (++counter)));
    }

    private static void index(java.nio.file.Path model, String json) throws IOException {
        Files.writeString(model.resolve(ModelDirectory.INDEX), json);
    }

    private static void expectFile(java.nio.file.Path f, String... parts) {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafetensorsFile.open(f.toString(), CONF).close());
        String[] all = Arrays.copyOf(parts, parts.length + 1);
        all[parts.length] = f.getFileName().toString();
        assertMessage(e, all);
    }

    private static void expectDir(java.nio.file.Path model, String namedFile, String... parts) {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> ModelDirectory.open(model.toString(), CONF).close());
        String[] all = Arrays.copyOf(parts, parts.length + 1);
        all[parts.length] = namedFile;
        assertMessage(e, all);
    }

    private static void assertMessage(Exception e, String... parts) {
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "message lacks '" + p + "': " + e.getMessage());
        }
    }
}
