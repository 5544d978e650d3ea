package org.exl2spark.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import org.apache.hadoop.fs.CommonPathCapabilities;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Writes safetensors files and sharded models. Tensors are declared up front (so each header can be written first)
 * and their bytes are streamed from a {@link TensorData} callback, so no shard is ever held in memory. Every file
 * appears only once complete (temporary name then rename, or on S3 a whole upload); the index is written last.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Streams one tensor's bytes (little-endian, row-major); must write exactly {@link TensorSpec#byteSize()}. */
    @FunctionalInterface
    public interface TensorData {
        void writeTo(TensorSpec tensor, OutputStream out) throws IOException;
    }

    private SafetensorsWriter() {
    }

    /**
     * Groups tensors, in order, into shards of at most {@code maxShardBytes} of tensor data; a tensor bigger than the
     * limit gets a shard of its own.
     */
    public static List<List<TensorSpec>> planShards(List<TensorSpec> tensors, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("shard size must be positive, got " + maxShardBytes);
        }
        List<List<TensorSpec>> shards = new ArrayList<>();
        List<TensorSpec> current = new ArrayList<>();
        long bytes = 0;
        for (TensorSpec t : tensors) {
            if (!current.isEmpty() && bytes + t.byteSize() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(t);
            bytes += t.byteSize();
        }
        if (!current.isEmpty() || shards.isEmpty()) {
            shards.add(current);
        }
        return shards;
    }

    /** The safetensors header for these tensors, padded with spaces to a multiple of 8 bytes as the reference does. */
    static byte[] header(List<TensorSpec> tensors, Map<String, String> metadata) {
        ObjectNode root = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        Set<String> seen = new HashSet<>();
        long offset = 0;
        for (TensorSpec t : tensors) {
            if (!seen.add(t.name()) || t.name().equals("__metadata__")) {
                throw new IllegalArgumentException("duplicate or reserved tensor name '" + t.name() + "'");
            }
            ObjectNode e = root.putObject(t.name());
            e.put("dtype", t.dtype().name());
            ArrayNode shape = e.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            ArrayNode off = e.putArray("data_offsets");
            off.add(offset);
            offset += t.byteSize();
            off.add(offset);
        }
        byte[] json = root.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        byte[] out = new byte[padded];
        System.arraycopy(json, 0, out, 0, json.length);
        for (int i = json.length; i < padded; i++) {
            out[i] = ' ';
        }
        return out;
    }

    /**
     * Writes one safetensors file at {@code target}, visible only once complete: under a temporary name renamed into
     * place, or, on an object store whose uploads appear only on close (S3A), straight to the target with the upload
     * aborted on failure, since a rename there is a full copy. Returns the bytes written.
     */
    public static long writeFile(FileSystem fs, Path target, List<TensorSpec> tensors, Map<String, String> metadata,
            TensorData data) throws IOException {
        byte[] header = header(tensors, metadata);
        return publish(fs, target, out -> {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).array());
            out.write(header);
            for (TensorSpec t : tensors) {
                CountingStream counted = new CountingStream(out);
                data.writeTo(t, counted);
                if (counted.count != t.byteSize()) {
                    throw new IOException(target + ": tensor '" + t.name() + "' supplied " + counted.count
                            + " bytes, expected " + t.byteSize());
                }
            }
        });
    }

    /**
     * Writes {@code <base>-00001-of-0000N.safetensors} shards of at most {@code maxShardBytes} of tensor data and
     * {@code <base>.safetensors.index.json} (written last). A single shard is named {@code <base>.safetensors} and
     * gets no index. Returns the weight map (tensor → shard file name).
     */
    public static Map<String, String> writeSharded(FileSystem fs, Path dir, String base, List<TensorSpec> tensors,
            long maxShardBytes, Map<String, String> metadata, TensorData data) throws IOException {
        Set<String> names = new HashSet<>();
        for (TensorSpec t : tensors) {
            // checked up front: a name repeated in two shards would otherwise be caught only after shards were written
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("duplicate tensor name '" + t.name() + "'");
            }
        }
        List<List<TensorSpec>> shards = planShards(tensors, maxShardBytes);
        for (int i = 0; i < shards.size(); i++) {
            writeFile(fs, new Path(dir, shardName(base, i, shards.size())), shards.get(i), metadata, data);
        }
        return writeIndex(fs, dir, base, shards);
    }

    /** The file name of shard {@code index} (from 0) of {@code count}: {@code <base>-00001-of-0000N.safetensors}. */
    public static String shardName(String base, int index, int count) {
        return count == 1 ? base + ".safetensors"
                : String.format(Locale.ROOT, "%s-%05d-of-%05d.safetensors", base, index + 1, count);
    }

    /**
     * Writes {@code <base>.safetensors.index.json} for these shards (named by {@link #shardName}), or, for a single
     * shard, deletes a stale one. Returns the weight map (tensor → shard file name).
     */
    public static Map<String, String> writeIndex(FileSystem fs, Path dir, String base, List<List<TensorSpec>> shards)
            throws IOException {
        Map<String, String> weightMap = new LinkedHashMap<>();
        long totalSize = 0;
        for (int i = 0; i < shards.size(); i++) {
            for (TensorSpec t : shards.get(i)) {
                weightMap.put(t.name(), shardName(base, i, shards.size()));
                totalSize += t.byteSize();
            }
        }
        Path indexPath = new Path(dir, base + ".safetensors.index.json");
        if (shards.size() == 1) {
            // a stale index from an earlier sharded write would make readers ignore the single file
            fs.delete(indexPath, false);
        } else {
            ObjectNode index = JSON.createObjectNode();
            index.putObject("metadata").put("total_size", totalSize);
            ObjectNode map = index.putObject("weight_map");
            weightMap.forEach(map::put);
            writeSmallFile(fs, indexPath, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(index));
        }
        return weightMap;
    }

    /** Writes a small file (JSON, tokenizer) so that it appears whole or not at all, as {@link #writeFile} does. */
    public static void writeSmallFile(FileSystem fs, Path target, byte[] content) throws IOException {
        publish(fs, target, out -> out.write(content));
    }

    private interface Content {
        void writeTo(FSDataOutputStream out) throws IOException;
    }

    /** Writes {@code content} so that {@code target} holds all of it or is left as it was; returns the bytes written. */
    private static long publish(FileSystem fs, Path target, Content content) throws IOException {
        boolean direct = fs.hasPathCapability(target, CommonPathCapabilities.ABORTABLE_STREAM);
        Path written = direct ? target : temporaryFor(target);
        FSDataOutputStream out = fs.create(written, direct);
        long length;
        try {
            content.writeTo(out);
            length = out.getPos();
        } catch (IOException | RuntimeException e) {
            discard(fs, out, direct ? null : written, e);
            throw e;
        }
        if (direct) {
            out.close(); // completes the upload: the object appears now, whole
            return length;
        }
        try {
            out.close();
        } catch (IOException | RuntimeException e) {
            fs.delete(written, false);
            throw e;
        }
        commit(fs, written, target);
        return length;
    }

    /** Drops a failed write: the upload is aborted (nothing appears) or the temporary file deleted. */
    private static void discard(FileSystem fs, FSDataOutputStream out, Path temporary, Exception failure) {
        try {
            if (temporary == null) {
                out.abort();
            }
            out.close();
        } catch (IOException | RuntimeException e) {
            failure.addSuppressed(e);
        }
        if (temporary != null) {
            try {
                fs.delete(temporary, false);
            } catch (IOException | RuntimeException e) {
                failure.addSuppressed(e);
            }
        }
    }

    static Path temporaryFor(Path target) {
        return new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
    }

    /** Whether a name is one of this writer's temporary files (left behind only if the process dies mid-write). */
    public static boolean isTemporary(String fileName) {
        return fileName.startsWith(".") && fileName.contains(".tmp-");
    }

    private static void commit(FileSystem fs, Path tmp, Path target) throws IOException {
        if (fs.exists(target)) {
            fs.delete(target, false);
        }
        if (!fs.rename(tmp, target)) {
            fs.delete(tmp, false);
            throw new IOException("could not rename " + tmp + " to " + target);
        }
    }

    private static final class CountingStream extends FilterOutputStream {
        long count;

        CountingStream(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }

        @Override
        public void close() {
            // the file stream is closed by the writer, not by a tensor's callback
        }
    }
}
