package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.CodePacking;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Bad EXL2 input, made by mutating golden tensors in memory: each must fail with an {@link Exl2FormatException}
 * that names the module and the problem. The module is layer 0's down_proj: q_groups (8,0),(8,8),(4,16),(4,32) …
 * (4,128), height 1024, width 384, 136 q-rows.
 */
class Exl2ValidationTest {
    private static final String KEY = "model.layers.0.mlp.down_proj";
    private static SafetensorsFile output;
    private InMemoryTensors tensors;

    @BeforeAll
    static void open() throws Exception {
        output = SafetensorsFile.open(SharedData.goldenExl2().resolve("output.safetensors").toString(),
                new Configuration());
    }

    @AfterAll
    static void close() throws Exception {
        output.close();
    }

    @BeforeEach
    void fresh() {
        tensors = new InMemoryTensors(TensorSource.of(output));
    }

    @Test
    void unmodifiedGoldenModuleIsAccepted() throws Exception {
        Exl2Linear linear = Exl2Linear.read(tensors, KEY);
        assertEquals(1024, linear.inFeatures());
        assertEquals(384, linear.outFeatures());
        assertEquals(136, linear.layout().qRows());
        assertEquals("8b 2x32, 4b 7x128+64", linear.layout().groupSummary());
    }

    // ---- q-tensors: truncated, mis-shaped, wrong type, missing ----

    @Test
    void truncatedQWeightData() throws Exception {
        byte[] data = bytes(KEY + ".q_weight");
        tensors.put(KEY + ".q_weight", DType.I32, new long[] {136, 384}, Arrays.copyOf(data, data.length - 4 * 384));
        assertRejected("q_weight' [136, 384] × I32 does not match its 207360 bytes of data (truncated?)");
    }

    @Test
    void qWeightWithAMissingQRow() throws Exception {
        byte[] data = bytes(KEY + ".q_weight");
        tensors.put(KEY + ".q_weight", DType.I32, new long[] {135, 384}, Arrays.copyOf(data, 135 * 384 * 4));
        assertRejected("q_weight [135, 384] has 135 q-rows but q_groups describe 136");
    }

    @Test
    void qWeightOfTheWrongRank() throws Exception {
        tensors.put(KEY + ".q_weight", DType.I32, new long[] {136 * 384}, bytes(KEY + ".q_weight"));
        assertRejected("q_weight' has shape [52224], expected 2 dimensions");
    }

    @Test
    void qWeightOfTheWrongType() throws Exception {
        tensors.put(KEY + ".q_weight", DType.F32, new long[] {136, 384}, bytes(KEY + ".q_weight"));
        assertRejected("q_weight' is F32, expected I32");
    }

    @Test
    void qScaleOfTheWrongWidth() throws Exception {
        byte[] data = bytes(KEY + ".q_scale");
        tensors.put(KEY + ".q_scale", DType.I32, new long[] {10, 47}, Arrays.copyOf(data, 10 * 47 * 4));
        assertRejected("q_scale' has shape [10, 47], expected [10, 48]");
    }

    @Test
    void qScaleMaxForTooFewGroups() throws Exception {
        tensors.put(KEY + ".q_scale_max", DType.F16, new long[] {9}, Arrays.copyOf(bytes(KEY + ".q_scale_max"), 18));
        assertRejected("q_scale_max' has shape [9], expected [10]");
    }

    @Test
    void missingScaleMax() throws Exception {
        tensors.remove(KEY + ".q_scale_max");
        assertRejected("tensor '" + KEY + ".q_scale_max' is missing");
    }

    @Test
    void nonFiniteScaleMax() throws Exception {
        ByteBuffer b = tensors.bytesOf(KEY + ".q_scale_max");
        b.putShort(2 * 3, Half.fromFloat(Float.NaN));
        tensors.put(KEY + ".q_scale_max", DType.F16, new long[] {10}, b.array());
        assertRejected("q_scale_max[3] is NaN");
    }

    @Test
    void biasOfTheWrongLength() throws Exception {
        tensors.put(KEY + ".bias", DType.F16, new long[] {383}, new byte[2 * 383]);
        assertRejected("bias' has shape [383], expected [384]");
    }

    // ---- q_groups ----

    @Test
    void groupsCoveringMoreRowsThanTheLinearHas() throws Exception {
        setGroupField(9, 1, 200); // last group's q-row start: group 8 then spans 88 q-rows = 704 4-bit rows
        assertRejected("q_groups cover 1536 rows before the last of 10 groups, but the linear has only 1024 input rows");
    }

    @Test
    void groupsThatDoNotDescribeTheQWeightRows() throws Exception {
        setGroupField(2, 1, 24); // second 8-bit group grows to 64 rows, the last group shrinks, q-rows no longer add up
        assertRejected("q_weight [136, 384] has 136 q-rows but q_groups describe 140");
    }

    @Test
    void oddLengthGroupTable() throws Exception {
        tensors.put(KEY + ".q_groups", DType.I16, new long[] {19}, Arrays.copyOf(bytes(KEY + ".q_groups"), 38));
        assertRejected("q_groups [19] must hold a non-empty list of (bits, q-row start) pairs");
    }

    @Test
    void qRowStartsNotIncreasing() throws Exception {
        setGroupField(3, 1, 16); // group 3 starts where group 2 does
        assertRejected("q_groups q-row starts are not increasing: group 2 starts at 16, group 3 at 16");
    }

    @Test
    void firstGroupNotAtQRowZero() throws Exception {
        setGroupField(0, 1, 1);
        assertRejected("group 0 starts at q-row 1, not 0");
    }

    @Test
    void groupOfAFractionalNumberOfRows() throws Exception {
        setGroupField(3, 0, 5); // 16 q-rows are 102.4 5-bit rows
        assertRejected("group 3 spans 16 q-rows, not a whole number of 5-bit rows");
    }

    @Test
    void groupOfRowsNotAMultipleOf32() throws Exception {
        setGroupField(1, 1, 4); // group 0 (8-bit) shrinks to 4 q-rows = 16 rows
        assertRejected("group 0 has 16 rows; every group but the last must hold a multiple of 32 rows");
    }

    @Test
    void groupsOutOfBitOrder() throws Exception {
        setGroupField(3, 0, 8); // an 8-bit group after a 4-bit one (16 q-rows = 64 rows, so shapes still fit)
        assertRejected("group 3 has 8 bits after a 4-bit group; groups must come in non-increasing bit order");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 7, 9, 16, 0xffff})
    void bitWidthOutsideTheEncodableSet(int bits) throws Exception {
        setGroupField(3, 0, bits);
        assertRejected("group 3 has " + bits + " bits; EXL2 allows 2, 3, 4, 5, 6 or 8");
    }

    // ---- permutation ----

    @Test
    void permutationWithADuplicate() throws Exception {
        ByteBuffer p = tensors.bytesOf(KEY + ".q_invperm");
        int dup = p.getInt(4 * 5);
        p.putInt(4 * 6, dup);
        tensors.put(KEY + ".q_invperm", DType.I32, new long[] {1024}, p.array());
        assertRejected("q_invperm is not a permutation of 0..1023: value " + dup + " appears twice (again at entry 6)");
    }

    @ParameterizedTest
    @ValueSource(ints = {-1, 1024, Integer.MAX_VALUE})
    void permutationEntryOutOfRange(int value) throws Exception {
        ByteBuffer p = tensors.bytesOf(KEY + ".q_invperm");
        p.putInt(4 * 7, value);
        tensors.put(KEY + ".q_invperm", DType.I32, new long[] {1024}, p.array());
        assertRejected("q_invperm is not a permutation of 0..1023: entry 7 is " + value + ", outside 0..1023");
    }

    @Test
    void permutationOfTheWrongLength() throws Exception {
        tensors.put(KEY + ".q_invperm", DType.I32, new long[] {900}, Arrays.copyOf(bytes(KEY + ".q_invperm"), 3600));
        // the groups before the last already hold 2 x 32 + 7 x 128 = 960 rows
        assertRejected("q_groups cover 960 rows before the last of 10 groups, but the linear has only 900 input rows");
    }

    @Test
    void storedQPermThatIsNotTheInverse() throws Exception {
        byte[] identity = new byte[4 * 1024];
        ByteBuffer b = ByteBuffer.wrap(identity).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 1024; i++) {
            b.putInt(4 * i, i);
        }
        tensors.put(KEY + ".q_perm", DType.I32, new long[] {1024}, identity);
        assertRejected("q_perm is present but is not the inverse of q_invperm");
    }

    @Test
    void storedQPermThatIsTheInverseIsAccepted() throws Exception {
        int[] perm = Exl2Linear.read(tensors, KEY).perm();
        ByteBuffer b = ByteBuffer.allocate(4 * perm.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(perm);
        tensors.put(KEY + ".q_perm", DType.I32, new long[] {perm.length}, b.array());
        assertEquals(1024, Exl2Linear.read(tensors, KEY).inFeatures());
    }

    // ---- encoder arguments ----

    @Test
    void encoderRejectsInconsistentArguments() throws Exception {
        Exl2Linear g = Exl2Linear.read(tensors, KEY);
        Exl2Layout layout = g.layout();
        byte[][] codes = g.codes();
        byte[][] scales = g.scaleCodes();
        short[] max = g.scaleMax();
        int[] invperm = g.invperm();

        byte[][] tooWide = deepCopy(codes);
        tooWide[100][3] = 16; // rows 64.. are in 4-bit groups
        assertEncoderRejects("code 16 at stored row 100, column 3 does not fit 4 bits",
                () -> Exl2Linear.encode(layout, tooWide, scales, max, invperm, null));
        byte[][] badScale = deepCopy(scales);
        badScale[2][5] = 16;
        assertEncoderRejects("scale code 16 of group 2, column 5 does not fit 4 bits",
                () -> Exl2Linear.encode(layout, codes, badScale, max, invperm, null));
        int[] notPerm = invperm.clone();
        notPerm[0] = notPerm[1];
        assertEncoderRejects("q_invperm is not a permutation",
                () -> Exl2Linear.encode(layout, codes, scales, max, notPerm, null));
        assertEncoderRejects("9 max scales for 10 groups",
                () -> Exl2Linear.encode(layout, codes, scales, Arrays.copyOf(max, 9), invperm, null));
        assertEncoderRejects("the layout has no bias but one was given",
                () -> Exl2Linear.encode(layout, codes, scales, max, invperm, new short[384]));
        assertEncoderRejects("1023 rows of codes, expected 1024",
                () -> Exl2Linear.encode(layout, Arrays.copyOf(codes, 1023), scales, max, invperm, null));
    }

    @Test
    void packedCodesGiveTheGoldenQWeightAndAWrongShapeIsNamed() throws Exception {
        Exl2Linear g = Exl2Linear.read(tensors, KEY);
        Exl2Layout layout = g.layout();
        byte[][] codes = g.codes();
        int[][] words = new int[layout.qRows()][layout.width()];
        for (Exl2Group group : layout.groups()) {
            CodePacking.packGroup(codes, group.rowStart(), group.rows(), group.bits(), words, group.qRowStart());
        }
        Exl2Linear packed = Exl2Linear.ofPacked(layout, words, g.scaleCodes(), g.scaleMax(), g.invperm(), null);
        for (TensorSpec t : packed.tensorSpecs()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            packed.writeTensor(t, out);
            assertArrayEquals(bytes(t.name()), out.toByteArray(), t.name());
        }
        assertEncoderRejects("1 q-rows of packed codes, the groups need " + layout.qRows(),
                () -> Exl2Linear.ofPacked(layout, Arrays.copyOf(words, 1), g.scaleCodes(), g.scaleMax(),
                        g.invperm(), null));
        int[][] narrow = words.clone();
        narrow[3] = Arrays.copyOf(words[3], layout.width() - 1);
        assertEncoderRejects("packed q-row 3 has " + (layout.width() - 1) + " words, expected " + layout.width(),
                () -> Exl2Linear.ofPacked(layout, narrow, g.scaleCodes(), g.scaleMax(), g.invperm(), null));
    }

    @Test
    void layoutBuilderRejectsWhatTheFormatCannotHold() {
        assertEncoderRejects("group 1 has 7 bits",
                () -> Exl2Layout.of(KEY, 256, 64, new int[] {8, 7}, new int[] {128, 128}, false));
        assertEncoderRejects("group 1 has 8 bits after a 4-bit group",
                () -> Exl2Layout.of(KEY, 256, 64, new int[] {4, 8}, new int[] {128, 128}, false));
        assertEncoderRejects("group 0 has 48 rows; every group but the last must hold a multiple of 32 rows",
                () -> Exl2Layout.of(KEY, 256, 64, new int[] {4, 4}, new int[] {48, 208}, false));
        assertEncoderRejects("groups cover 192 rows but the linear has 256",
                () -> Exl2Layout.of(KEY, 256, 64, new int[] {4, 4}, new int[] {128, 64}, false));
        assertEncoderRejects("groups 0..1 cover 288 rows but the linear has only 256",
                () -> Exl2Layout.of(KEY, 256, 64, new int[] {4, 4}, new int[] {128, 160}, false));
        assertEncoderRejects("width 60 is not a positive multiple of 8",
                () -> Exl2Layout.of(KEY, 256, 60, new int[] {4}, new int[] {256}, false));
        assertEncoderRejects("beyond the 16-bit q_groups field",
                () -> Exl2Layout.of(KEY, 262_176, 8, new int[] {8, 8}, new int[] {262_144, 32}, false));
    }

    private void assertRejected(String expectedProblem) {
        Exl2FormatException e = assertThrows(Exl2FormatException.class, () -> Exl2Linear.read(tensors, KEY));
        assertEquals(KEY, e.moduleKey());
        assertTrue(e.getMessage().contains("EXL2 linear '" + KEY + "'"), e.getMessage());
        assertTrue(e.getMessage().contains(expectedProblem), "expected '" + expectedProblem + "' in: " + e.getMessage());
        // the metadata-only reader used by inspect finds the same header and table problems
        if (!expectedProblem.contains("q_invperm is not") && !expectedProblem.contains("q_perm is")
                && !expectedProblem.contains("q_scale_max[")) {
            Exl2FormatException m = assertThrows(Exl2FormatException.class, () -> Exl2Layout.read(tensors, KEY));
            assertEquals(e.getMessage(), m.getMessage());
        }
    }

    private static void assertEncoderRejects(String expectedProblem, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains("EXL2 linear '" + KEY + "'"), e.getMessage());
        assertTrue(e.getMessage().contains(expectedProblem), "expected '" + expectedProblem + "' in: " + e.getMessage());
    }

    private byte[] bytes(String name) throws Exception {
        return tensors.bytesOf(name).array();
    }

    /** Sets field {@code which} (0 = bits, 1 = q-row start) of group {@code group} in q_groups. */
    private void setGroupField(int group, int which, int value) throws Exception {
        ByteBuffer t = tensors.bytesOf(KEY + ".q_groups");
        t.putShort(4 * group + 2 * which, (short) value);
        tensors.put(KEY + ".q_groups", DType.I16, new long[] {20}, t.array());
    }

    private static byte[][] deepCopy(byte[][] a) {
        byte[][] c = new byte[a.length][];
        for (int i = 0; i < a.length; i++) {
            c[i] = a[i].clone();
        }
        return c;
    }
}
