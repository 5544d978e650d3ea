package org.exl2spark.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class OptimizerTest {
    static ModelArchitecture arch;
    static List<Optimizer.Slot> golden;

    @BeforeAll
    static void load() throws Exception {
        try (ModelDirectory m = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            arch = m.architecture();
        }
        golden = Optimizer.slots(Measurement.parse(Files.readAllBytes(SharedData.goldenMeasurement()), "golden"));
    }

    @Test
    void budgetIsExLlamaV2s() {
        assertEquals(12_589_056L, Optimizer.chargedWeights(arch));
        assertEquals(50_356_224L, Optimizer.budget(arch, 4.0));
        assertEquals(31_472_640L, Optimizer.budget(arch, 2.5));
    }

    /** Exhaustive enumeration on small random problems: the exact solver must find the true optimum. */
    @Test
    void exactSolverMatchesBruteForce() {
        SplittableRandom rng = new SplittableRandom(7);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + rng.nextInt(5);
            List<Optimizer.Slot> slots = new ArrayList<>();
            long minTotal = 0;
            long maxTotal = 0;
            for (int i = 0; i < n; i++) {
                int k = 1 + rng.nextInt(6);
                long[] cost = new long[k];
                double[] err = new double[k];
                for (int j = 0; j < k; j++) {
                    cost[j] = 1 + rng.nextInt(50);
                    err[j] = rng.nextDouble();
                }
                slots.add(new Optimizer.Slot("s" + i, cost, err));
                minTotal += java.util.Arrays.stream(cost).min().getAsLong();
                maxTotal += java.util.Arrays.stream(cost).max().getAsLong();
            }
            long budget = minTotal + rng.nextLong(maxTotal - minTotal + 1);
            double norm = 1 + 3 * rng.nextDouble();
            Optimizer.Solution exact = Optimizer.solveExact(slots, budget, norm);
            double brute = bruteForce(slots, budget, norm, 0, 0, 0);
            assertTrue(exact.cost() <= budget);
            assertEquals(brute, exact.objective(), 1e-12 * Math.max(1, brute), "trial " + trial);
        }
    }

    private static double bruteForce(List<Optimizer.Slot> slots, long budget, double norm, int k, long cost, double v) {
        if (cost > budget) {
            return Double.POSITIVE_INFINITY;
        }
        if (k == slots.size()) {
            return v;
        }
        double best = Double.POSITIVE_INFINITY;
        Optimizer.Slot s = slots.get(k);
        for (int j = 0; j < s.options(); j++) {
            best = Math.min(best, bruteForce(slots, budget, norm, k + 1, cost + s.cost()[j], v + Math.pow(s.err()[j], norm)));
        }
        return best;
    }

    /** On ExLlamaV2's own measurement, the exact optimum is never worse than ExLlamaV2's annealing search. */
    @ParameterizedTest
    @ValueSource(doubles = {2.5, 3.0, 4.0, 5.0, 6.0})
    void neverWorseThanExLlamaV2sSearch(double bpw) {
        long budget = Optimizer.budget(arch, bpw);
        for (double norm : new double[] {1.5, 2.0, 2.7, 3.5}) {
            Optimizer.Solution exact = Optimizer.solveExact(golden, budget, norm);
            Optimizer.Solution anneal = Optimizer.bestAnneal(golden, budget, norm, 3, 42);
            assertTrue(exact.cost() <= budget && anneal.cost() <= budget);
            assertTrue(exact.objective() <= anneal.objective() * (1 + 1e-12),
                    bpw + " bpw, norm " + norm + ": exact " + exact.objective() + " > anneal " + anneal.objective());
        }
        Optimizer.Solution chosen = Optimizer.optimize(golden, budget);
        assertTrue(chosen.cost() <= budget);
    }

    @Test
    void unreachableBudgetIsRefused() {
        long[] range = Optimizer.reachableCost(golden);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Optimizer.solveExact(golden, range[0] - 1, 2.0));
        assertTrue(e.getMessage().contains("below the cheapest"), e.getMessage());
    }

    /** 80 layers' worth of blocks (ExLlamaV2-shaped options) solves quickly and exactly enough to beat annealing. */
    @Test
    void scalesToA160BlockModel() {
        List<Optimizer.Slot> big = new ArrayList<>();
        SplittableRandom rng = new SplittableRandom(3);
        for (int layer = 0; layer < 80; layer++) {
            for (Optimizer.Slot s : golden.subList(0, 2)) {
                double[] err = s.err().clone();
                for (int j = 0; j < err.length; j++) {
                    err[j] *= 0.5 + rng.nextDouble();
                }
                big.add(new Optimizer.Slot(s.key() + "#" + layer, s.cost(), err));
            }
        }
        long[] range = Optimizer.reachableCost(big);
        long budget = range[0] + (range[1] - range[0]) / 3;
        Optimizer.Solution exact = Optimizer.solveExact(big, budget, 2.0);
        Optimizer.Solution anneal = Optimizer.annealLikeExLlamaV2(big, budget, 2.0, 1);
        assertTrue(exact.cost() <= budget);
        assertTrue(exact.objective() <= anneal.objective());
    }
}
