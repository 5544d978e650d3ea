package org.exl2spark.example;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Weights drawn in memory are the ones {@code exl2 example} writes to its shards. */
class ExampleWeightsTest {
    @TempDir
    Path dir;

    @Test
    void drawnInMemoryEqualsWrittenAndReadBack() throws Exception {
        ExampleModel model = ExampleModel.of(ExamplePreset.TINY, 2, 7);
        Configuration conf = new Configuration();
        Path modelDir = dir.resolve("model");
        model.write(FileSystem.getLocal(conf), new org.apache.hadoop.fs.Path(modelDir.toUri()), 1L << 20);
        try (WeightSource written = WeightSources.open(modelDir.toString(), conf);
                ExampleWeights drawn = new ExampleWeights(model)) {
            ModelArchitecture arch = drawn.architecture();
            for (LinearSpec l : arch.layer(1).mlp().linears()) {
                assertArrayEquals(written.linearWeight(l), drawn.linearWeight(l), l.key());
            }
            assertArrayEquals(written.linearWeight(arch.lmHead()), drawn.linearWeight(arch.lmHead()));
            String norm = arch.layer(0).attention().normName();
            assertArrayEquals(written.norm(norm), drawn.norm(norm), norm);
            int[] ids = {0, 17, 4095};
            assertArrayEquals(written.embeddingRows(ids), drawn.embeddingRows(ids));
        }
    }
}
