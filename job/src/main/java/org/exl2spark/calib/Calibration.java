package org.exl2spark.calib;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.Storage;

/**
 * Calibration token rows for the measurement and quantization passes, from one of three sources:
 * <ul>
 * <li>a parquet file: ExLlamaV2's semantics (EXL2-SPEC H.2), records' columns joined by spaces, encodings
 * concatenated, cut into rows;</li>
 * <li>a UTF-8 text file: read as consecutive pieces of 8000 code points, each a record, otherwise as parquet;</li>
 * <li>the built-in default: text written for this project in five genres (technical prose, source code, general
 * prose, multilingual text, structured data and math), shipped in the jar.</li>
 * </ul>
 * The default mirrors the shape of ExLlamaV2's own: contiguous rows of each genre, mostly English prose and technical
 * text ({@link #MIX}), two rows of uniformly random token ids (they exercise rarely used embedding rows and keep
 * Hessians well conditioned), and, for the larger quantization set, rows stitched from 128-token chunks drawn by
 * genre with a fixed seed. Measurement rows are the first rows of the quantization set. Everything is deterministic.
 */
public final class Calibration {
    /** ExLlamaV2's default calibration row counts (measurement, quantization). */
    public static final int DEFAULT_MEASURE_ROWS = 19;
    public static final int DEFAULT_QUANT_ROWS = 115;
    static final String[] GENRES = {"technical", "code", "prose", "multilingual", "structured"};
    static final String RESOURCE_DIR = "/org/exl2spark/calib/default/";
    static final String DOC_SEPARATOR = "<|doc|>";
    static final int RANDOM_ROWS = 2;
    static final int CHUNK = 128;
    static final long SEED = 0x45584c32L;

    private Calibration() {
    }

    /** Whether {@code location} names parquet (by extension) rather than text. */
    static boolean isParquet(String location) {
        return location.toLowerCase(java.util.Locale.ROOT).endsWith(".parquet");
    }

    /** Rows from a user's parquet or text file; fails, naming the file, when it holds fewer tokens than needed. */
    public static TokenRows fromFile(String location, Configuration conf, Tokenizer tokenizer, int rows, int length)
            throws IOException {
        if (!isParquet(location)) {
            return EvalTokens.fromFile(location, conf, tokenizer, rows, length);
        }
        Path path = Storage.path(location);
        RowCollector collector = new RowCollector(rows, length);
        ParquetRecords.forEach(path, conf, record -> !collector.add(tokenizer.encode(record)));
        if (!collector.full()) {
            throw new ModelFormatException(path + ": too few calibration tokens: the file gives " + collector.collected()
                    + ", " + rows + " rows × " + length + " need " + collector.needed());
        }
        return collector.rows();
    }

    /**
     * Share of each genre (in {@link #GENRES} order) among the measurement rows and the stitched rows. Like
     * ExLlamaV2's default, English prose and technical text dominate, with code and a minority of multilingual and
     * structured text.
     */
    static final double[] MIX = {0.35, 0.22, 0.28, 0.10, 0.05};

    /** The built-in calibration set: {@code rows} rows of {@code length} tokens. */
    public static TokenRows defaultRows(Tokenizer tokenizer, int vocabSize, int rows, int length) throws IOException {
        List<List<int[]>> contiguous = new ArrayList<>();
        List<int[]> genreTokens = new ArrayList<>();
        for (String genre : GENRES) {
            int[] tokens = tokenizer.encode(String.join("\n\n", documents(genre)));
            genreTokens.add(tokens);
            List<int[]> cut = new ArrayList<>();
            for (int k = 0; (long) (k + 1) * length <= tokens.length; k++) {
                cut.add(Arrays.copyOfRange(tokens, k * length, (k + 1) * length));
            }
            contiguous.add(cut);
        }
        List<int[]> out = new ArrayList<>();
        // measurement rows first (they are the first rows of the quantization set): each genre's quota
        int[] taken = new int[GENRES.length];
        int quotaRows = DEFAULT_MEASURE_ROWS - RANDOM_ROWS;
        for (int g = 0; g < GENRES.length; g++) {
            int quota = (int) Math.round(MIX[g] * quotaRows);
            for (; taken[g] < Math.min(quota, contiguous.get(g).size()) && out.size() < quotaRows; taken[g]++) {
                out.add(contiguous.get(g).get(taken[g]));
            }
        }
        SplittableRandom rng = new SplittableRandom(SEED);
        for (int r = 0; r < RANDOM_ROWS; r++) {
            int[] row = new int[length];
            for (int i = 0; i < length; i++) {
                row[i] = rng.nextInt(vocabSize);
            }
            out.add(row);
        }
        for (int g = 0; g < GENRES.length; g++) {
            out.addAll(contiguous.get(g).subList(taken[g], contiguous.get(g).size()));
        }
        // then rows stitched from 128-token chunks, each chunk's genre drawn by MIX
        while (out.size() < rows) {
            int[] row = new int[length];
            for (int i = 0; i < length; i += CHUNK) {
                int[] pool = genreTokens.get(pickGenre(rng, genreTokens));
                int start = rng.nextInt(pool.length - CHUNK + 1);
                System.arraycopy(pool, start, row, i, Math.min(CHUNK, length - i));
            }
            out.add(row);
        }
        int[] ids = new int[Math.multiplyExact(rows, length)];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(out.get(r), 0, ids, r * length, length);
        }
        return new TokenRows(rows, length, ids);
    }

    private static int pickGenre(SplittableRandom rng, List<int[]> genreTokens) {
        double u = rng.nextDouble();
        for (int g = 0; g < MIX.length; g++) {
            u -= MIX[g];
            if (u < 0 && genreTokens.get(g).length >= CHUNK) {
                return g;
            }
        }
        return 0;
    }

    /** The documents of one genre of the built-in set. */
    static List<String> documents(String genre) throws IOException {
        String name = RESOURCE_DIR + genre + ".txt";
        try (InputStream in = Calibration.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("built-in calibration text " + name + " is missing from the jar");
            }
            String text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            List<String> docs = new ArrayList<>();
            for (String d : text.split("\\R" + java.util.regex.Pattern.quote(DOC_SEPARATOR) + "\\R")) {
                if (!d.isBlank()) {
                    docs.add(d.strip());
                }
            }
            return docs;
        }
    }

    /** Whether a calibration location exists, for an early clear error. */
    public static void checkReadable(String location, Configuration conf) throws IOException {
        Path path = Storage.path(location);
        FileSystem fs = Storage.fileSystem(path, conf);
        if (!fs.exists(path) || fs.getFileStatus(path).isDirectory()) {
            throw new ModelFormatException(path + ": calibration file not found");
        }
    }
}
