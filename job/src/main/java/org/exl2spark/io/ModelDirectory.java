package org.exl2spark.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
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

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final FileSystem fs;
    private final Map<String, SafetensorsFile> shards;
    private final Map<String, SafetensorsFile> byTensor;

    private ModelDirectory(Path dir, FileSystem fs, Map<String, SafetensorsFile> shards,
            Map<String, SafetensorsFile> byTensor) {
        this.dir = dir;
        this.fs = fs;
        this.shards = shards;
        this.byTensor = byTensor;
    }

    public static ModelDirectory open(String location, Configuration conf) throws IOException {
        return open(Storage.path(location), conf);
    }

    public static ModelDirectory open(Path dir, Configuration conf) throws IOException {
        FileSystem fs = Storage.fileSystem(dir, conf);
        if (!fs.exists(dir)) {
            throw new ModelFormatException(dir + ": model directory not found");
        }
        if (!fs.getFileStatus(dir).isDirectory()) {
            throw new ModelFormatException(dir + ": not a directory");
        }
        Path index = new Path(dir, INDEX);
        List<String> shardNames = new ArrayList<>();
        Map<String, String> weightMap = null;
        if (fs.exists(index)) {
            weightMap = readWeightMap(fs, index);
            for (String shard : weightMap.values()) {
                if (!shardNames.contains(shard)) {
                    shardNames.add(shard);
                }
            }
        } else if (fs.exists(new Path(dir, SINGLE))) {
            shardNames.add(SINGLE);
        } else {
            throw new ModelFormatException(dir + ": neither " + INDEX + " nor " + SINGLE + " found");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        try {
            for (String name : shardNames) {
                Path p = new Path(dir, name);
                if (!fs.exists(p)) {
                    throw new ModelFormatException(index + ": shard '" + name + "' named in the index does not exist");
                }
                SafetensorsFile f = SafetensorsFile.open(p, conf);
                shards.put(name, f);
                for (String t : f.tensors().keySet()) {
                    SafetensorsFile prev = byTensor.putIfAbsent(t, f);
                    if (prev != null) {
                        throw new ModelFormatException(dir + ": tensor '" + t + "' appears in both " + prev.path().getName()
                                + " and " + f.path().getName());
                    }
                }
            }
            if (weightMap != null) {
                for (Map.Entry<String, String> e : weightMap.entrySet()) {
                    SafetensorsFile f = byTensor.get(e.getKey());
                    if (f == null || !f.path().getName().equals(e.getValue())) {
                        throw new ModelFormatException(index + ": tensor '" + e.getKey() + "' is indexed in '"
                                + e.getValue() + "' but that shard does not hold it");
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            for (SafetensorsFile f : shards.values()) {
                f.close();
            }
            throw e;
        }
        return new ModelDirectory(dir, fs, Collections.unmodifiableMap(shards), Collections.unmodifiableMap(byTensor));
    }

    private static Map<String, String> readWeightMap(FileSystem fs, Path index) throws IOException {
        JsonNode root = readJson(fs, index);
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelFormatException(index + ": no 'weight_map' object");
        }
        Map<String, String> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new ModelFormatException(index + ": shard of tensor '" + e.getKey() + "' is not a string");
            }
            out.put(e.getKey(), checkShardName(index, e.getValue().textValue()));
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
        return JSON.readTree(readSmallFile(fs, file));
    }

    public static byte[] readSmallFile(FileSystem fs, Path file) throws IOException {
        long len;
        try {
            len = fs.getFileStatus(file).getLen();
        } catch (FileNotFoundException e) {
            throw new ModelFormatException(file + ": file not found", e);
        }
        if (len > MAX_SMALL_FILE) {
            throw new ModelFormatException(file + ": " + len + " bytes, too large for a JSON metadata file");
        }
        try (InputStream in = fs.open(file)) {
            return in.readAllBytes();
        }
    }

    public Path path() {
        return dir;
    }

    public FileSystem fileSystem() {
        return fs;
    }

    public JsonNode config() throws IOException {
        Path p = new Path(dir, CONFIG);
        try {
            return readJson(fs, p);
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new ModelFormatException(p + ": not valid JSON: " + e.getMessage(), e);
        }
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

    public java.nio.ByteBuffer readTensor(String name) throws IOException {
        return shardOf(name).readTensor(name);
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
