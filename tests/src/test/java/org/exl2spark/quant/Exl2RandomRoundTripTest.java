package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.exl2spark.io.TensorSpec;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Random codes, scales, group layouts and permutations for every bit width: encode → write → read → decode must give
 * back the same codes and the weights of the spec's arithmetic (A.3–A.7), checked against a reference written here
 * from the spec alone (bit-by-bit stream extraction, fp16 rounding by search over all binary16 values).
 */
class Exl2RandomRoundTripTest {
    private static final int CASES_PER_WIDTH = 25;
    private static final int[] WIDTHS = {8, 6, 5, 4, 3, 2};

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4, 5, 6, 8})
    void randomLinearsRoundTrip(int bits) throws Exception {
        long seed = 0x5eed0000L + bits;
        Random rnd = new Random(seed);
        for (int c = 0; c < CASES_PER_WIDTH; c++) {
            checkRoundTrip(randomCase(rnd, bits, false), "seed " + seed + " case " + c);
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4})
    void everyWidthInOneTensor(long seed) throws Exception {
        checkRoundTrip(randomCase(new Random(seed), 0, true), "all widths, seed " + seed);
    }

    /** One random linear: its layout and the inputs of the encoder. */
    private record Case(Exl2Layout layout, byte[][] codes, byte[][] scaleCodes, short[] scaleMax, int[] invperm,
            short[] bias) {
    }

    private static Case randomCase(Random rnd, int bits, boolean allWidths) {
        List<Integer> groupBits = new ArrayList<>();
        List<Integer> groupRows = new ArrayList<>();
        if (allWidths) {
            for (int b : WIDTHS) {
                int n = 1 + rnd.nextInt(2);
                for (int i = 0; i < n; i++) {
                    groupBits.add(b);
                    groupRows.add(32 << rnd.nextInt(3));
                }
            }
        } else {
            // a mix: wider groups before, narrower after, always some of the width under test
            for (int b : WIDTHS) {
                int n = b == bits ? 1 + rnd.nextInt(4) : rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(2) : 0;
                int size = 32 << rnd.nextInt(3);
                for (int i = 0; i < n; i++) {
                    groupBits.add(b);
                    groupRows.add(size);
                }
            }
        }
        // a partial last group half of the time: any row count, so codes may end mid-word
        int last = groupRows.size() - 1;
        if (rnd.nextBoolean()) {
            groupRows.set(last, 1 + rnd.nextInt(groupRows.get(last)));
        }
        int height = groupRows.stream().mapToInt(Integer::intValue).sum();
        int width = 8 * (1 + rnd.nextInt(12));
        boolean hasBias = rnd.nextInt(3) == 0;
        Exl2Layout layout = Exl2Layout.of("test.layers.0.proj", height, width,
                groupBits.stream().mapToInt(Integer::intValue).toArray(),
                groupRows.stream().mapToInt(Integer::intValue).toArray(), hasBias);

        byte[][] codes = new byte[height][width];
        for (Exl2Group g : layout.groups()) {
            for (int r = g.rowStart(); r < g.rowStart() + g.rows(); r++) {
                for (int n = 0; n < width; n++) {
                    codes[r][n] = (byte) rnd.nextInt(g.maxCode() + 1);
                }
            }
        }
        int groups = layout.groups().size();
        byte[][] scaleCodes = new byte[groups][width];
        short[] scaleMax = new short[groups];
        for (int g = 0; g < groups; g++) {
            for (int n = 0; n < width; n++) {
                scaleCodes[g][n] = (byte) rnd.nextInt(16);
            }
            // magnitudes from 2^-22 to 2^3: after the 1/256 pre-scale many are fp16 subnormals, as in real files
            scaleMax[g] = rnd.nextInt(20) == 0 ? 0 : roundToHalf(Math.pow(2, -22 + 25 * rnd.nextDouble()));
        }
        int[] perm = new int[height];
        for (int i = 0; i < height; i++) {
            perm[i] = i;
        }
        for (int i = height - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        short[] bias = null;
        if (hasBias) {
            bias = new short[width];
            for (int n = 0; n < width; n++) {
                bias[n] = roundToHalf(rnd.nextGaussian());
            }
        }
        return new Case(layout, codes, scaleCodes, scaleMax, Exl2Linear.invertPermutation(perm), bias);
    }

    private static void checkRoundTrip(Case c, String what) throws Exception {
        Exl2Layout layout = c.layout();
        Exl2Linear encoded = Exl2Linear.encode(layout, c.codes(), c.scaleCodes(), c.scaleMax(), c.invperm(), c.bias());
        InMemoryTensors file = InMemoryTensors.of(encoded);
        String key = layout.key();
        what = what + " " + layout;

        // the written tensors hold the codes and scale codes where spec A.3/A.4 puts them, with zero padding
        ByteBuffer qWeight = file.bytesOf(key + Exl2Layout.Q_WEIGHT);
        assertEquals(4L * layout.qRows() * layout.width(), qWeight.capacity(), what);
        for (Exl2Group g : layout.groups()) {
            for (int n = 0; n < layout.width(); n++) {
                for (int r = 0; r < g.rows(); r++) {
                    assertEquals(c.codes()[g.rowStart() + r][n] & 0xff, streamField(qWeight, layout.width(), g, n,
                            (long) r * g.bits(), g.bits()), what + ": code of stored row " + (g.rowStart() + r));
                }
                long used = (long) g.rows() * g.bits();
                long end = 32L * g.qRows();
                assertEquals(0, streamField(qWeight, layout.width(), g, n, used, (int) (end - used)),
                        what + ": padding bits of group at row " + g.rowStart());
            }
        }
        ByteBuffer qScale = file.bytesOf(key + Exl2Layout.Q_SCALE);
        for (int g = 0; g < layout.groups().size(); g++) {
            for (int n = 0; n < layout.width(); n++) {
                int b = qScale.get(g * layout.width() / 2 + n / 2) & 0xff;
                assertEquals(c.scaleCodes()[g][n], n % 2 == 0 ? b & 0xf : b >>> 4, what + ": scale code " + g + "," + n);
            }
        }

        Exl2Linear decoded = Exl2Linear.read(file, key);
        assertEquals(layout.groups(), decoded.layout().groups(), what);
        assertArrayEquals(c.codes(), decoded.codes(), what);
        assertArrayEquals(c.scaleCodes(), decoded.scaleCodes(), what);
        assertArrayEquals(c.invperm(), decoded.invperm(), what);
        assertArrayEquals(c.bias(), decoded.bias(), what);

        HalfMatrix permuted = decoded.dequantizePermuted();
        HalfMatrix logical = decoded.dequantize();
        int[] perm = Exl2Linear.invertPermutation(c.invperm());
        for (Exl2Group g : layout.groups()) {
            int gi = layout.groups().indexOf(g);
            for (int r = g.rowStart(); r < g.rowStart() + g.rows(); r++) {
                int original = perm[r];
                for (int n = 0; n < layout.width(); n++) {
                    short expected = referenceWeight(c.codes()[r][n] & 0xff, g.bits(), c.scaleCodes()[gi][n],
                            c.scaleMax()[gi]);
                    assertEquals(expected, permuted.get(r, n), what + ": Wperm[" + r + "][" + n + "]");
                    assertEquals(expected, logical.get(original, n), what + ": W[" + original + "][" + n + "]");
                }
            }
        }

        // writing what was read gives the same bytes
        for (TensorSpec spec : decoded.tensorSpecs()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            decoded.writeTensor(spec, out);
            assertArrayEquals(file.bytesOf(spec.name()).array(), out.toByteArray(), what + ": " + spec.name());
        }
        assertTrue(decoded.layout().exl2Bits() > 0);
    }

    /** {@code count} bits of column n's stream in group g from stream bit {@code from}, one bit at a time. */
    private static long streamField(ByteBuffer qWeight, int width, Exl2Group g, int n, long from, int count) {
        long v = 0;
        for (int i = 0; i < count; i++) {
            long bit = from + i;
            long word = g.qRowStart() + bit / 32;
            int w = qWeight.order(ByteOrder.LITTLE_ENDIAN).getInt((int) (4 * (word * width + n)));
            v |= (long) ((w >>> (bit % 32)) & 1) << i;
        }
        return v;
    }

    /** Spec A.4–A.5 in exact double arithmetic with an independent round-to-nearest-even to binary16. */
    private static short referenceWeight(int q, int bits, int scaleCode, short scaleMax) {
        double m = halfValue(roundToHalf(halfValue(scaleMax) / 256));
        double s = halfValue(roundToHalf((scaleCode + 1) * (scaleCode + 1) * m));
        return roundToHalf((q - (1 << (bits - 1))) * s);
    }

    private static final double[] HALF_VALUES = new double[1 << 16];

    static {
        for (int h = 0; h < HALF_VALUES.length; h++) {
            HALF_VALUES[h] = decodeHalf(h);
        }
    }

    private static double halfValue(short h) {
        return HALF_VALUES[h & 0xffff];
    }

    /** Finite values only (the reference never meets Inf or NaN). */
    private static double decodeHalf(int bits) {
        int exp = (bits >>> 10) & 0x1f;
        int mant = bits & 0x3ff;
        double mag = exp == 0 ? mant * 0x1p-24 : (1 + mant / 1024.0) * Math.pow(2, exp - 15);
        return (bits & 0x8000) != 0 ? -mag : mag;
    }

    /** Nearest binary16 by binary search over the finite positive values (ordered like their bit patterns). */
    private static short roundToHalf(double x) {
        double a = Math.abs(x);
        int sign = x < 0 || (x == 0 && 1 / x < 0) ? 0x8000 : 0;
        if (a >= 65520) {
            return (short) (sign | 0x7c00);
        }
        int lo = 0;
        int hi = 0x7bff;
        while (lo < hi) { // largest h with value(h) <= a
            int mid = (lo + hi + 1) >>> 1;
            if (halfValue((short) mid) <= a) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        int h = lo;
        if (h < 0x7bff) { // above 65504 and below 65520 stays at 65504
            double down = a - halfValue((short) h);
            double up = halfValue((short) (h + 1)) - a;
            if (up < down || (up == down && (h & 1) == 1)) {
                h++;
            }
        }
        return (short) (sign | h);
    }
}
