package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.testing.HadoopFiles;
import org.exl2spark.testing.MiniHdfs;
import org.exl2spark.testing.PatternBytes;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A shard over 2 GiB, written as a stream and never held in memory: one I8 tensor of more than 2^31 bytes and
 * elements, with tensors after it whose file offsets lie past 2^31. Read back on local disk and on HDFS (where
 * 2^31 is also a 64 MB block boundary). S3 is left out: at about 90 MB/s through s3proxy it costs half a minute.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class LargeShardTest {
    private static final long TWO_GIB = 1L << 31;
    /** (2^15+1)(2^16+1) = 2^31 + 98,305 elements. */
    private static final TensorSpec FIRST = new TensorSpec("first", DType.F32, new long[] {3, 5});
    private static final TensorSpec BIG = new TensorSpec("big", DType.I8, new long[] {32_769, 65_537});
    private static final TensorSpec AFTER = new TensorSpec("after", DType.F16, new long[] {7, 300});
    private static final TensorSpec LAST = new TensorSpec("last", DType.I64, new long[] {5});
    private static final List<TensorSpec> SPECS = List.of(FIRST, BIG, AFTER, LAST);

    private static MiniHdfs hdfs;
    private static java.nio.file.Path localDir;

    @BeforeAll
    static void start() throws IOException {
        hdfs = new MiniHdfs();
        localDir = SharedData.scratch("large-shard");
    }

    @AfterAll
    static void stop() throws IOException {
        try {
            if (localDir != null) {
                FileSystem local = FileSystem.getLocal(new Configuration());
                local.delete(new Path(localDir.toUri()), true);
            }
        } finally {
            hdfs.close();
        }
    }

    private static long seedOf(TensorSpec t) {
        return SPECS.indexOf(t) + 1;
    }

    @ParameterizedTest
    @ValueSource(strings = {"local", "hdfs"})
    void readsAcrossTwoGibibytes(String store) throws IOException {
        Configuration conf = store.equals("hdfs") ? hdfs.configuration() : new Configuration();
        Path dir = store.equals("hdfs") ? hdfs.path("/large") : new Path(localDir.toUri());
        FileSystem fs = dir.getFileSystem(conf);
        Path file = new Path(dir, ModelDirectory.SINGLE);
        try {
            long written = SafetensorsWriter.writeFile(fs, file, SPECS, Map.of("format", "pt"),
                    (t, out) -> PatternBytes.write(seedOf(t), t.byteSize(), out));
            assertEquals(written, fs.getFileStatus(file).getLen());
            assertTrue(written > TWO_GIB + 98_305);
            assertEquals(List.of(ModelDirectory.SINGLE), List.copyOf(HadoopFiles.names(fs, dir)));

            try (ModelDirectory m = ModelDirectory.open(dir, conf)) {
                SafetensorsFile f = m.shardOf("big");
                TensorInfo big = m.tensor("big");
                assertEquals(TWO_GIB + 98_305, big.numElements());
                assertEquals(TWO_GIB + 98_305, big.byteSize());
                TensorInfo after = m.tensor("after");
                assertTrue(after.fileOffset() > TWO_GIB, "offset " + after.fileOffset());
                assertTrue(m.tensor("last").fileOffset() > TWO_GIB);

                // 40 MiB + 3 (several read chunks) into a direct buffer, across file offset and tensor offset 2^31
                long from = TWO_GIB - big.fileOffset() - (40 << 20) + 50_001;
                long to = from + (40 << 20) + 3;
                assertTrue(big.fileOffset() + from < TWO_GIB && from < TWO_GIB && to > TWO_GIB
                        && to <= big.byteSize());
                checkRange(f, big, from, ByteBuffer.allocateDirect((40 << 20) + 3));
                checkRange(f, big, TWO_GIB - 7, ByteBuffer.allocateDirect(15));
                checkRange(f, big, big.byteSize() - 777, ByteBuffer.allocateDirect(777));
                checkRange(f, big, 0, ByteBuffer.allocate(4099));
                checkRange(f, big, TWO_GIB + 5, ByteBuffer.allocate(1000));
                // a heap buffer slice: the array offset must be honoured
                ByteBuffer slice = ByteBuffer.allocate(3000).position(1000).slice();
                checkRange(f, big, TWO_GIB - 999, slice);

                // tensors wholly past 2^31, read as whole tensors and as floats
                ByteBuffer afterBytes = m.readTensor("after");
                assertEquals(-1, PatternBytes.firstMismatch(seedOf(AFTER), 0, afterBytes));
                float[] floats = m.readFloats("after");
                for (int i = 0; i < floats.length; i++) {
                    short bits = afterBytes.order(ByteOrder.LITTLE_ENDIAN).getShort(2 * i);
                    assertEquals(Float.floatToRawIntBits(Half.toFloat(bits)), Float.floatToRawIntBits(floats[i]));
                }
                assertEquals(-1, PatternBytes.firstMismatch(seedOf(LAST), 0, m.readTensor("last")));
                assertEquals(-1, PatternBytes.firstMismatch(seedOf(FIRST), 0, m.readTensor("first")));

                IllegalArgumentException tooBig = assertThrows(IllegalArgumentException.class,
                        () -> m.readTensor("big"));
                assertTrue(tooBig.getMessage().contains("too large for one heap buffer"), tooBig.getMessage());
                IllegalArgumentException past = assertThrows(IllegalArgumentException.class,
                        () -> f.readRange(big, big.byteSize() - 10, ByteBuffer.allocateDirect(11)));
                assertTrue(past.getMessage().contains("outside tensor 'big'"), past.getMessage());
            }
        } finally {
            fs.delete(file, false);
        }
        assertFalse(fs.exists(file));
    }

    private static void checkRange(SafetensorsFile f, TensorInfo t, long offset, ByteBuffer dst) throws IOException {
        int n = dst.remaining();
        f.readRange(t, offset, dst);
        assertFalse(dst.hasRemaining(), "buffer filled");
        dst.flip();
        long bad = PatternBytes.firstMismatch(seedOf(BIG), offset, dst);
        assertEquals(-1, bad, "range [" + offset + ", +" + n + ") of 'big' differs at tensor offset " + bad);
    }
}
