package org.exl2spark.io;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options.OpenFileOptions;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.util.functional.FutureIO;
import org.exl2spark.model.ModelArchitecture;

/**
 * A Hugging Face model directory on any Hadoop file system: config.json plus either
 * {@code model.safetensors.index.json} with its shards or a single {@code model.safetensors}. Shards are opened
 * (headers parsed) once, on open; tensor bytes are read on demand.
 */
public final class ModelDirectory implements Closeable {
    public static final String CONFIG = "config.json";
    public static final String INDEX = "model.safetensors.index.json";
    public static final String SINGLE = "model.safetensors";
    /** Index files over this size are refused before they are read. */
    static final long MAX_SMALL_FILE = 64L << 20;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private final Path dir;
    private final FileSystem fs;
    private final Map<String, FileStatus> files;
    private final Map<String, SafetensorsFile> shards;
    private final Map<String, SafetensorsFile> byTensor;
    /** config.json as read once on open (null when there is none): one request, however often it is asked for. */
    private final byte[] configBytes;

    private ModelDirectory(Path dir, FileSystem fs, Map<String, FileStatus> files, Map<String, SafetensorsFile> shards,
            Map<String, SafetensorsFile> byTensor, byte[] configBytes) {
        this.configBytes = configBytes;
        this.dir = dir;
        this.fs = fs;
        this.files = files;
        this.shards = shards;
        this.byTensor = byTensor;
    }

    public static ModelDirectory open(String location, Configuration conf) throws IOException {
        return open(Storage.path(location), conf);
    }

    /**
     * Lists the directory once and opens every shard from that listing, so on an object store opening costs one
     * LIST, one GET for the index and about one GET per shard, however many tensors there are.
     */
    public static ModelDirectory open(Path dir, Configuration conf) throws IOException {
        FileSystem fs = Storage.fileSystem(dir, conf);
        Map<String, FileStatus> files = list(fs, dir);
        FileStatus index = files.get(INDEX);
        List<String> shardNames = new ArrayList<>();
        Map<String, String> weightMap = null;
        FileStatus configStatus = files.get(CONFIG);
        byte[] configBytes = configStatus == null ? null : readSmallFile(fs, configStatus);
        if (declaresExl2(configBytes)) {
            // ExLlamaV2 loads every *.safetensors of an EXL2 directory and ignores any index (its converter even
            // copies the source model's stale one), so read it the same way
            index = null;
            for (FileStatus s : files.values()) {
                if (s.isFile() && s.getPath().getName().endsWith(".safetensors")) {
                    shardNames.add(s.getPath().getName());
                }
            }
            if (shardNames.isEmpty()) {
                throw new ModelFormatException(dir + ": EXL2 model directory holds no .safetensors file");
            }
            shardNames.sort(null);
        } else if (index != null) {
            weightMap = readWeightMap(fs, index);
            for (String shard : weightMap.values()) {
                if (!shardNames.contains(shard)) {
                    shardNames.add(shard);
                }
            }
        } else if (files.containsKey(SINGLE)) {
            shardNames.add(SINGLE);
        } else {
            throw new ModelFormatException(dir + ": neither " + INDEX + " nor " + SINGLE + " found");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        try {
            for (String name : shardNames) {
                FileStatus status = files.get(name);
                if (status == null || !status.isFile()) {
                    throw new ModelFormatException(index.getPath() + ": shard '" + name
                            + "' named in the index does not exist in " + dir);
                }
                SafetensorsFile f = SafetensorsFile.open(fs, status);
                shards.put(name, f);
                for (String t : f.tensors().keySet()) {
                    SafetensorsFile prev = byTensor.putIfAbsent(t, f);
                    if (prev != null) {
                        throw new ModelFormatException(dir + ": tensor '" + t + "' appears in both "
                                + prev.path().getName() + " and " + f.path().getName());
                    }
                }
            }
            if (weightMap != null) {
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    SafetensorsFile f = byTensor.get(e.getKey());
                    if (f == null || !f.path().getName().equals(e.getValue())) {
                        throw new ModelFormatException(index.getPath() + ": tensor '" + e.getKey() + "' is indexed in '"
                                + e.getValue() + "' but that shard does not hold it"
                                + (f == null ? "" : " (" + f.path().getName() + " does)"));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile f : shards.values()) {
                f.close();
            }
            throw e;
        }
        return new ModelDirectory(dir, fs, files, Collections.unmodifiableMap(shards),
                Collections.unmodifiableMap(byTensor), configBytes);
    }

    /** Whether config.json's quantization_config names the EXL2 method; a broken config is reported by config(). */
    private static boolean declaresExl2(byte[] config) {
        if (config == null) {
            return false;
        }
        try {
            return "exl2".equals(JSON.readTree(config).path("quantization_config").path("quant_method").asText(null));
        } catch (IOException e) {
            return false;
        }
    }

    /** The directory's entries by name, from one listing (a listing of a file is that file alone). */
    private static Map<String, FileStatus> list(FileSystem fs, Path dir) throws IOException {
        FileStatus[] entries;
        try {
            entries = fs.listStatus(dir);
        } catch (FileNotFoundException e) {
            throw new ModelFormatException(dir + ": model directory not found", e);
        }
        Path self = fs.makeQualified(dir);
        Map<String, FileStatus> files = new LinkedHashMap<>();
        for (FileStatus s : entries) {
            if (s.isFile() && s.getPath().equals(self)) {
                throw new ModelFormatException(dir + ": not a directory");
            }
            files.put(s.getPath().getName(), s);
        }
        return Collections.unmodifiableMap(files);
    }

    private static Map<String, String> readWeightMap(FileSystem fs, FileStatus index) throws IOException {
        Path path = index.getPath();
        JsonNode map = readJson(fs, index).get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelFormatException(path + ": no 'weight_map' object");
        }
        if (map.isEmpty()) {
            throw new ModelFormatException(path + ": 'weight_map' lists no tensors");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            if (!e.getValue().isTextual()) {
                throw new ModelFormatException(path + ": shard of tensor '" + e.getKey() + "' is not a string");
            }
            out.put(e.getKey(), checkShardName(path, e.getValue().textValue()));
        }
        return out;
    }

    /** A shard name must be a plain file name inside the model directory: no separators, no URI, no "..". */
    static String checkShardName(Path index, String name) throws ModelFormatException {
        if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.contains(":") || name.equals(".")
                || name.equals("..") || name.indexOf('\0') >= 0) {
            throw new ModelFormatException(index + ": shard name '" + name
                    + "' is not a plain file name in the model directory");
        }
        return name;
    }

    /** Reads a small JSON file (config, index), refusing oversized ones before reading them. */
    public static JsonNode readJson(FileSystem fs, Path file) throws IOException {
        return parseJson(file, readSmallFile(fs, file));
    }

    static JsonNode readJson(FileSystem fs, FileStatus file) throws IOException {
        return parseJson(file.getPath(), readSmallFile(fs, file));
    }

    private static JsonNode parseJson(Path file, byte[] content) throws ModelFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(content);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file + ": not a JSON object");
        }
        return root;
    }

    public static byte[] readSmallFile(FileSystem fs, Path file) throws IOException {
        try {
            return readSmallFile(fs, fs.getFileStatus(file));
        } catch (FileNotFoundException e) {
            throw new ModelFormatException(file + ": file not found", e);
        }
    }

    static byte[] readSmallFile(FileSystem fs, FileStatus file) throws IOException {
        if (file.getLen() > MAX_SMALL_FILE) {
            throw new ModelFormatException(file.getPath() + ": " + file.getLen()
                    + " bytes, too large for a JSON metadata file");
        }
        byte[] content = new byte[(int) file.getLen()];
        try (FSDataInputStream in = FutureIO.awaitFuture(fs.openFile(file.getPath()).withFileStatus(file)
                .opt(OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY,
                        OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY_WHOLE_FILE)
                .build())) {
            in.readFully(0, content);
        } catch (EOFException e) {
            throw new ModelFormatException(file.getPath() + ": shorter than its listed " + file.getLen()
                    + " bytes (changed while being read?)", e);
        }
        return content;
    }

    public Path path() {
        return dir;
    }

    public FileSystem fileSystem() {
        return fs;
    }

    /** config.json, as listed when the directory was opened. */
    public JsonNode config() throws IOException {
        Path path = new Path(dir, CONFIG);
        if (configBytes == null) {
            throw new ModelFormatException(path + ": file not found");
        }
        return parseJson(path, configBytes);
    }

    /** The directory's files (and subdirectories) by name, as listed when it was opened. */
    public Map<String, FileStatus> files() {
        return files;
    }

    public ModelArchitecture architecture() throws IOException {
        return ModelArchitecture.fromConfig(config(), new Path(dir, CONFIG).toString());
    }

    /** Shards by file name, in index order. */
    public Map<String, SafetensorsFile> shards() {
        return shards;
    }

    public Map<String, SafetensorsFile> tensorLocations() {
        return byTensor;
    }

    public boolean contains(String tensor) {
        return byTensor.containsKey(tensor);
    }

    public SafetensorsFile shardOf(String tensor) throws ModelFormatException {
        SafetensorsFile f = byTensor.get(tensor);
        if (f == null) {
            throw new ModelFormatException(dir + ": model has no tensor '" + tensor + "'");
        }
        return f;
    }

    public TensorInfo tensor(String name) throws ModelFormatException {
        return shardOf(name).tensor(name);
    }

    public float[] readFloats(String name) throws IOException {
        return shardOf(name).readFloats(name);
    }

    public ByteBuffer readTensor(String name) throws IOException {
        return shardOf(name).readTensor(name);
    }

    /** Fills {@code dst} with the named tensor's bytes from {@code offsetInTensor} on (any size, heap or direct). */
    public void readRange(String name, long offsetInTensor, ByteBuffer dst) throws IOException {
        SafetensorsFile f = shardOf(name);
        f.readRange(f.tensor(name), offsetInTensor, dst);
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (SafetensorsFile f : shards.values()) {
            try {
                f.close();
            } catch (IOException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
