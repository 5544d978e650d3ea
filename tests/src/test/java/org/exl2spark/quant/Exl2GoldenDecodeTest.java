package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Acceptance criterion 1: for every quantized linear of ExLlamaV2's 4.0 bpw golden conversion, our decoder gives the
 * fp16 weight ExLlamaV2's kernel reconstructed, bit for bit (MLP linears in its runtime layout, spec A.8).
 */
class Exl2GoldenDecodeTest {
    private static SafetensorsFile output;
    private static SafetensorsFile reference;
    private static TensorSource exl2;
    private static TensorSource dequant;

    @BeforeAll
    static void open() throws Exception {
        output = SafetensorsFile.open(SharedData.goldenExl2().resolve("output.safetensors").toString(),
                new Configuration());
        reference = SafetensorsFile.open(SharedData.goldenExl2().resolve("dequant-reference.safetensors").toString(),
                new Configuration());
        exl2 = TensorSource.of(output);
        dequant = TensorSource.of(reference);
    }

    @AfterAll
    static void close() throws Exception {
        output.close();
        reference.close();
    }

    /** Module keys of every EXL2 linear in the golden file. */
    static Set<String> quantizedKeys(TensorSource source) {
        Set<String> keys = new TreeSet<>();
        for (String name : source.names()) {
            if (name.endsWith(Exl2Layout.Q_WEIGHT)) {
                keys.add(name.substring(0, name.length() - Exl2Layout.Q_WEIGHT.length()));
            }
        }
        return keys;
    }

    @Test
    void everyLinearDecodesBitExactlyToExllamaV2sReconstruction() throws Exception {
        Set<String> keys = quantizedKeys(exl2);
        assertEquals(57, keys.size(), "8 layers x 7 linears + lm_head");
        Set<Integer> bitWidths = new TreeSet<>();
        List<String> failures = new ArrayList<>();
        for (String key : keys) {
            Exl2Linear linear = Exl2Linear.read(exl2, key);
            linear.layout().groups().forEach(g -> bitWidths.add(g.bits()));
            HalfMatrix expected = HalfMatrix.read(dequant, key + ".dq_in_out");
            HalfMatrix actual = runtimeLayout(key, linear);
            assertEquals(expected.rows(), actual.rows(), key);
            assertEquals(expected.cols(), actual.cols(), key);
            long diff = actual.firstDifference(expected);
            if (diff >= 0) {
                int r = (int) (diff / actual.cols());
                int c = (int) (diff % actual.cols());
                failures.add(key + " first differs at [" + r + ", " + c + "]: ours "
                        + String.format("0x%04x", actual.get(r, c)) + " reference "
                        + String.format("0x%04x", expected.get(r, c)));
            }
        }
        assertTrue(failures.isEmpty(), String.join("\n", failures));
        assertEquals(Set.of(3, 4, 5, 6, 8), bitWidths, "the golden file exercises these widths");
        assertEquals(57, dequant.names().stream().filter(n -> n.endsWith(".dq_in_out")).count());
    }

    /**
     * ExLlamaV2 keeps down_proj in stored row order and moves its permutation onto gate/up's output columns; the
     * reference holds that layout for MLP linears and the logical one for the rest.
     */
    private static HalfMatrix runtimeLayout(String key, Exl2Linear linear) throws Exception {
        if (key.endsWith(".mlp.down_proj")) {
            return linear.dequantizePermuted();
        }
        if (key.endsWith(".mlp.gate_proj") || key.endsWith(".mlp.up_proj")) {
            String down = key.substring(0, key.lastIndexOf('.')) + ".down_proj";
            return linear.dequantize().permuteColumns(Exl2Linear.read(exl2, down).perm());
        }
        return linear.dequantize();
    }

    @Test
    void logicalAndStoredOrderAreRelatedByThePermutation() throws Exception {
        Exl2Linear down = Exl2Linear.read(exl2, "model.layers.0.mlp.down_proj");
        HalfMatrix logical = down.dequantize();
        HalfMatrix stored = down.dequantizePermuted();
        assertEquals(stored, logical.permuteRows(down.perm()));
        assertEquals(logical, stored.permuteRows(down.invperm()));
        assertNotEquals(logical, stored, "act order moves rows, so the two orders differ");
        HalfMatrix hf = down.hfWeight();
        assertEquals(384, hf.rows());
        assertEquals(1024, hf.cols());
        for (int o = 0; o < hf.rows(); o += 37) {
            for (int i = 0; i < hf.cols(); i += 11) {
                if (hf.get(o, i) != logical.get(i, o)) {
                    fail("HF layout is not the transpose at [" + o + ", " + i + "]");
                }
            }
        }
    }
}
