package org.exl2spark.quant;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;

/**
 * Picks one measured candidate per block so the model reaches a bit budget at the least error: a multiple-choice
 * knapsack, minimise {@code Σ err^norm} subject to {@code Σ bits ≤ budget}. Solved exactly by a Pareto dynamic
 * programme over slots, pruned with the LP-relaxation bound of the remaining slots (Dyer–Zemel convex hulls).
 * The problem is solved to optimality instead of by ExLlamaV2's simulated annealing, which is kept to report the
 * objective it reaches on the same problem.
 */
public final class Optimizer {

    /** A block to choose for: option i costs {@code cost[i]} bits and has error {@code err[i]} (= 1 − accuracy). */
    public record Slot(String key, long[] cost, double[] err) {
        public Slot {
            if (cost.length != err.length || cost.length == 0) {
                throw new IllegalArgumentException(key + ": need one error per cost and at least one option");
            }
            cost = cost.clone();
            err = err.clone();
        }

        public int options() {
            return cost.length;
        }

        long minCost() {
            return Arrays.stream(cost).min().getAsLong();
        }

        long maxCost() {
            return Arrays.stream(cost).max().getAsLong();
        }
    }

    /** One candidate index per slot, its total cost, {@code Σ err^norm} and the worst single error. */
    public record Solution(int[] choice, long cost, double objective, double maxErr, double norm) {
        public Solution {
            choice = choice.clone();
        }

        @Override
        public int[] choice() {
            return choice.clone();
        }
    }

    private Optimizer() {
    }

    /**
     * Weights the target bitrate is charged for, as ExLlamaV2 counts them: every decoder block's linear weights plus
     * its norm; embeddings, the final norm and lm_head (which has its own head bits) are not charged.
     */
    public static long chargedWeights(ModelArchitecture arch) {
        long numel = 0;
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                numel += arch.hiddenSize();
                for (LinearSpec l : b.linears()) {
                    numel += l.inFeatures() * l.outFeatures();
                }
            }
        }
        return numel;
    }

    /** The bit budget for a target bits-per-weight: {@code floor(charged weights × bpw)}. */
    public static long budget(ModelArchitecture arch, double bitsPerWeight) {
        return (long) (chargedWeights(arch) * bitsPerWeight);
    }

    public static List<Slot> slots(Measurement m) {
        List<Slot> out = new ArrayList<>();
        m.blocks().forEach((key, list) -> {
            long[] cost = new long[list.size()];
            double[] err = new double[list.size()];
            for (int i = 0; i < cost.length; i++) {
                cost[i] = list.get(i).totalBits();
                err[i] = list.get(i).error();
            }
            out.add(new Slot(key, cost, err));
        });
        return out;
    }

    /** Cheapest and dearest total cost: the budget range a measurement can reach. */
    public static long[] reachableCost(List<Slot> slots) {
        long lo = 0;
        long hi = 0;
        for (Slot s : slots) {
            lo += s.minCost();
            hi += s.maxCost();
        }
        return new long[] {lo, hi};
    }

    static Solution evaluate(List<Slot> slots, int[] choice, double norm) {
        long cost = 0;
        double obj = 0;
        double maxErr = 0;
        for (int i = 0; i < choice.length; i++) {
            Slot s = slots.get(i);
            cost += s.cost[choice[i]];
            obj += Math.pow(s.err[choice[i]], norm);
            maxErr = Math.max(maxErr, s.err[choice[i]]);
        }
        return new Solution(choice, cost, obj, maxErr, norm);
    }

    // ---------------------------------------------------------------- exact solver

    /** The optimum of {@code Σ err^norm} under {@code budget}; throws if even the cheapest choice is over budget. */
    public static Solution solveExact(List<Slot> slots, long budget, double norm) {
        int n = slots.size();
        long[] range = reachableCost(slots);
        if (range[0] > budget) {
            throw new IllegalArgumentException("budget " + budget + " bits is below the cheapest choice ("
                    + range[0] + " bits)");
        }
        // Per slot: Pareto-optimal options (cost ascending, value strictly descending).
        int[][] frontier = new int[n][];
        double[][] value = new double[n][];
        for (int i = 0; i < n; i++) {
            Slot s = slots.get(i);
            value[i] = new double[s.options()];
            for (int j = 0; j < s.options(); j++) {
                value[i][j] = Math.pow(s.err[j], norm);
            }
            frontier[i] = paretoFront(s.cost, value[i]);
        }
        SuffixBound[] bound = new SuffixBound[n + 1];
        for (int k = 0; k <= n; k++) {
            bound[k] = new SuffixBound(slots, frontier, value, k);
        }
        double incumbent = bound[0].integralValue(budget) * (1 + 1e-12) + 1e-300;

        // Layered states: cost, value, parent state index, option chosen.
        long[] cost = {0};
        double[] val = {0};
        List<int[]> parents = new ArrayList<>();
        List<int[]> options = new ArrayList<>();
        for (int k = 0; k < n; k++) {
            long[] c = slots.get(k).cost;
            int[] front = frontier[k];
            int cap = cost.length * front.length;
            long[] nc = new long[cap];
            double[] nv = new double[cap];
            int[] np = new int[cap];
            int[] no = new int[cap];
            int m = 0;
            for (int s = 0; s < cost.length; s++) {
                for (int j : front) {
                    long tc = cost[s] + c[j];
                    if (tc > budget) {
                        continue;
                    }
                    double tv = val[s] + value[k][j];
                    if (tv + bound[k + 1].lowerBound(budget - tc) > incumbent) {
                        continue;
                    }
                    nc[m] = tc;
                    nv[m] = tv;
                    np[m] = s;
                    no[m] = j;
                    m++;
                }
            }
            // keep the states no other state beats on both cost and value
            Integer[] order = new Integer[m];
            for (int i = 0; i < m; i++) {
                order[i] = i;
            }
            final long[] fc = nc;
            final double[] fv = nv;
            Arrays.sort(order, (a, b) -> fc[a] != fc[b] ? Long.compare(fc[a], fc[b]) : Double.compare(fv[a], fv[b]));
            int kept = 0;
            long[] kc = new long[m];
            double[] kv = new double[m];
            int[] kp = new int[m];
            int[] ko = new int[m];
            double best = Double.POSITIVE_INFINITY;
            for (int idx : order) {
                if (nv[idx] < best) {
                    best = nv[idx];
                    kc[kept] = nc[idx];
                    kv[kept] = nv[idx];
                    kp[kept] = np[idx];
                    ko[kept] = no[idx];
                    kept++;
                }
            }
            cost = Arrays.copyOf(kc, kept);
            val = Arrays.copyOf(kv, kept);
            parents.add(Arrays.copyOf(kp, kept));
            options.add(Arrays.copyOf(ko, kept));
            if (kept == 0) {
                throw new IllegalStateException("exact optimizer pruned every state (bound error)");
            }
        }
        int bestState = 0;
        for (int s = 1; s < val.length; s++) {
            if (val[s] < val[bestState]) {
                bestState = s;
            }
        }
        int[] choice = new int[n];
        for (int k = n - 1, s = bestState; k >= 0; k--) {
            choice[k] = options.get(k)[s];
            s = parents.get(k)[s];
        }
        return evaluate(slots, choice, norm);
    }

    private static int[] paretoFront(long[] cost, double[] value) {
        Integer[] idx = new Integer[cost.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, (a, b) -> cost[a] != cost[b] ? Long.compare(cost[a], cost[b]) : Double.compare(value[a], value[b]));
        int[] out = new int[idx.length];
        int m = 0;
        double best = Double.POSITIVE_INFINITY;
        for (int i : idx) {
            if (value[i] < best) {
                best = value[i];
                out[m++] = i;
            }
        }
        return Arrays.copyOf(out, m);
    }

    /**
     * LP relaxation of slots k..n−1: start from each slot's cheapest option, then buy the lower-convex-hull segments
     * of all slots in order of value reduction per bit. Its value for a budget is a lower bound of the integer optimum.
     */
    private static final class SuffixBound {
        final long baseCost;
        final double baseValue;
        final long[] cumCost;
        final double[] cumGain;

        SuffixBound(List<Slot> slots, int[][] frontier, double[][] value, int k) {
            long bc = 0;
            double bv = 0;
            List<double[]> segs = new ArrayList<>();
            for (int i = k; i < slots.size(); i++) {
                long[] c = slots.get(i).cost;
                int[] f = frontier[i];
                bc += c[f[0]];
                bv += value[i][f[0]];
                // lower convex hull of the Pareto points
                int[] hull = new int[f.length];
                int h = 0;
                for (int j : f) {
                    while (h >= 2 && cross(c, value[i], hull[h - 2], hull[h - 1], j) <= 0) {
                        h--;
                    }
                    hull[h++] = j;
                }
                for (int t = 1; t < h; t++) {
                    double dc = c[hull[t]] - c[hull[t - 1]];
                    double dv = value[i][hull[t - 1]] - value[i][hull[t]];
                    segs.add(new double[] {dv / dc, dc, dv});
                }
            }
            segs.sort((a, b) -> Double.compare(b[0], a[0]));
            cumCost = new long[segs.size() + 1];
            cumGain = new double[segs.size() + 1];
            for (int t = 0; t < segs.size(); t++) {
                cumCost[t + 1] = cumCost[t] + (long) segs.get(t)[1];
                cumGain[t + 1] = cumGain[t] + segs.get(t)[2];
            }
            baseCost = bc;
            baseValue = bv;
        }

        /** > 0 when b lies strictly below the segment a→c (so b is on the lower hull). */
        private static double cross(long[] c, double[] v, int a, int b, int d) {
            double x1 = c[b] - c[a];
            double y1 = v[b] - v[a];
            double x2 = c[d] - c[a];
            double y2 = v[d] - v[a];
            return x1 * y2 - y1 * x2;
        }

        double lowerBound(long budget) {
            if (budget < baseCost) {
                return Double.POSITIVE_INFINITY;
            }
            long extra = budget - baseCost;
            int t = upperIndex(extra);
            double gain = cumGain[t];
            if (t < cumCost.length - 1) {
                long dc = cumCost[t + 1] - cumCost[t];
                gain += (cumGain[t + 1] - cumGain[t]) * (double) (extra - cumCost[t]) / dc;
            }
            // a hair of slack so rounding in the bound never prunes the optimum
            return (baseValue - gain) * (1 - 1e-9) - 1e-12;
        }

        /** Value of the LP solution rounded down to whole segments: a feasible integer solution. */
        double integralValue(long budget) {
            if (budget < baseCost) {
                return Double.POSITIVE_INFINITY;
            }
            // Segments taken in efficiency order stay contiguous within each slot, so whole ones are a valid choice.
            return baseValue - cumGain[upperIndex(budget - baseCost)];
        }

        private int upperIndex(long extra) {
            int lo = 0;
            int hi = cumCost.length - 1;
            while (lo < hi) {
                int mid = (lo + hi + 1) >>> 1;
                if (cumCost[mid] <= extra) {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            return lo;
        }
    }

    // ---------------------------------------------------------------- the objective

    /**
     * The norm of the objective {@code Σ err^norm}. ExLlamaV2 picks its norm per run from a schedule between 1.5
     * and 3.5 by the smallest worst-block error of its (noisy) annealing results. Solved exactly, that rule picks
     * norms near 2 that equalise block errors by moving bits from attention to MLP blocks, and on the tiny model
     * this cost perplexity (43.92 vs ExLlamaV2's 43.58 from ExLlamaV2's own measurement at 4.0 bpw, docs/BENCHMARKS.md);
     * the low end of ExLlamaV2's range picks an allocation close to the one ExLlamaV2 ships, and gave 43.68.
     */
    public static final double NORM = 1.5;

    /** The exact optimum of {@code Σ err^NORM} under {@code budget}. */
    public static Solution optimize(List<Slot> slots, long budget) {
        return solveExact(slots, budget, NORM);
    }

    // ---------------------------------------------------------------- ExLlamaV2's search, for comparison

    /**
     * One run of ExLlamaV2's simulated annealing at a fixed norm (EXL2-SPEC E), followed by its greedy fill, with a
     * seeded generator. Used to report what the reference converter's search reaches on the same problem.
     */
    public static Solution annealLikeExLlamaV2(List<Slot> slots, long budget, double norm, long seed) {
        int n = slots.size();
        SplittableRandom rng = new SplittableRandom(seed);
        int[] choice = new int[n];
        long cost = 0;
        double obj = 0;
        for (int i = 0; i < n; i++) {
            cost += slots.get(i).cost[0];
            obj += Math.pow(slots.get(i).err[0], norm);
        }
        double[][] value = new double[n][];
        for (int i = 0; i < n; i++) {
            Slot s = slots.get(i);
            value[i] = new double[s.options()];
            for (int j = 0; j < s.options(); j++) {
                value[i][j] = Math.pow(s.err[j], norm);
            }
        }
        for (double temp = 2.0; temp >= 1e-4; temp *= 0.995) {
            for (int it = 0; it < 1000; it++) {
                int k = rng.nextInt(n);
                int j = rng.nextInt(slots.get(k).options());
                long newCost = cost - slots.get(k).cost[choice[k]] + slots.get(k).cost[j];
                double delta = value[k][j] - value[k][choice[k]];
                if (newCost <= budget && (delta < 0 || rng.nextDouble() < Math.exp(-delta / temp))) {
                    cost = newCost;
                    obj += delta;
                    choice[k] = j;
                }
            }
        }
        boolean changed = true;
        while (changed) {
            changed = false;
            for (int k = 0; k < n; k++) {
                int next = choice[k] + 1;
                if (next < slots.get(k).options()
                        && cost - slots.get(k).cost[choice[k]] + slots.get(k).cost[next] <= budget) {
                    cost += slots.get(k).cost[next] - slots.get(k).cost[choice[k]];
                    choice[k] = next;
                    changed = true;
                }
            }
        }
        return evaluate(slots, choice, norm);
    }

    /** The best of {@code runs} annealing runs at {@code norm} (ExLlamaV2's third stage does 80). */
    public static Solution bestAnneal(List<Slot> slots, long budget, double norm, int runs, long seed) {
        Solution best = null;
        for (int r = 0; r < runs; r++) {
            Solution s = annealLikeExLlamaV2(slots, budget, norm, seed + r);
            if (best == null || s.objective() < best.objective()) {
                best = s;
            }
        }
        return best;
    }
}
