package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Acceptance criterion 2: unpacking every golden linear to codes, scale codes and group sizes, then encoding those,
 * gives ExLlamaV2's tensors byte for byte (bits after the last row of a partial group excepted, spec A.3).
 */
class Exl2GoldenRoundTripTest {
    private static SafetensorsFile output;
    private static TensorSource exl2;

    @BeforeAll
    static void open() throws Exception {
        output = SafetensorsFile.open(SharedData.goldenExl2().resolve("output.safetensors").toString(),
                new Configuration());
        exl2 = TensorSource.of(output);
    }

    @AfterAll
    static void close() throws Exception {
        output.close();
    }

    @Test
    void decodeThenEncodeReproducesEveryGoldenTensor() throws Exception {
        Set<String> keys = Exl2GoldenDecodeTest.quantizedKeys(exl2);
        assertEquals(57, keys.size());
        int tensorsCompared = 0;
        for (String key : keys) {
            Exl2Linear golden = Exl2Linear.read(exl2, key);
            Exl2Layout layout = golden.layout();
            int[] bits = layout.groups().stream().mapToInt(Exl2Group::bits).toArray();
            int[] rows = layout.groups().stream().mapToInt(Exl2Group::rows).toArray();
            Exl2Layout rebuilt = Exl2Layout.of(key, layout.height(), layout.width(), bits, rows, layout.hasBias());
            Exl2Linear encoded = Exl2Linear.encode(rebuilt, golden.codes(), golden.scaleCodes(), golden.scaleMax(),
                    golden.invperm(), golden.bias());

            Set<String> expectedNames = new TreeSet<>();
            for (String n : exl2.names()) {
                if (n.startsWith(key + ".q_") || n.equals(key + ".bias")) {
                    expectedNames.add(n);
                }
            }
            Set<String> writtenNames = new TreeSet<>();
            for (TensorSpec spec : encoded.tensorSpecs()) {
                writtenNames.add(spec.name());
                TensorInfo ref = exl2.tensor(spec.name());
                assertEquals(ref.dtype(), spec.dtype(), spec.name());
                assertArrayEquals(ref.shape(), spec.shape(), spec.name());
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                encoded.writeTensor(spec, out);
                byte[] ours = out.toByteArray();
                byte[] theirs = exl2.readAll(ref).array();
                assertEquals(theirs.length, ours.length, spec.name());
                if (spec.name().endsWith(Exl2Layout.Q_WEIGHT)) {
                    assertQWeightEqual(spec.name(), rebuilt, theirs, ours);
                } else {
                    assertArrayEquals(theirs, ours, spec.name());
                }
                tensorsCompared++;
            }
            assertEquals(expectedNames, writtenNames, key + ": the same set of tensors");
        }
        assertEquals(57 * 5, tensorsCompared);
    }

    /** Equal words, except bits past the last row of a partial final group, which carry no code. */
    static void assertQWeightEqual(String name, Exl2Layout layout, byte[] expected, byte[] actual) {
        ByteBuffer e = ByteBuffer.wrap(expected).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer a = ByteBuffer.wrap(actual).order(ByteOrder.LITTLE_ENDIAN);
        int width = layout.width();
        List<String> diffs = new ArrayList<>();
        for (int qRow = 0; qRow < layout.qRows(); qRow++) {
            int mask = meaningfulBits(layout, qRow);
            for (int n = 0; n < width; n++) {
                int i = 4 * (qRow * width + n);
                if (((e.getInt(i) ^ a.getInt(i)) & mask) != 0 && diffs.size() < 5) {
                    diffs.add(String.format("q-row %d column %d: expected 0x%08x got 0x%08x (mask 0x%08x)", qRow, n,
                            e.getInt(i), a.getInt(i), mask));
                }
            }
        }
        assertTrue(diffs.isEmpty(), name + ":\n" + String.join("\n", diffs));
    }

    /** Bits of a q-row word that hold code bits: all, except in the final word of a partial last group. */
    static int meaningfulBits(Exl2Layout layout, int qRow) {
        Exl2Group last = layout.groups().get(layout.groups().size() - 1);
        int usedInLastWord = (int) ((long) last.rows() * last.bits() % 32);
        if (qRow == layout.qRows() - 1 && usedInLastWord != 0) {
            return (1 << usedInLastWord) - 1;
        }
        return -1;
    }
}
