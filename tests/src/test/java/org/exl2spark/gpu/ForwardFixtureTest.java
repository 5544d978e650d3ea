package org.exl2spark.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.ForwardingWeightSource;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** The GPU bundle's copy of the tiny model: what it reads back is what the model directory gives, bit for bit. */
class ForwardFixtureTest {
    private static final Configuration CONF = new Configuration();

    @Test
    void theTinyModelAndItsTokensComeBackBitForBit() throws IOException {
        Path model = SharedData.tinyModel();
        Path file = SharedData.scratch("forward-fixture").resolve("tiny.bin");
        TokenRows tokens = new TokenRows(2, 3, new int[] {5, 17, 4095, 0, 1, 2});
        try (WeightSource source = WeightSources.open(model.toString(), CONF)) {
            ForwardFixture.write(Files.readAllBytes(model.resolve("config.json")), source, tokens, file);
            ForwardFixture.Contents read = ForwardFixture.read(file);
            ModelArchitecture arch = source.architecture();
            assertEquals(arch.numLayers(), read.architecture().numLayers());
            assertEquals(arch.vocabSize(), read.architecture().vocabSize());
            assertEquals(2, read.tokens().rows());
            assertArrayEquals(tokens.ids(), read.tokens().ids());
            WeightSource copy = read.weights();
            int[] rows = {0, 1, 300, 4095};
            assertArrayEquals(source.embeddingRows(rows), copy.embeddingRows(rows));
            for (LayerSpec layer : arch.layers()) {
                for (BlockSpec block : layer.blocks()) {
                    assertArrayEquals(source.norm(block.normName()), copy.norm(block.normName()), block.normName());
                    for (LinearSpec l : block.linears()) {
                        assertArrayEquals(source.linearWeight(l), copy.linearWeight(l), l.key());
                        assertArrayEquals(source.bias(l), copy.bias(l), l.key());
                    }
                }
            }
            assertArrayEquals(source.norm(ModelArchitecture.FINAL_NORM), copy.norm(ModelArchitecture.FINAL_NORM));
            assertArrayEquals(source.linearWeight(arch.lmHead()), copy.linearWeight(arch.lmHead()));
            IllegalArgumentException outside = assertThrows(IllegalArgumentException.class,
                    () -> copy.embeddingRows(new int[] {4096}));
            assertTrue(outside.getMessage().contains("4096"), outside.getMessage());
        }
    }

    @Test
    void aWeightThatIsNotAnFp16ValueIsRefused() throws IOException {
        Path model = SharedData.tinyModel();
        Path file = SharedData.scratch("forward-fixture").resolve("not-fp16.bin");
        try (WeightSource source = WeightSources.open(model.toString(), CONF)) {
            WeightSource widened = new ForwardingWeightSource(source) {
                @Override
                public float[] norm(String tensorName) throws IOException {
                    float[] n = base.norm(tensorName);
                    n[7] = 0.1f;  // 0.1 has no exact fp16 form
                    return n;
                }
            };
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ForwardFixture.write(
                    Files.readAllBytes(model.resolve("config.json")), widened, new TokenRows(1, 2, new int[] {1, 2}),
                    file));
            assertTrue(e.getMessage().contains("norm") && e.getMessage().contains("element 7")
                    && e.getMessage().contains("fp16"), e.getMessage());
        }
    }

    @Test
    void anotherFileIsNamedAsNotAFixture() throws IOException {
        Path file = SharedData.scratch("forward-fixture").resolve("other.bin");
        try (DataOutputStream out = new DataOutputStream(new GZIPOutputStream(Files.newOutputStream(file)))) {
            out.writeUTF("something else");
        }
        IOException e = assertThrows(IOException.class, () -> ForwardFixture.read(file));
        assertTrue(e.getMessage().contains("other.bin") && e.getMessage().contains("not a forward fixture"),
                e.getMessage());
    }
}
