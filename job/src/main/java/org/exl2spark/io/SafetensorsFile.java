package org.exl2spark.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import java.io.Closeable;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options.OpenFileOptions;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.StreamCapabilities;
import org.apache.hadoop.util.functional.FutureIO;

/**
 * A safetensors file on any Hadoop file system: the header is parsed and validated on open, tensor bytes are read
 * with positioned reads on demand. All offsets are {@code long}; tensors of any size can be read in ranges.
 * Positioned reads do not move the stream, so one instance may serve several threads.
 *
 * <p>Opening costs one metadata request (none when the caller already has the {@link FileStatus}, e.g. from a
 * directory listing) and one ranged read that usually holds the whole header; on an object store every further
 * read is one ranged GET.
 */
public final class SafetensorsFile implements Closeable {
    /** The safetensors reference implementation refuses headers above 100 MB; so do we. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    /** Largest single read request; bigger ranges are split so no read buffer exceeds it. */
    static final int READ_CHUNK = 16 << 20;
    /** Bytes read at offset 0 on open: enough for the header of any usual shard, so opening is one request. */
    static final int HEADER_PREFETCH = 256 << 10;

    /** No name interning: a hostile header of millions of names must not fill (or collide in) a symbol table. */
    private static final JsonFactory JSON = JsonFactory.builder()
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES).build();

    private final Path path;
    private final FSDataInputStream in;
    private final boolean byteBufferReads;
    private final long fileLength;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, FSDataInputStream in, long fileLength, long dataStart,
            Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.in = in;
        // only HDFS reads straight into a ByteBuffer at a position; elsewhere readFully(long, ByteBuffer) throws
        this.byteBufferReads = in.hasCapability(StreamCapabilities.PREADBYTEBUFFER);
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
        FileStatus status;
        try {
            status = fs.getFileStatus(path);
        } catch (FileNotFoundException e) {
            throw new ModelFormatException(path + ": file not found", e);
        }
        return open(fs, status);
    }

    /** Opens a file whose status the caller already has (from a listing), saving the metadata request. */
    public static SafetensorsFile open(FileSystem fs, FileStatus status) throws IOException {
        Path path = status.getPath();
        if (!status.isFile()) {
            throw new ModelFormatException(path + ": not a file");
        }
        FSDataInputStream in;
        try {
            // random: tensors are read as ranges in any order; an object store must not stream to end of file
            in = FutureIO.awaitFuture(fs.openFile(path).withFileStatus(status)
                    .opt(OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY,
                            OpenFileOptions.FS_OPTION_OPENFILE_READ_POLICY_RANDOM)
                    .build());
        } catch (FileNotFoundException e) {
            throw new ModelFormatException(path + ": file not found", e);
        }
        try {
            return parse(path, in, status.getLen());
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
        byte[] prefix = new byte[(int) Math.min(fileLength, HEADER_PREFETCH)];
        readFully(path, in, 0, prefix, 0, prefix.length);
        long headerLen = ByteBuffer.wrap(prefix, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
            throw new ModelFormatException(path + ": header length " + Long.toUnsignedString(headerLen)
                    + " is outside 2.." + MAX_HEADER_BYTES + " bytes (corrupt or not a safetensors file)");
        }
        if (headerLen > fileLength - 8) {
            throw new ModelFormatException(path + ": header length " + headerLen + " runs past the end of the file ("
                    + fileLength + " bytes; truncated?)");
        }
        byte[] header = Arrays.copyOfRange(prefix, 8, (int) Math.min(prefix.length, 8 + headerLen));
        if (header.length < headerLen) {
            int have = header.length;
            header = Arrays.copyOf(header, (int) headerLen);
            readFully(path, in, 8 + have, header, have, header.length - have);
        }
        long dataStart = 8 + headerLen;
        Header h = parseHeader(path, header, dataStart, fileLength - dataStart);
        return new SafetensorsFile(path, in, fileLength, dataStart, h.tensors, h.metadata);
    }

    private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    }

    /**
     * Parses the header with a streaming parser (no JSON tree: a hostile 100 MB header must not cost gigabytes) and
     * checks every entry against the data section.
     */
    private static Header parseHeader(Path path, byte[] header, long dataStart, long dataLength)
            throws ModelFormatException {
        checkUtf8(path, header);
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = null;
        try (JsonParser p = JSON.createParser(header)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new ModelFormatException(path + ": header is not a JSON object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                if (name.equals("__metadata__")) {
                    if (metadata != null) {
                        throw new ModelFormatException(path + ": header has __metadata__ twice");
                    }
                    metadata = parseMetadata(path, p);
                } else {
                    TensorInfo t = parseEntry(path, name, p, dataStart, dataLength);
                    if (tensors.putIfAbsent(name, t) != null) {
                        throw new ModelFormatException(path + ": duplicate tensor name '" + name + "' in the header");
                    }
                }
            }
            if (p.currentToken() != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw new ModelFormatException(path + ": header is not valid JSON: unexpected content after the"
                        + " top-level object at header byte " + p.currentTokenLocation().getByteOffset());
            }
        } catch (JsonProcessingException e) {
            String at = e.getLocation() == null ? "" : " (at header byte " + e.getLocation().getByteOffset() + ")";
            throw new ModelFormatException(path + ": header is not valid JSON: " + e.getOriginalMessage() + at);
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new ModelFormatException(path + ": header could not be parsed: " + e.getMessage(), e);
        }
        checkNoOverlap(path, tensors.values());
        return new Header(Collections.unmodifiableMap(tensors),
                metadata == null ? Map.of() : Collections.unmodifiableMap(metadata));
    }

    /** Validates UTF-8 without building a string of the whole header. */
    private static void checkUtf8(Path path, byte[] header) throws ModelFormatException {
        CharsetDecoder decoder = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer bytes = ByteBuffer.wrap(header);
        CharBuffer chars = CharBuffer.allocate(8192);
        while (true) {
            CoderResult r = decoder.decode(bytes, chars, true);
            if (r.isError()) {
                throw new ModelFormatException(path + ": header is not valid UTF-8 (bad byte sequence at header byte "
                        + bytes.position() + ")");
            }
            if (r.isUnderflow()) {
                return;
            }
            chars.clear();
        }
    }

    private static Map<String, String> parseMetadata(Path path, JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw new ModelFormatException(path + ": __metadata__ is not an object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            if (p.nextToken() != JsonToken.VALUE_STRING) {
                throw new ModelFormatException(path + ": __metadata__ value of '" + key + "' is not a string");
            }
            if (metadata.putIfAbsent(key, p.getText()) != null) {
                throw new ModelFormatException(path + ": __metadata__ has key '" + key + "' twice");
            }
        }
        return metadata;
    }

    private static TensorInfo parseEntry(Path path, String name, JsonParser p, long dataStart, long dataLength)
            throws IOException {
        String where = path + ": tensor '" + name + "': ";
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw new ModelFormatException(where + "entry is not an object");
        }
        DType dtype = null;
        long[] shape = null;
        long[] offsets = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "dtype" -> {
                    if (dtype != null) {
                        throw new ModelFormatException(where + "dtype given twice");
                    }
                    if (value != JsonToken.VALUE_STRING) {
                        throw new ModelFormatException(where + "dtype is not a string");
                    }
                    dtype = DType.fromHeader(p.getText());
                    if (dtype == null) {
                        throw new ModelFormatException(where + "unknown dtype '" + p.getText() + "'");
                    }
                }
                case "shape" -> {
                    if (shape != null) {
                        throw new ModelFormatException(where + "shape given twice");
                    }
                    shape = readLongs(where, "shape", p);
                }
                case "data_offsets" -> {
                    if (offsets != null) {
                        throw new ModelFormatException(where + "data_offsets given twice");
                    }
                    offsets = readLongs(where, "data_offsets", p);
                    if (offsets.length != 2) {
                        throw new ModelFormatException(where + "data_offsets " + Arrays.toString(offsets)
                                + " must be [begin, end]");
                    }
                }
                default -> p.skipChildren(); // the format allows fields it does not define
            }
        }
        if (dtype == null) {
            throw new ModelFormatException(where + "missing dtype");
        }
        if (shape == null) {
            throw new ModelFormatException(where + "missing shape");
        }
        if (offsets == null) {
            throw new ModelFormatException(where + "missing data_offsets");
        }
        long begin = offsets[0];
        long end = offsets[1];
        String off = Arrays.toString(offsets);
        if (end < begin) {
            throw new ModelFormatException(where + "data_offsets " + off + " end before they begin");
        }
        if (end > dataLength) {
            throw new ModelFormatException(where + "data_offsets " + off + " run past the end of the data section ("
                    + dataLength + " bytes; file truncated?)");
        }
        long count = TensorInfo.elementCount(shape);
        long expected = count < 0 || count > Long.MAX_VALUE / dtype.bytes() ? -1 : count * dtype.bytes();
        if (expected != end - begin) {
            throw new ModelFormatException(where + "shape " + Arrays.toString(shape) + " of " + dtype + " needs "
                    + (expected < 0 ? "more than 2^63" : String.valueOf(expected)) + " bytes but data_offsets "
                    + off + " hold " + (end - begin));
        }
        return new TensorInfo(name, dtype, shape, begin, end, dataStart);
    }

    /** A JSON array of non-negative integers that fit a long; anything else (1.5, "3", -1, 2^64) is refused. */
    private static long[] readLongs(String where, String field, JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw new ModelFormatException(where + field + " is not an array");
        }
        long[] values = new long[4];
        int n = 0;
        for (JsonToken t = p.nextToken(); t != JsonToken.END_ARRAY; t = p.nextToken()) {
            if (t != JsonToken.VALUE_NUMBER_INT || p.getNumberType() == JsonParser.NumberType.BIG_INTEGER
                    || p.getLongValue() < 0) {
                throw new ModelFormatException(where + field + " has an element '" + p.getText()
                        + "' that is not a non-negative 64-bit integer");
            }
            if (n == values.length) {
                values = Arrays.copyOf(values, n * 2);
            }
            values[n++] = p.getLongValue();
        }
        return Arrays.copyOf(values, n);
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
        TensorInfo own = tensors.get(t.name());
        if (!t.equals(own)) {
            // a TensorInfo of another file would silently read the wrong bytes
            throw new IllegalArgumentException(path + ": tensor '" + t.name() + "' does not belong to this file");
        }
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
            readFully(path, in, position, dst.array(), dst.arrayOffset() + dst.position(), n);
            dst.position(dst.position() + n);
            return;
        }
        if (byteBufferReads) {
            try {
                in.readFully(position, dst);
            } catch (EOFException e) {
                throw truncated(path, position, dst.remaining(), e);
            }
            return;
        }
        byte[] chunk = new byte[Math.min(READ_CHUNK, dst.remaining())];
        long pos = position;
        while (dst.hasRemaining()) {
            int n = Math.min(chunk.length, dst.remaining());
            readFully(path, in, pos, chunk, 0, n);
            dst.put(chunk, 0, n);
            pos += n;
        }
    }

    private static void readFully(Path path, FSDataInputStream in, long position, byte[] buf, int off, int len)
            throws IOException {
        try {
            for (int done = 0; done < len; ) {
                int n = Math.min(READ_CHUNK, len - done);
                in.readFully(position + done, buf, off + done, n);
                done += n;
            }
        } catch (EOFException e) {
            throw truncated(path, position, len, e);
        }
    }

    private static ModelFormatException truncated(Path path, long position, long len, EOFException e) {
        return new ModelFormatException(path + ": unexpected end of file reading " + len + " bytes at " + position
                + " (file changed or truncated since it was opened?)", e);
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
        checkFloating(t, path.toString());
        return toFloats(readTensor(t), t.dtype(), (int) t.numElements());
    }

    /** Fails, naming {@code where} and the tensor, unless it is F32, F16, BF16 or F64. */
    public static void checkFloating(TensorInfo t, String where) throws ModelFormatException {
        switch (t.dtype()) {
            case F32, F16, BF16, F64 -> {
            }
            default -> throw new ModelFormatException(where + ": tensor '" + t.name() + "' is " + t.dtype()
                    + ", not a floating-point tensor");
        }
    }

    /** {@code n} little-endian values of a floating-point dtype, widened or narrowed to float. */
    public static float[] toFloats(ByteBuffer b, DType dtype, int n) {
        float[] out = new float[n];
        toFloats(b, dtype, out, 0, n);
        return out;
    }

    /** The values {@link #toFloats(ByteBuffer, DType, int)} returns, written into {@code out[offset, offset + n)}. */
    public static void toFloats(ByteBuffer b, DType dtype, float[] out, int offset, int n) {
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(0, out, offset, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = Half.toFloat(b.getShort(2 * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = Half.bf16ToFloat(b.getShort(2 * i));
                }
            }
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[offset + i] = (float) b.getDouble(8 * i);
                }
            }
            default -> throw new IllegalArgumentException(dtype + " is not a floating-point dtype");
        }
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
