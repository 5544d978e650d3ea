package org.exl2spark.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A safetensors file on any Hadoop file system: the header is parsed and validated on open, tensor bytes are read
 * with positioned reads on demand. All offsets are {@code long}; tensors of any size can be read in ranges.
 * Positioned reads do not move the stream, so one instance may serve several threads.
 */
public final class SafetensorsFile implements Closeable {
    /** The safetensors reference implementation refuses headers above 100 MB; so do we. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    /** Largest single read request; bigger ranges are split so no read buffer exceeds it. */
    static final int READ_CHUNK = 16 << 20;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final Path path;
    private final FSDataInputStream in;
    private final long fileLength;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, FSDataInputStream in, long fileLength, long dataStart,
            Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.in = in;
        this.fileLength = fileLength;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafetensorsFile open(String location, Configuration conf) throws IOException {
        return open(Storage.path(location), conf);
    }

    public static SafetensorsFile open(Path path, Configuration conf) throws IOException {
        FileSystem fs = Storage.fileSystem(path, conf);
        long length;
        try {
            length = fs.getFileStatus(path).getLen();
        } catch (java.io.FileNotFoundException e) {
            throw new ModelFormatException(path + ": file not found", e);
        }
        FSDataInputStream in = fs.open(path);
        try {
            return parse(path, in, length);
        } catch (IOException | RuntimeException e) {
            in.close();
            throw e;
        }
    }

    private static SafetensorsFile parse(Path path, FSDataInputStream in, long fileLength) throws IOException {
        if (fileLength < 8) {
            throw new ModelFormatException(path + ": not a safetensors file: " + fileLength
                    + " bytes, shorter than the 8-byte header length");
        }
        byte[] lenBytes = new byte[8];
        in.readFully(0, lenBytes, 0, 8);
        long headerLen = ByteBuffer.wrap(lenBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
            throw new ModelFormatException(path + ": header length " + Long.toUnsignedString(headerLen)
                    + " is outside 2.." + MAX_HEADER_BYTES + " bytes (corrupt or not a safetensors file)");
        }
        if (headerLen > fileLength - 8) {
            throw new ModelFormatException(path + ": header length " + headerLen + " runs past the end of the file ("
                    + fileLength + " bytes; truncated?)");
        }
        byte[] header = new byte[(int) headerLen];
        in.readFully(8, header, 0, header.length);
        long dataStart = 8 + headerLen;
        Header h = parseHeader(path, header, dataStart, fileLength - dataStart);
        return new SafetensorsFile(path, in, fileLength, dataStart, h.tensors, h.metadata);
    }

    private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    }

    private static Header parseHeader(Path path, byte[] header, long dataStart, long dataLength)
            throws ModelFormatException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(header)).toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(path + ": header is not valid UTF-8");
        }
        JsonNode root;
        try {
            root = JSON.readTree(text.stripTrailing());
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(path + ": header is not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(path + ": header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) {
                    throw new ModelFormatException(path + ": __metadata__ is not an object");
                }
                for (Iterator<Map.Entry<String, JsonNode>> m = v.fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> kv = m.next();
                    if (!kv.getValue().isTextual()) {
                        throw new ModelFormatException(path + ": __metadata__ value of '" + kv.getKey()
                                + "' is not a string");
                    }
                    metadata.put(kv.getKey(), kv.getValue().textValue());
                }
                continue;
            }
            tensors.put(name, parseEntry(path, name, v, dataStart, dataLength));
        }
        checkNoOverlap(path, tensors.values());
        return new Header(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode v, long dataStart, long dataLength)
            throws ModelFormatException {
        String where = path + ": tensor '" + name + "': ";
        if (!v.isObject()) {
            throw new ModelFormatException(where + "entry is not an object");
        }
        JsonNode dt = v.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw new ModelFormatException(where + "missing dtype");
        }
        DType dtype = DType.fromHeader(dt.textValue());
        if (dtype == null) {
            throw new ModelFormatException(where + "unknown dtype '" + dt.textValue() + "'");
        }
        JsonNode sh = v.get("shape");
        if (sh == null || !sh.isArray()) {
            throw new ModelFormatException(where + "missing shape");
        }
        long[] shape = new long[sh.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new ModelFormatException(where + "shape " + sh + " has a dimension that is not a"
                        + " non-negative integer");
            }
            shape[i] = d.longValue();
        }
        JsonNode off = v.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2) {
            throw new ModelFormatException(where + "data_offsets must be [begin, end]");
        }
        for (JsonNode o : off) {
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.longValue() < 0) {
                throw new ModelFormatException(where + "data_offsets " + off + " are not non-negative integers");
            }
        }
        long begin = off.get(0).longValue();
        long end = off.get(1).longValue();
        if (end < begin) {
            throw new ModelFormatException(where + "data_offsets " + off + " end before they begin");
        }
        if (end > dataLength) {
            throw new ModelFormatException(where + "data_offsets " + off + " run past the data section ("
                    + dataLength + " bytes; file truncated?)");
        }
        long count = TensorInfo.elementCount(shape);
        long expected = count < 0 ? -1 : count > Long.MAX_VALUE / dtype.bytes() ? -1 : count * dtype.bytes();
        if (expected != end - begin) {
            throw new ModelFormatException(where + "shape " + sh + " × " + dtype + " needs "
                    + (expected < 0 ? "more than 2^63" : String.valueOf(expected)) + " bytes but data_offsets "
                    + off + " hold " + (end - begin));
        }
        return new TensorInfo(name, dtype, shape, begin, end, dataStart);
    }

    private static void checkNoOverlap(Path path, Iterable<TensorInfo> all) throws ModelFormatException {
        List<TensorInfo> sorted = new ArrayList<>();
        all.forEach(sorted::add);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            if (t.byteSize() == 0) {
                continue;
            }
            if (prev != null && t.begin() < prev.end()) {
                throw new ModelFormatException(path + ": tensors '" + prev.name() + "' [" + prev.begin() + ", "
                        + prev.end() + ") and '" + t.name() + "' [" + t.begin() + ", " + t.end() + ") overlap");
            }
            prev = t;
        }
    }

    public Path path() {
        return path;
    }

    public long fileLength() {
        return fileLength;
    }

    /** Absolute offset of the data section (8 + header length). */
    public long dataStart() {
        return dataStart;
    }

    /** Tensors in header order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo tensor(String name) throws ModelFormatException {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException(path + ": no tensor named '" + name + "'");
        }
        return t;
    }

    /**
     * Fills {@code dst} (its remaining bytes) with the tensor's bytes starting {@code offsetInTensor} bytes into it.
     * Works for any tensor size and any buffer kind (heap or direct).
     */
    public void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException {
        long n = dst.remaining();
        if (offsetInTensor < 0 || offsetInTensor > t.byteSize() || n > t.byteSize() - offsetInTensor) {
            throw new IllegalArgumentException(path + ": range [" + offsetInTensor + ", +" + n + ") is outside tensor '"
                    + t.name() + "' of " + t.byteSize() + " bytes");
        }
        readAbsolute(t.fileOffset() + offsetInTensor, dst);
    }

    private void readAbsolute(long position, ByteBuffer dst) throws IOException {
        if (dst.hasArray()) {
            int n = dst.remaining();
            readFully(position, dst.array(), dst.arrayOffset() + dst.position(), n);
            dst.position(dst.position() + n);
            return;
        }
        byte[] chunk = new byte[(int) Math.min(READ_CHUNK, dst.remaining())];
        long pos = position;
        while (dst.hasRemaining()) {
            int n = Math.min(chunk.length, dst.remaining());
            readFully(pos, chunk, 0, n);
            dst.put(chunk, 0, n);
            pos += n;
        }
    }

    private void readFully(long position, byte[] buf, int off, int len) throws IOException {
        try {
            for (int done = 0; done < len; ) {
                int n = Math.min(READ_CHUNK, len - done);
                in.readFully(position + done, buf, off + done, n);
                done += n;
            }
        } catch (EOFException e) {
            throw new ModelFormatException(path + ": unexpected end of file reading " + len + " bytes at " + position
                    + " (file changed or truncated since it was opened?)", e);
        }
    }

    /** The whole tensor in a little-endian heap buffer; tensors over 2 GiB must be read with {@link #readRange}. */
    public ByteBuffer readTensor(TensorInfo t) throws IOException {
        if (t.byteSize() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(path + ": tensor '" + t.name() + "' is " + t.byteSize()
                    + " bytes, too large for one heap buffer; read it in ranges");
        }
        ByteBuffer b = ByteBuffer.allocate((int) t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        readRange(t, 0, b);
        return b.flip();
    }

    public ByteBuffer readTensor(String name) throws IOException {
        return readTensor(tensor(name));
    }

    /** A floating-point tensor (F32, F16, BF16, F64) widened or narrowed to float; at most 2^31-1 elements. */
    public float[] readFloats(TensorInfo t) throws IOException {
        ByteBuffer b = readTensor(t);
        int n = (int) t.numElements();
        float[] out = new float[n];
        switch (t.dtype()) {
            case F32 -> b.asFloatBuffer().get(out);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Half.toFloat(b.getShort(2 * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Half.bf16ToFloat(b.getShort(2 * i));
                }
            }
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (float) b.getDouble(8 * i);
                }
            }
            default -> throw new ModelFormatException(path + ": tensor '" + t.name() + "' is " + t.dtype()
                    + ", not a floating-point tensor");
        }
        return out;
    }

    public float[] readFloats(String name) throws IOException {
        return readFloats(tensor(name));
    }

    @Override
    public void close() throws IOException {
        in.close();
    }

    @Override
    public String toString() {
        return path.toString();
    }
}
