package org.exl2spark.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Evaluation token preparation (EXL2-SPEC.md H.3) with the tiny model's tokenizer. */
class ForwardEvalTokensTest {
    private static Tokenizer tokenizer;

    @BeforeAll
    static void open() throws Exception {
        tokenizer = Tokenizer.open(SharedData.tinyModel().toString(), new Configuration());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void heldoutMatrixMatchesExllamaV2() throws Exception {
        TokenRows rows = EvalTokens.fromFile(SharedData.heldoutText().toString(), new Configuration(), tokenizer, 40, 2048);
        assertEquals(40, rows.rows());
        assertEquals(2048, rows.length());
        assertArrayEquals(new int[] {3496, 332, 530, 3533, 477, 1532, 359, 10}, Arrays.copyOf(rows.row(0), 8));
        assertEquals("eb4427c0c779e208a275584f67c945585eeddc96efca6ad3e70ba0c3a0d28294", rows.sha256());
    }

    @Test
    void encodesWithoutSpecialTokensOrTruncation() {
        String piece = "word ".repeat(3000);
        int[] ids = tokenizer.encode(piece);
        assertTrue(ids.length > 2000, "truncated to " + ids.length);
        assertTrue(ids[0] != 0 && ids[ids.length - 1] != 1, "BOS/EOS added");
    }

    @Test
    void piecesAreCodePointsNotUtf16Units() throws Exception {
        // 7999 ASCII + one non-BMP character fill the first 8000-code-point piece exactly (8001 UTF-16 units)
        String first = "a".repeat(7999) + "\uD83D\uDE00";
        String second = "b c d e f g ".repeat(40);
        int[] a = tokenizer.encode(first);
        int[] b = tokenizer.encode(second);
        int length = 5;
        int rows = (a.length + b.length) / length;
        TokenRows got = EvalTokens.fromText(first + second, "mixed text", tokenizer, rows, length);
        int[] expected = new int[rows * length];
        System.arraycopy(a, 0, expected, 0, a.length);
        System.arraycopy(b, 0, expected, a.length, expected.length - a.length);
        assertArrayEquals(expected, got.ids());
    }

    @Test
    void tooShortTextNamesTheFile() throws Exception {
        Path file = SharedData.scratch("short").resolve("short.txt");
        Files.writeString(file, "Only a few words here.", StandardCharsets.UTF_8);
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> EvalTokens.fromFile(file.toString(), new Configuration(), tokenizer, 40, 2048));
        assertTrue(e.getMessage().contains("short.txt") && e.getMessage().contains("81920"), e.getMessage());
    }

    @Test
    void invalidUtf8NamesTheFile() throws Exception {
        Path file = SharedData.scratch("latin1").resolve("latin1.txt");
        Files.write(file, "caf\u00e9 ".repeat(10).getBytes(StandardCharsets.ISO_8859_1));
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> EvalTokens.fromFile(file.toString(), new Configuration(), tokenizer, 1, 4));
        assertTrue(e.getMessage().contains("latin1.txt") && e.getMessage().contains("UTF-8"), e.getMessage());
    }

    @Test
    void brokenTokenizerFileIsNamed() {
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Tokenizer.fromJson("{\"foo\": 1}".getBytes(StandardCharsets.UTF_8), "some/tokenizer.json"));
        assertTrue(e.getMessage().startsWith("some/tokenizer.json"), e.getMessage());
    }
}
