package org.exl2spark.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.quant.QParams;
import org.junit.jupiter.api.Test;

/** The planner on the example presets' real shapes (Qwen1.5-110B: hidden 8192, intermediate 49152). */
class MemoryPlannerTest {
    private static final long GB = 1_000_000_000L;
    private static final ModelArchitecture QWEN = ExampleModel.of(ExamplePreset.QWEN15_110B, 1, 0).architecture();
    private static final LayerSpec LAYER = QWEN.layer(0);

    private static MemoryPlanner planner(long budget) {
        return new MemoryPlanner(QWEN, budget, DeviceRates.H100);
    }

    private static TaskPlan measureMlp(long budget) {
        BlockSpec mlp = LAYER.mlp();
        return planner(budget).measureBlock(mlp, BlockMeasurement.table(mlp), 16, 2048);
    }

    @Test
    void qwenMlpMeasurementFitsTwentyFourGigabytesByHoldingFewerDequantizedWeights() {
        TaskPlan roomy = measureMlp(200 * GB);
        TaskPlan tight = measureMlp(24 * GB);
        int distinct = MemoryPlanner.distinctSettings(LAYER.mlp(), BlockMeasurement.table(LAYER.mlp())).size();
        assertEquals(distinct, roomy.dequantSlots(), "with room, every distinct setting is held");
        assertEquals(distinct, roomy.gptqRuns(), "and each is quantized once");
        assertTrue(tight.peakBytes() <= 24 * GB, tight.render());
        assertTrue(tight.dequantSlots() >= 3 && tight.dequantSlots() < distinct, tight.render());
        // the table never comes back to a setting it left, so three slots cost no second run
        assertEquals(distinct, tight.gptqRuns(), tight.render());
        assertTrue(tight.rowChunk() >= 1 && tight.rowChunk() <= 16, tight.render());
        // what always stays: fp32 weights (3 × 49152 × 8192) and the two Hessians (8192², 49152²)
        long resident = 4L * 3 * 49152 * 8192 + 4L * 8192 + 4L * 8192 * 8192 + 4L * 49152 * 49152;
        assertTrue(tight.peakBytes() > resident, tight.render());
        assertTrue(roomy.peakBytes() > tight.peakBytes());
    }

    @Test
    void fp16DequantizedWeightsLeaveRoomToKeepTheQwenMlpStatesOnTheDevice() {
        TaskPlan tight = measureMlp(24 * GB);
        // 16 rows × 2048 tokens × 8192 fp32, input and reference
        long states = 2 * 4L * 16 * 2048 * 8192;
        long fixed = 4L * 3 * 49152 * 8192 + 4L * 8192 + 4L * 8192 * 8192 + 4L * 49152 * 49152;
        assertTrue(tight.residentStates(), tight.render());
        assertTrue(tight.peakBytes() >= fixed + states + tight.dequantSlots() * DeviceBytes.halfTensor(49152L * 8192),
                tight.render());
        // fp32 weights left room for 3 with the states uploaded once per candidate; fp16 ones for more beside them
        assertTrue(tight.dequantSlots() >= 4, tight.render());
        assertTrue(tight.render().contains("states kept on the device"), tight.render());
        assertEquals(2L * 49152 * 8192, DeviceBytes.halfTensor(49152L * 8192));
    }

    @Test
    void scoringPassesAreMaximalRunsOfCandidatesWhoseSettingsFitTheSlots() {
        BlockSpec mlp = LAYER.mlp();
        List<Map<String, QParams>> table = BlockMeasurement.table(mlp);
        for (int slots : new int[] {3, 4, 6, 40}) {
            List<List<Integer>> passes = MemoryPlanner.scoringPasses(mlp, table, slots);
            List<Integer> order = passes.stream().flatMap(List::stream).toList();
            assertEquals(java.util.stream.IntStream.range(0, table.size()).boxed().toList(), order,
                    "every candidate once, in table order");
            for (int p = 0; p < passes.size(); p++) {
                List<Integer> pass = passes.get(p);
                assertTrue(MemoryPlanner.passSettings(mlp, table, pass).size() <= slots, slots + " slots: " + pass);
                if (p + 1 < passes.size()) {
                    List<Integer> grown = new java.util.ArrayList<>(pass);
                    grown.add(passes.get(p + 1).get(0));
                    assertTrue(MemoryPlanner.passSettings(mlp, table, grown).size() > slots,
                            slots + " slots: " + pass + " could have taken the next candidate");
                }
            }
        }
        assertEquals(1, MemoryPlanner.scoringPasses(mlp, table, 40).size(), "every setting held: one pass");
        assertEquals(table.size(), MemoryPlanner.scoringPasses(mlp, table, 3).size(), "three slots: one candidate each");
    }

    @Test
    void aBudgetBelowTheHessianFailsBeforeWorkNamingModuleShapeBytesAndBudget() {
        PlanException e = assertThrows(PlanException.class, () -> measureMlp(12 * GB));
        assertEquals("model.layers.0.mlp", e.module());
        assertEquals(12 * GB, e.budget());
        assertTrue(e.bytesNeeded() > 12 * GB);
        assertTrue(e.getMessage().contains("model.layers.0.mlp") && e.getMessage().contains("49152×8192")
                && e.getMessage().contains("12.00 GB"), e.getMessage());
        PlanException q = assertThrows(PlanException.class, () -> planner(12 * GB).quantizeBlock(LAYER.mlp(), 100,
                2048));
        assertEquals("model.layers.0.mlp", q.module());
    }

    @Test
    void rowChunksShrinkWithTheBudgetAndStayAtLeastOne() {
        TaskPlan big = planner(80 * GB).quantizeBlock(LAYER.attention(), 100, 2048);
        TaskPlan small = planner(4 * GB).quantizeBlock(LAYER.attention(), 100, 2048);
        assertTrue(big.rowChunk() > small.rowChunk(), big.render() + " / " + small.render());
        assertTrue(small.rowChunk() >= 1 && small.peakBytes() <= 4 * GB, small.render());
        TaskPlan forward = planner(24 * GB).forwardPartition(LAYER.mlp(), 4, 2048);
        assertTrue(forward.peakBytes() <= 24 * GB && forward.rowChunk() >= 1, forward.render());
    }

    @Test
    void inputGroupsFollowTheForward() {
        List<List<String>> attn = MemoryPlanner.inputGroups(LAYER.attention()).stream()
                .map(g -> g.stream().map(l -> l.shortName()).toList()).toList();
        assertEquals(List.of(List.of("q_proj", "k_proj", "v_proj"), List.of("o_proj")), attn);
        List<List<String>> mlp = MemoryPlanner.inputGroups(LAYER.mlp()).stream()
                .map(g -> g.stream().map(l -> l.shortName()).toList()).toList();
        assertEquals(List.of(List.of("gate_proj", "up_proj"), List.of("down_proj")), mlp);
    }

    @Test
    void leastRecentlyUsedCountingMatchesAHandWorkedTable() {
        BlockSpec mlp = LAYER.mlp();
        QParams a = QParams.of(128, new int[] {4}, new double[] {1});
        QParams b = QParams.of(64, new int[] {4}, new double[] {1});
        Map<String, QParams> rowA = Map.of("gate_proj", a, "up_proj", a, "down_proj", a);
        Map<String, QParams> rowB = Map.of("gate_proj", a, "up_proj", a, "down_proj", b);
        // three slots: row B keeps gate/up a (it needs them) and evicts down a for down b; row A again evicts down b
        // for down a: 3 + 1 + 1 runs. Four slots keep all four settings: 4 runs.
        assertEquals(5, MemoryPlanner.gptqRuns(mlp, List.of(rowA, rowB, rowA), 3));
        assertEquals(4, MemoryPlanner.gptqRuns(mlp, List.of(rowA, rowB, rowA), 4));
        // four slots score all three in one pass; three score each alone
        assertEquals(List.of(List.of(0, 1, 2)), MemoryPlanner.scoringPasses(mlp, List.of(rowA, rowB, rowA), 4));
        assertEquals(List.of(List.of(0), List.of(1), List.of(2)),
                MemoryPlanner.scoringPasses(mlp, List.of(rowA, rowB, rowA), 3));
    }

    @Test
    void devicebytesOfAGptqRunCountCodesDequantizedRowsErrorsAndTheScaleSearch() {
        long rows = 8192;
        long cols = 49152;
        long run = DeviceBytes.gptqRun(rows, cols, 128);
        // the scaled errors of a lazy block of 512 rows
        long block = 512;
        long lazy = 4 * block * cols;
        assertEquals(block, DeviceBytes.lazyBlockRows(rows, 128));
        assertEquals(300, DeviceBytes.lazyBlockRows(300, 128), "never taller than the weight");
        assertTrue(run >= rows * cols * 5 + lazy, "codes + dequantized + lazy block: " + run);
        assertTrue(run < rows * cols * 5 + lazy + (64L << 20), "scale search workspace is small: " + run);
        assertEquals(4 * 49152L * DeviceBytes.permutePanelRows(49152) + 4 * 49152L, DeviceBytes.permute(49152));
        assertTrue(DeviceBytes.permute(49152) <= (256L << 20) + 4 * 49152 * 2);
    }

    @Test
    void attentionKernelTimeIsCountedAtItsOwnRateForEveryForwardOfTheAttentionBlock() {
        DeviceRates h100 = DeviceRates.H100;
        DeviceRates slowAttention = new DeviceRates(h100.gemmFlops(), h100.fastGemmFlops(), h100.halfWeightFlops(),
                h100.attentionFlops() / 2, h100.gramFlops(), h100.lazyUpdateFlops(), h100.choleskyFlops(),
                h100.gridEvaluations(), h100.groupSeconds(), h100.bandwidth(), h100.hostToDevice(),
                h100.deviceToHost());
        MemoryPlanner fast = new MemoryPlanner(QWEN, 24 * GB, h100);
        MemoryPlanner slow = new MemoryPlanner(QWEN, 24 * GB, slowAttention);
        BlockSpec attention = LAYER.attention();
        int rows = 16;
        int tokens = 2048;
        // QKᵀ and PV over the causal half of one forward, at the H100's attention rate
        double oneForward = 4.0 * rows * QWEN.numHeads() * QWEN.headDim() * tokens * (tokens + 1) / 2.0
                / h100.attentionFlops();
        int forwards = 1 + BlockMeasurement.table(attention).size(); // the reference and every candidate
        double measureFast = fast.measureBlock(attention, BlockMeasurement.table(attention), rows, tokens).seconds();
        double measureSlow = slow.measureBlock(attention, BlockMeasurement.table(attention), rows, tokens).seconds();
        assertEquals(forwards * oneForward, measureSlow - measureFast, 1e-9 * measureSlow,
                "halving the attention rate adds one more attention time per forward");
        double quantizeFast = fast.quantizeBlock(attention, 100, tokens).seconds();
        double quantizeSlow = slow.quantizeBlock(attention, 100, tokens).seconds();
        assertEquals(100.0 / rows * oneForward, quantizeSlow - quantizeFast, 1e-9 * quantizeSlow,
                "the quantization pass's Hessian forward runs attention once over its rows");
        BlockSpec mlp = LAYER.mlp();
        assertEquals(fast.measureBlock(mlp, BlockMeasurement.table(mlp), rows, tokens).seconds(),
                slow.measureBlock(mlp, BlockMeasurement.table(mlp), rows, tokens).seconds(),
                "the MLP has no attention");
    }
}
