package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.BlockCandidate;
import org.exl2spark.quant.Measurement;
import org.exl2spark.quant.Optimizer;

/**
 * Pass 4, on the driver: for a target bitrate, one candidate per block from the measurement, solved exactly
 * (Optimizer), and the objective ExLlamaV2's own annealing reaches on the same problem printed beside it. The
 * strategy is written as a measurement.json with one candidate per block ({@code q/<bpw>/strategy.json}).
 */
final class OptimizePass {
    /** Annealing runs for the comparison line (ExLlamaV2 runs 80 at its final norm; a few show the gap). */
    static final int COMPARISON_RUNS = 8;

    private OptimizePass() {
    }

    /** Checks the target is reachable before any expensive work; returns the budget in bits. */
    static long budget(ModelArchitecture arch, Measurement m, double bpw) {
        long budget = Optimizer.budget(arch, bpw);
        long[] range = Optimizer.reachableCost(Optimizer.slots(m));
        double weights = Optimizer.chargedWeights(arch);
        if (budget < range[0] || budget > range[1]) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "target %s bpw is outside what the measurement can reach: %.4f to %.4f bpw", bpw,
                    range[0] / weights, range[1] / weights));
        }
        return budget;
    }

    static Measurement run(JobDirectory job, ModelArchitecture arch, Measurement m, double bpw, PrintStream log)
            throws IOException {
        long budget = budget(arch, m, bpw);
        List<Optimizer.Slot> slots = Optimizer.slots(m);
        Optimizer.Solution exact = Optimizer.optimize(slots, budget);
        Optimizer.Solution anneal = Optimizer.bestAnneal(slots, budget, exact.norm(), COMPARISON_RUNS, 0x5eed);
        double weights = Optimizer.chargedWeights(arch);
        String label = JobDirectory.bitrateLabel(bpw);
        log.printf(Locale.ROOT, "%s optimizer: sum err^%.3f exact %.6f, ExLlamaV2's annealing %.6f (best of %d runs);"
                + " max block error %.6f vs %.6f%n", label, exact.norm(), exact.objective(), anneal.objective(),
                COMPARISON_RUNS, exact.maxErr(), anneal.maxErr());
        log.printf(Locale.ROOT, "%s: %,d of %,d budget bits, achieved %.4f bpw (target %s)%n", label, exact.cost(),
                budget, exact.cost() / weights, bpw);
        Map<String, List<BlockCandidate>> chosen = new LinkedHashMap<>();
        int i = 0;
        for (Map.Entry<String, List<BlockCandidate>> e : m.blocks().entrySet()) {
            chosen.put(e.getKey(), List.of(e.getValue().get(exact.choice()[i++])));
        }
        Measurement strategy = new Measurement(chosen, m.lastModuleIdx());
        job.write(job.strategy(bpw), strategy.toJson(arch));
        return strategy;
    }
}
