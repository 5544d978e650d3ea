package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** The same conversion on one and on two executor threads publishes the same bytes. */
class DeterminismTest {

    @Test
    void oneAndTwoTaskSlotsGiveIdenticalOutput() throws Exception {
        Path twoSlots = Conversions.exampleBaseline();
        Path dir = SharedData.scratch("determinism-local1");
        Conversions.exl2(Conversions.exampleArgs(dir.resolve("job"), dir.resolve("out"), "local[1]")).ok();
        assertArrayEquals(Files.readAllBytes(twoSlots.resolveSibling("job").resolve("measurement.json")),
                Files.readAllBytes(dir.resolve("job/measurement.json")), "measurement.json, local[1] vs local[2]");
        Conversions.assertSameFiles(twoSlots, dir.resolve("out"), "local[2] vs local[1]");
    }
}
