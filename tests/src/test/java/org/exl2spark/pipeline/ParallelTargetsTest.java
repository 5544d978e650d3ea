package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.exl2spark.cli.Cli;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/**
 * Several bitrates quantize at once, one pipeline per target, and each target's output is the one a conversion to
 * that target alone publishes.
 */
class ParallelTargetsTest {

    @Test
    void targetsRunAtOnceAndEachPublishesTheBytesOfItsOwnConversion() throws Exception {
        Path dir = SharedData.scratch("parallel-targets");
        Cli.Result r = Conversions.exl2(Conversions.convertArgs(Conversions.exampleModel(2), dir.resolve("job"),
                dir.resolve("out"), "4.0,2.5", "--master", "local[2]")).ok();
        String out = r.out();
        // one after the other, 2.5 bpw would start quantizing only after 4.0 bpw's model was written
        int secondStarts = out.indexOf("quantize 2.5bpw layer 0 attention: 1 task");
        int firstDone = out.indexOf("4.0bpw: model written to");
        assertTrue(secondStarts >= 0 && firstDone >= 0 && secondStarts < firstDone, out);
        Conversions.assertSameFiles(Conversions.exampleBaseline(), dir.resolve("out/4.0bpw"),
                "4.0 bpw of a 4.0,2.5 conversion vs 4.0 alone");
    }
}
