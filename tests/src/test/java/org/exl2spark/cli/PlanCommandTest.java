package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlanCommandTest {
    @TempDir
    Path dir;

    /** A model directory holding only the Qwen1.5-110B preset's config.json: plan reads nothing else. */
    private Path qwenConfigOnly(int layers) throws Exception {
        Files.write(dir.resolve("config.json"), ExampleModel.of(ExamplePreset.QWEN15_110B, layers, 0).configJson());
        return dir;
    }

    @Test
    void plansEveryTaskOfAQwenLayerUnderTwentyFourGigabytes() throws Exception {
        String out = Cli.run("plan", qwenConfigOnly(2).toString(), "--budget", "24000000000", "-b", "4.0,3.0").ok()
                .out();
        assertTrue(out.contains("2 layers, hidden 8192, intermediate 49152"), out);
        assertTrue(out.contains("measure  model.layers.0.mlp"), out);
        assertTrue(out.contains("quantize model.layers.0.mlp"), out);
        assertTrue(out.contains("forward  model.layers.0.mlp") && out.contains("×25"), out);
        assertTrue(out.contains("measurement (16 rows × 2048 tokens):\n"), out);
        assertTrue(out.contains("quantization 4.00 bpw") && out.contains("quantization 3.00 bpw"), out);
        // 2 layers × 2 blocks measured; per target 2 layers × 2 blocks × (1 + 25 partitions of 4 of the 100 rows)
        assertTrue(out.contains("  4 tasks, largest peak"), out);
        assertTrue(out.contains("  104 tasks, largest peak"), out);
        assertTrue(out.contains("whole job: largest task peak") && out.contains("of 22.35 GiB (24.00 GB)"), out);
        assertTrue(!out.contains("model.layers.1.mlp"), "layer 1 only with --all: " + out);
        String all = Cli.run("plan", dir.toString(), "--budget", "24g", "--all", "-m").ok().out();
        assertTrue(all.contains("quantize model.layers.1.mlp") && !all.contains("measurement ("), all);
    }

    @Test
    void aBudgetTooSmallFailsBeforeAnyWorkNamingModuleAndBudget() throws Exception {
        String line = Cli.run("plan", qwenConfigOnly(1).toString(), "--budget", "8g").oneLineError(1, "exl2 plan");
        assertTrue(line.contains("model.layers.0") && line.contains("needs") && line.contains("8.00 GiB"), line);
    }

    @Test
    void badOptionsAreNamed() throws Exception {
        String line = Cli.run("plan", qwenConfigOnly(1).toString(), "--budget", "lots").oneLineError(1, "exl2 plan");
        assertTrue(line.contains("--budget") && line.contains("lots"), line);
        String missing = Cli.run("plan", dir.resolve("nothing").toString()).oneLineError(1, "exl2 plan");
        assertTrue(missing.contains("config.json"), missing);
    }

    @Test
    void budgetSizesReadLikeSparkMemorySizes() {
        assertEquals(24L << 30, org.exl2spark.plan.ByteSize.parse("24g", "--budget"));
        assertEquals(24L << 30, org.exl2spark.plan.ByteSize.parse("24G", "--budget"));
        assertEquals(512L << 20, org.exl2spark.plan.ByteSize.parse("512m", "--budget"));
        assertEquals(24_000_000_000L, org.exl2spark.plan.ByteSize.parse("24000000000", "--budget"));
    }

    @Test
    void theSharedTinyModelPlansWithTheDefaultBudget() {
        String out = Cli.run("plan", SharedData.tinyModel().toString()).ok().out();
        assertTrue(out.contains("8 layers") && out.contains("of 79.00 GiB"), out);
    }
}
