package org.exl2spark.calib;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.Storage;

/**
 * Evaluation tokens prepared the way this project's reference perplexities were measured with ExLlamaV2's
 * test_inference (EXL2-SPEC.md H.3): the text, read as consecutive pieces of {@value #PIECE_CODE_POINTS} code points
 * (the records of the parquet file ExLlamaV2 was given), each piece encoded on its own without BOS/EOS, the ids
 * concatenated until rows×length are collected, the first rows×length kept and cut into rows.
 */
public final class EvalTokens {
    public static final int PIECE_CODE_POINTS = 8000;

    private EvalTokens() {
    }

    /** Tokens from a UTF-8 text file on any Hadoop file system (read only as far as needed). */
    public static TokenRows fromFile(String location, Configuration conf, Tokenizer tokenizer, int rows, int length)
            throws IOException {
        Path path = Storage.path(location);
        FileSystem fs = Storage.fileSystem(path, conf);
        if (!fs.exists(path) || fs.getFileStatus(path).isDirectory()) {
            throw new ModelFormatException(path + ": text file not found");
        }
        try (InputStream in = fs.open(path)) {
            return fromReader(strictUtf8(in), path.toString(), tokenizer, rows, length);
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(path + ": not valid UTF-8 text (" + e + ")", e);
        }
    }

    public static TokenRows fromText(String text, String source, Tokenizer tokenizer, int rows, int length)
            throws IOException {
        return fromReader(new java.io.StringReader(text), source, tokenizer, rows, length);
    }

    private static TokenRows fromReader(Reader text, String source, Tokenizer tokenizer, int rows, int length)
            throws IOException {
        RowCollector collector = new RowCollector(rows, length);
        int pieces = 0;
        long codePoints = 0;
        StringBuilder piece = new StringBuilder();
        while (!collector.full()) {
            int n = readPiece(text, piece);
            if (n == 0) {
                throw new ModelFormatException(source + ": too short for " + rows + " rows × " + length + " tokens: its "
                        + codePoints + " code points (" + pieces + " pieces of " + PIECE_CODE_POINTS + ") give "
                        + collector.collected() + " tokens, " + collector.needed() + " needed");
            }
            codePoints += n;
            pieces++;
            collector.add(tokenizer.encode(piece.toString()));
        }
        return collector.rows();
    }

    /** Reads the next piece of up to {@value #PIECE_CODE_POINTS} code points into {@code piece}; returns its count. */
    private static int readPiece(Reader in, StringBuilder piece) throws IOException {
        piece.setLength(0);
        int count = 0;
        while (count < PIECE_CODE_POINTS) {
            int c = in.read();
            if (c < 0) {
                break;
            }
            piece.append((char) c);
            if (Character.isHighSurrogate((char) c)) {
                // strict UTF-8 decoding only yields surrogates in pairs: the pair is one code point
                int low = in.read();
                if (low >= 0) {
                    piece.append((char) low);
                }
            }
            count++;
        }
        return count;
    }

    private static Reader strictUtf8(InputStream in) {
        return new java.io.BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)), 1 << 16);
    }
}
