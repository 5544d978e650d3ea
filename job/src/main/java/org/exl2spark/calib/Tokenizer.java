package org.exl2spark.calib;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.ByteArrayInputStream;
import java.io.Closeable;
import java.io.IOException;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.Storage;

/**
 * A model's tokenizer.json run by the Hugging Face tokenizers library (through DJL), encoding the way ExLlamaV2's
 * conversion and evaluation do: no BOS/EOS added, special-token strings not parsed as special, never truncated or
 * padded (DJL would otherwise truncate silently to 512 tokens). Safe to share between threads for {@link #encode}.
 */
public final class Tokenizer implements Closeable {
    public static final String FILE = "tokenizer.json";
    private static final Map<String, String> OPTIONS = Map.of(
            "addSpecialTokens", "false", "truncation", "false", "padding", "false");

    private final HuggingFaceTokenizer tokenizer;
    private final String source;

    private Tokenizer(HuggingFaceTokenizer tokenizer, String source) {
        this.tokenizer = tokenizer;
        this.source = source;
    }

    /** The tokenizer.json of a model directory (local path or Hadoop URI). */
    public static Tokenizer open(String modelLocation, Configuration conf) throws IOException {
        Path file = new Path(Storage.path(modelLocation), FILE);
        return fromJson(ModelDirectory.readSmallFile(Storage.fileSystem(file, conf), file), file.toString());
    }

    /** A tokenizer from the bytes of a tokenizer.json; {@code source} names it in errors. */
    public static Tokenizer fromJson(byte[] json, String source) throws IOException {
        try {
            return new Tokenizer(HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(json), OPTIONS), source);
        } catch (RuntimeException e) {
            // the native library reports parse errors without the file's name
            throw new ModelFormatException(source + ": not a usable tokenizer: " + e.getMessage(), e);
        }
    }

    /** Token ids of {@code text}, nothing added. */
    public int[] encode(String text) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) {
            out[i] = Math.toIntExact(ids[i]);
        }
        return out;
    }

    public String source() {
        return source;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
