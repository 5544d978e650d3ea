package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.TensorSource;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** Embedding lookups read only the rows of the tokens present, in one request per run of consecutive ids. */
class EmbeddingRowsTest {

    /** Counts the requests and bytes that reach the file. */
    private static final class CountingSource implements TensorSource {
        final TensorSource inner;
        final AtomicLong requests = new AtomicLong();
        final AtomicLong bytes = new AtomicLong();

        CountingSource(TensorSource inner) {
            this.inner = inner;
        }

        @Override
        public String location() {
            return inner.location();
        }

        @Override
        public Set<String> names() {
            return inner.names();
        }

        @Override
        public TensorInfo tensor(String name) throws IOException {
            return inner.tensor(name);
        }

        @Override
        public void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException {
            requests.incrementAndGet();
            bytes.addAndGet(dst.remaining());
            inner.readRange(t, offsetInTensor, dst);
        }
    }

    @Test
    void readsExactlyTheRequestedRowsOfTheTinyModelsTable() throws Exception {
        try (ModelDirectory m = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            ModelArchitecture a = m.architecture();
            int hidden = a.hiddenSize();
            float[] table = m.readFloats(ModelArchitecture.EMBED);
            int[] ids = {0, 1, 2, 7, 500, 501, a.vocabSize() - 1};
            CountingSource source = new CountingSource(TensorSource.of(m));

            float[] rows = source.readRowsAsFloats(ModelArchitecture.EMBED, a.vocabSize(), hidden, ids);

            for (int i = 0; i < ids.length; i++) {
                assertArrayEquals(Arrays.copyOfRange(table, ids[i] * hidden, (ids[i] + 1) * hidden),
                        Arrays.copyOfRange(rows, i * hidden, (i + 1) * hidden), "row of token " + ids[i]);
            }
            assertEquals(4, source.requests.get(), "runs {0,1,2} {7} {500,501} {last}");
            assertEquals((long) ids.length * hidden * 2, source.bytes.get(), "fp16 rows only");
        }
    }

    @Test
    void rejectsUnsortedOrOutOfRangeIdsAndWrongShapes() throws Exception {
        try (ModelDirectory m = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            ModelArchitecture a = m.architecture();
            TensorSource source = TensorSource.of(m);
            String embed = ModelArchitecture.EMBED;
            IllegalArgumentException unsorted = assertThrows(IllegalArgumentException.class,
                    () -> source.readRowsAsFloats(embed, a.vocabSize(), a.hiddenSize(), new int[] {5, 3}));
            assertTrue(unsorted.getMessage().contains(embed), unsorted.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> source.readRowsAsFloats(embed, a.vocabSize(), a.hiddenSize(), new int[] {a.vocabSize()}));
            ModelFormatException shape = assertThrows(ModelFormatException.class,
                    () -> source.readRowsAsFloats(embed, a.vocabSize() + 1, a.hiddenSize(), new int[] {0}));
            assertTrue(shape.getMessage().contains(embed) && shape.getMessage().contains("expected"), shape.getMessage());
        }
    }
}
