package org.exl2spark.calib;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The built-in calibration set with the tiny model's tokenizer, at ExLlamaV2's default row counts. */
class DefaultCalibrationTest {
    private static final int VOCAB = 4096;
    private static final int LENGTH = 2048;
    private static Tokenizer tokenizer;
    private static List<int[]> genreTokens;
    private static TokenRows quant;

    @BeforeAll
    static void open() throws Exception {
        tokenizer = Tokenizer.open(SharedData.tinyModel().toString(), new Configuration());
        genreTokens = new ArrayList<>();
        for (String genre : Calibration.GENRES) {
            genreTokens.add(tokenizer.encode(String.join("\n\n", Calibration.documents(genre))));
        }
        quant = Calibration.defaultRows(tokenizer, VOCAB, Calibration.DEFAULT_QUANT_ROWS, LENGTH);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void measurementRowsAreTheQuantizationSetsFirstRows() throws Exception {
        TokenRows measure = Calibration.defaultRows(tokenizer, VOCAB, Calibration.DEFAULT_MEASURE_ROWS, LENGTH);
        for (int r = 0; r < measure.rows(); r++) {
            assertArrayEquals(measure.row(r), quant.row(r), "row " + r);
        }
    }

    @Test
    void everyTextRowIsAWindowOfOneGenresNaturalText() {
        int measureTextRows = Calibration.DEFAULT_MEASURE_ROWS - Calibration.RANDOM_ROWS;
        int random = 0;
        for (int r = 0; r < quant.rows(); r++) {
            int[] row = quant.row(r);
            boolean window = genreTokens.stream().anyMatch(tokens -> occursIn(row, tokens));
            if (r >= measureTextRows && r < Calibration.DEFAULT_MEASURE_ROWS) {
                random++;
                assertTrue(!window, "row " + r + " should be random ids");
            } else {
                assertTrue(window, "row " + r + " is not a contiguous piece of one genre's text");
            }
        }
        assertEquals(Calibration.RANDOM_ROWS, random);
    }

    @Test
    void rowsAreDistinctAndDeterministic() throws Exception {
        Set<String> seen = new HashSet<>();
        for (int r = 0; r < quant.rows(); r++) {
            assertTrue(seen.add(Arrays.toString(quant.row(r))), "row " + r + " repeats an earlier row");
        }
        assertEquals(quant.sha256(),
                Calibration.defaultRows(tokenizer, VOCAB, Calibration.DEFAULT_QUANT_ROWS, LENGTH).sha256());
    }

    @Test
    void offsetRowsStartWhereThePreviousCutEnded() {
        // past the contiguous rows, the first shifted rows start half a row into a genre's text
        int[] technical = genreTokens.get(0);
        int[] halfShifted = Arrays.copyOfRange(technical, LENGTH / 2, LENGTH / 2 + LENGTH);
        boolean found = false;
        for (int r = 0; r < quant.rows(); r++) {
            found |= Arrays.equals(quant.row(r), halfShifted);
        }
        assertTrue(found, "the technical text's first half-shifted window is not among the rows");
    }

    @Test
    void moreRowsThanTheTextHoldsIsAClearError() {
        // rows longer than any genre's text: only the random rows can be made
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Calibration.defaultRows(tokenizer, VOCAB, Calibration.DEFAULT_MEASURE_ROWS, 1 << 20));
        assertTrue(e.getMessage().contains("-c"), e.getMessage());
    }

    private static boolean occursIn(int[] row, int[] tokens) {
        for (int start = 0; start + row.length <= tokens.length; start++) {
            if (tokens[start] == row[0] && Arrays.equals(tokens, start, start + row.length, row, 0, row.length)) {
                return true;
            }
        }
        return false;
    }
}
