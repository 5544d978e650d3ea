package org.exl2spark.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.pipeline.BlockRunner;
import org.exl2spark.pipeline.HiddenStates;
import org.exl2spark.quant.BlockCandidate;
import org.junit.jupiter.api.Test;

/**
 * A block's measurement scores its candidates the same whether every setting's weights are held (candidates share
 * the forward up to the output projection), the memory planner allows only one candidate's weights at a time, or a
 * few candidates' per scoring pass with the states kept on the backend.
 */
class MeasurementSharingTest {

    @Test
    void sharedAndOneAtATimeMeasurementsAgree() throws Exception {
        RandomWeights w = new RandomWeights(RandomWeights.config("LlamaForCausalLM", 64, 4, 2, 128, 1, 50, ""), 5);
        ModelArchitecture a = w.architecture();
        Random r = new Random(3);
        int rows = 2;
        int tokens = 24;
        float[] states = new float[rows * tokens * a.hiddenSize()];
        for (int i = 0; i < states.length; i++) {
            states[i] = (float) r.nextGaussian();
        }
        HiddenStates input = new HiddenStates(states, rows, tokens, a.hiddenSize());
        try (CpuBackend backend = new CpuBackend(2)) {
            BlockMeasurement m = new BlockMeasurement(new BlockRunner(new Transformer(a, backend), 1));
            for (BlockSpec block : a.layer(0).blocks()) {
                List<BlockCandidate> shared = m.measure(w, block, input, Integer.MAX_VALUE);
                List<BlockCandidate> oneAtATime = m.measure(w, block, input, block.linears().size());
                List<BlockCandidate> residentPasses = m.measure(w, block, input, block.linears().size() + 2, true);
                assertEquals(BlockMeasurement.table(block).size(), shared.size());
                assertEquals(shared, oneAtATime, block.key());
                assertEquals(shared, residentPasses, block.key() + " in passes, states resident");
                // real scores, not the 1e-6 floor for every candidate
                assertTrue(shared.stream().mapToDouble(BlockCandidate::accuracy).distinct().count() > 5, block.key());
            }
        }
    }
}
