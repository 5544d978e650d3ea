package org.exl2spark.plan;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.QParams;

/**
 * DESIGN.md's memory planner: for each task kind, the peak device bytes predicted from the model's shapes, and the
 * split that keeps it under the budget ({@code spark.exl2.gpu.memoryBudget}): calibration rows per forward chunk and, for
 * a measurement, how many dequantized projection weights stay on the device at once (fewer means some settings are
 * quantized again) and whether its input and reference states stay on the device. A task that does not fit at its
 * smallest split fails here, before any work, naming the module, its shape, the bytes needed and the budget.
 * Everything is fp32 on the device, as the tasks allocate it, but the measurement's dequantized weights, which are
 * fp16 tensors (Backend#halfZeros: only FAST linears read them).
 */
public final class MemoryPlanner {
    private static final long F = Float.BYTES;
    /** GPTQ groups are at most this many rows in every candidate (EXL2-SPEC C.2). */
    static final int MAX_GROUP_ROWS = 128;
    /** A forward chunk's activations may take up to this share of the budget before rows are cut further. */
    private static final int ACTIVATION_SHARE = 8;

    private final ModelArchitecture arch;
    private final long budget;
    private final DeviceRates rates;

    public MemoryPlanner(ModelArchitecture arch, long budgetBytes, DeviceRates rates) {
        if (budgetBytes <= 0) {
            throw new IllegalArgumentException("spark.exl2.gpu.memoryBudget must be positive, got " + budgetBytes);
        }
        this.arch = arch;
        this.budget = budgetBytes;
        this.rates = rates;
    }

    public long budget() {
        return budget;
    }

    /** The linears of a block that read the same input, in block order (q/k/v; o; gate/up; down). */
    public static List<List<LinearSpec>> inputGroups(BlockSpec block) {
        Map<String, List<LinearSpec>> groups = new LinkedHashMap<>();
        for (LinearSpec l : block.linears()) {
            String input = switch (l.shortName()) {
                case "q_proj", "k_proj", "v_proj" -> "qkv";
                case "gate_proj", "up_proj" -> "gate_up";
                default -> l.shortName();
            };
            groups.computeIfAbsent(input, k -> new ArrayList<>()).add(l);
        }
        return List.copyOf(groups.values());
    }

    /**
     * Measurement of one block over {@code rows} calibration rows of {@code tokens} tokens. Of the two ways to hold
     * the states while candidates are scored (on the device all along, or uploaded for each scoring pass, leaving
     * their bytes to more dequantized weights and so fewer passes) it takes the one its time model says is faster.
     */
    public TaskPlan measureBlock(BlockSpec block, List<Map<String, QParams>> candidates, int rows, int tokens) {
        long weights = weightBytes(block);
        long preps = hessianBytes(block);
        long prepPeak = weights + preps + prepareTemporaries(block);
        long gptqPeak = largestGptqBytes(block);
        int distinct = distinctSettings(block, candidates).size();
        int minSlots = block.linears().size();
        long slot = dequantizedBytes(block);
        // the candidates' scoring holds a chunk of the reference outputs beside the forward's activations
        long referencePerRow = F * tokens * arch.hiddenSize();
        int chunk = rowChunk(block, rows, tokens, weights + preps + minSlots * slot, referencePerRow);
        long act = activationBytes(block, chunk, tokens) + chunk * referencePerRow;
        long fixed = weights + preps;
        long minimum = Math.max(prepPeak, fixed + Math.max(act, gptqPeak) + (long) minSlots * slot);
        String shape = shape(block);
        if (minimum > budget) {
            throw new PlanException("measure", block.key(), shape, minimum, budget, "weights " + TaskPlan.bytes(weights)
                    + ", Hessians " + TaskPlan.bytes(preps) + ", one candidate's " + minSlots
                    + " dequantized weights " + TaskPlan.bytes(minSlots * slot) + ", and the larger of a " + chunk
                    + "-row forward chunk " + TaskPlan.bytes(act) + " and one GPTQ run " + TaskPlan.bytes(gptqPeak));
        }
        long room = budget - fixed - Math.max(act, gptqPeak);
        long residentBytes = 2 * F * (long) rows * tokens * arch.hiddenSize();
        int uploadedSlots = (int) Math.min(distinct, room / slot);
        int residentSlots = (int) Math.min(distinct, (room - residentBytes) / slot);
        boolean resident = residentSlots >= minSlots && measureSeconds(block, candidates, rows, tokens, residentSlots,
                true) <= measureSeconds(block, candidates, rows, tokens, uploadedSlots, false);
        int slots = resident ? residentSlots : uploadedSlots;
        long peak = Math.max(prepPeak, fixed + Math.max(act, gptqPeak) + slots * slot + (resident ? residentBytes : 0));
        TaskPlan.Kind kind = block.kind() == BlockSpec.Kind.ATTENTION ? TaskPlan.Kind.MEASURE_ATTENTION
                : TaskPlan.Kind.MEASURE_MLP;
        return new TaskPlan(kind, block.key(), shape, peak, chunk, slots, resident, gptqRuns(block, candidates, slots),
                measureSeconds(block, candidates, rows, tokens, slots, resident));
    }

    /**
     * One reference forward at fp32 accuracy (states in and out), the candidates' at the fast precision, the states
     * going up once (resident) or once per scoring pass, the Hessians, their preparation and the GPTQ runs.
     */
    private double measureSeconds(BlockSpec block, List<Map<String, QParams>> candidates, int rows, int tokens,
            int slots, boolean resident) {
        double states = statesBytes(rows, tokens);
        int uploads = resident ? 1 : scoringPasses(block, candidates, slots).size();
        return forwardSeconds(block, rows, tokens, rates.gemmFlops())
                + states / rates.hostToDevice() + states / rates.deviceToHost()
                + candidates.size() * forwardSeconds(block, rows, tokens, rates.halfWeightFlops())
                + uploads * 2 * states / rates.hostToDevice()
                + hessianSeconds(block, (long) rows * tokens) + prepareSeconds(block)
                + gptqRuns(block, candidates, slots) * meanGptqSeconds(block);
    }

    /** Quantization of one block's linears for one target: Hessians from a forward, then one GPTQ run each. */
    public TaskPlan quantizeBlock(BlockSpec block, int rows, int tokens) {
        long weights = weightBytes(block);
        long grams = hessianBytes(block);
        long prepPeak = weights + grams + prepareTemporaries(block);
        long gptqPeak = largestGptqBytes(block);
        int chunk = rowChunk(block, rows, tokens, weights + grams, 0);
        long act = activationBytes(block, chunk, tokens);
        long peak = Math.max(prepPeak, weights + grams + Math.max(act, gptqPeak));
        if (peak > budget) {
            throw new PlanException("quantize", block.key(), shape(block), peak, budget, "weights "
                    + TaskPlan.bytes(weights) + ", Hessians " + TaskPlan.bytes(grams) + ", the larger of their"
                    + " preparation, a " + chunk + "-row forward chunk " + TaskPlan.bytes(act) + " and a GPTQ run "
                    + TaskPlan.bytes(gptqPeak));
        }
        // the Hessians' forward stops before the output projection and runs its linears FAST (BlockQuantization)
        double seconds = forwardSeconds(block, rows, tokens, rates.fastGemmFlops(), false)
                + statesBytes(rows, tokens) / rates.hostToDevice() + hessianSeconds(block, (long) rows * tokens)
                + prepareSeconds(block) + block.linears().size() * meanGptqSeconds(block);
        return new TaskPlan(TaskPlan.Kind.QUANTIZE_GROUP, block.key(), shape(block), peak, chunk, 0, false,
                block.linears().size(), seconds);
    }

    /**
     * The forward of one quantized block over a partition of {@code rows} rows, with the original block beside it
     * for the partitions whose error is sampled: both blocks' fp32 weights and one chunk's activations.
     */
    public TaskPlan forwardPartition(BlockSpec block, int rows, int tokens) {
        long weights = 2 * weightBytes(block);
        int chunk = rowChunk(block, rows, tokens, weights, 0);
        long peak = weights + activationBytes(block, chunk, tokens);
        if (peak > budget) {
            throw new PlanException("forward", block.key(), shape(block), peak, budget, "the quantized and the"
                    + " original block's weights " + TaskPlan.bytes(weights) + " and a " + chunk + "-row chunk");
        }
        return new TaskPlan(TaskPlan.Kind.FORWARD, block.key(), rows + "×" + tokens + " tokens", peak, chunk, 0, false, 0,
                2 * (forwardSeconds(block, rows, tokens, rates.gemmFlops())
                        + statesBytes(rows, tokens) / rates.hostToDevice()
                        + statesBytes(rows, tokens) / rates.deviceToHost()));
    }

    /** Every distinct (projection, setting) a block's candidates use, keyed like the measurement's cache. */
    static Set<String> distinctSettings(BlockSpec block, List<Map<String, QParams>> candidates) {
        Set<String> keys = new LinkedHashSet<>();
        for (Map<String, QParams> row : candidates) {
            for (LinearSpec l : block.linears()) {
                keys.add(settingKey(l, row.get(l.shortName())));
            }
        }
        return keys;
    }

    public static String settingKey(LinearSpec l, QParams qp) {
        return l.shortName() + "|" + qp.describe();
    }

    /** The settings a candidate uses, one per projection in block order, keyed like the measurement's cache. */
    public static List<String> neededSettings(BlockSpec block, Map<String, QParams> candidate) {
        List<String> needed = new ArrayList<>();
        for (LinearSpec l : block.linears()) {
            needed.add(settingKey(l, candidate.get(l.shortName())));
        }
        return needed;
    }

    /**
     * How a measurement holding at most {@code slots} dequantized weights scores its candidates: in table order, in
     * passes of the longest runs of candidates whose settings fit the slots together. A pass's candidates are scored
     * in one trip over the states, sharing their forwards up to the output projection where their other settings
     * agree. Every setting of the block in one pass when the slots hold them all.
     */
    public static List<List<Integer>> scoringPasses(BlockSpec block, List<Map<String, QParams>> candidates,
            int slots) {
        List<List<Integer>> passes = new ArrayList<>();
        List<Integer> pass = new ArrayList<>();
        Set<String> settings = new LinkedHashSet<>();
        for (int c = 0; c < candidates.size(); c++) {
            Set<String> grown = new LinkedHashSet<>(settings);
            grown.addAll(neededSettings(block, candidates.get(c)));
            if (!pass.isEmpty() && grown.size() > slots) {
                passes.add(pass);
                pass = new ArrayList<>();
                grown = new LinkedHashSet<>(neededSettings(block, candidates.get(c)));
            }
            pass.add(c);
            settings = grown;
        }
        if (!pass.isEmpty()) {
            passes.add(pass);
        }
        return passes;
    }

    /** The settings a scoring pass needs held, in candidate then block order. */
    public static List<String> passSettings(BlockSpec block, List<Map<String, QParams>> candidates,
            List<Integer> pass) {
        Set<String> keys = new LinkedHashSet<>();
        for (int c : pass) {
            keys.addAll(neededSettings(block, candidates.get(c)));
        }
        return List.copyOf(keys);
    }

    /**
     * GPTQ runs of a measurement holding at most {@code slots} dequantized weights: its {@link #scoringPasses} in
     * order, each quantizing the settings it needs that are not held, evicting the least recently used ones it does
     * not need.
     */
    public static int gptqRuns(BlockSpec block, List<Map<String, QParams>> candidates, int slots) {
        DequantCache<String> cache = new DequantCache<>(slots);
        int runs = 0;
        for (List<Integer> pass : scoringPasses(block, candidates, slots)) {
            List<String> needed = passSettings(block, candidates, pass);
            for (String key : needed) {
                if (cache.touch(key)) {
                    continue;
                }
                cache.evictFor(needed);
                cache.put(key);
                runs++;
            }
        }
        return runs;
    }

    /**
     * The largest row chunk whose activations (and {@code extraPerRow} more bytes a row) fit a share of the budget
     * (and the budget itself), at least 1.
     */
    private int rowChunk(BlockSpec block, int rows, int tokens, long resident, long extraPerRow) {
        long perRow = activationBytes(block, 1, tokens) + extraPerRow;
        long room = Math.min(budget / ACTIVATION_SHARE, Math.max(0, budget - resident));
        return (int) Math.max(1, Math.min(rows, room / perRow));
    }

    /**
     * One forward chunk: the state, the normed input, each projection's output, rotary tables, and the fp16 copy of
     * the widest linear input that Hessian collection makes (whose room also covers the fp16 copy of a FAST linear's
     * input, in the measurement's candidate forwards, which collect no Hessians).
     */
    long activationBytes(BlockSpec block, long rows, long tokens) {
        long width = 2L * arch.hiddenSize();
        long widestInput = 0;
        for (LinearSpec l : block.linears()) {
            width += l.outFeatures();
            widestInput = Math.max(widestInput, l.inFeatures());
        }
        if (block.kind() == BlockSpec.Kind.ATTENTION) {
            width += (long) arch.numHeads() * arch.headDim();
        }
        return F * rows * tokens * width + F * tokens * arch.headDim()
                + DeviceBytes.halfGramOperand(rows * tokens, widestInput);
    }

    private static long weightBytes(BlockSpec block) {
        long b = 0;
        for (LinearSpec l : block.linears()) {
            b += F * l.outFeatures() * l.inFeatures() + (l.hasBias() ? F * l.outFeatures() : 0);
        }
        return b + F * block.linears().get(0).inFeatures();
    }

    /** One slot of the measurement: its largest projection's dequantized weight, an fp16 tensor. */
    private static long dequantizedBytes(BlockSpec block) {
        return block.linears().stream().mapToLong(l -> DeviceBytes.halfTensor(l.outFeatures() * l.inFeatures()))
                .max().orElse(0);
    }

    private static long hessianBytes(BlockSpec block) {
        long b = 0;
        for (List<LinearSpec> g : inputGroups(block)) {
            b += F * g.get(0).inFeatures() * g.get(0).inFeatures();
        }
        return b;
    }

    private static long maxInput(BlockSpec block) {
        return block.linears().stream().mapToLong(LinearSpec::inFeatures).max().orElse(0);
    }

    /** The preparation works in place on each Hessian: only the permutation's or the factor's temporaries add. */
    private static long prepareTemporaries(BlockSpec block) {
        long n = maxInput(block);
        return Math.max(DeviceBytes.permute(n), DeviceBytes.cholesky(n));
    }

    /** Bytes of the block's largest GPTQ run, the one that sets the peak among its runs. */
    private static long largestGptqBytes(BlockSpec block) {
        long largest = 0;
        for (LinearSpec l : block.linears()) {
            largest = Math.max(largest, gptqBytes(l));
        }
        return largest;
    }

    /** A GPTQ run on top of what stays: the act-ordered work matrix, its index and the run's own buffers. */
    private static long gptqBytes(LinearSpec l) {
        return F * l.inFeatures() * l.outFeatures() + 4 * l.inFeatures()
                + DeviceBytes.gptqRun(l.inFeatures(), l.outFeatures(), MAX_GROUP_ROWS);
    }

    /** fp32 hidden states of rows × tokens, as a forward copies them in or out. */
    private double statesBytes(long rows, long tokens) {
        return (double) F * rows * tokens * arch.hiddenSize();
    }

    private double forwardSeconds(BlockSpec block, long rows, long tokens, double linearFlops) {
        return forwardSeconds(block, rows, tokens, linearFlops, true);
    }

    private double forwardSeconds(BlockSpec block, long rows, long tokens, double linearFlops,
            boolean outputProjection) {
        double flops = 0;
        for (LinearSpec l : block.linears()) {
            if (outputProjection || !l.shortName().equals(block.outputProjection())) {
                flops += 2.0 * rows * tokens * l.inFeatures() * l.outFeatures();
            }
        }
        double seconds = flops / linearFlops;
        if (block.kind() == BlockSpec.Kind.ATTENTION) {
            // QKᵀ and PV over the causal half, on the attention kernel whatever the linears' precision
            seconds += 4.0 * rows * arch.numHeads() * arch.headDim() * tokens * (tokens + 1) / 2.0
                    / rates.attentionFlops();
        }
        return seconds;
    }

    private double hessianSeconds(BlockSpec block, long tokens) {
        double flops = 0;
        for (List<LinearSpec> g : inputGroups(block)) {
            double n = g.get(0).inFeatures();
            flops += n * (n + 1) * tokens;
        }
        return flops / rates.gramFlops();
    }

    private double prepareSeconds(BlockSpec block) {
        double s = 0;
        for (List<LinearSpec> g : inputGroups(block)) {
            double n = g.get(0).inFeatures();
            // the inverse factor, plus the Hessian's act-order copy (read + write)
            s += 2 * n * n * n / 3 / rates.choleskyFlops() + 2 * F * n * n / rates.bandwidth();
        }
        return s;
    }

    /**
     * Lazy updates (≈ rows²·cols FLOP), the scale search (97 evaluations per weight), a few passes over W and the
     * groups' fixed latency.
     */
    double gptqSeconds(LinearSpec l) {
        double rows = l.inFeatures();
        double cols = l.outFeatures();
        return rows * rows * cols / rates.lazyUpdateFlops() + 97 * rows * cols / rates.gridEvaluations()
                + 6 * F * rows * cols / rates.bandwidth() + rows / 128 * rates.groupSeconds();
    }

    private double meanGptqSeconds(BlockSpec block) {
        return block.linears().stream().mapToDouble(this::gptqSeconds).average().orElse(0);
    }

    private static String shape(BlockSpec block) {
        LinearSpec widest = block.linears().get(0);
        for (LinearSpec l : block.linears()) {
            if (l.inFeatures() * l.outFeatures() > widest.inFeatures() * widest.outFeatures()) {
                widest = l;
            }
        }
        return block.linears().size() + " linears, " + widest.shortName() + " " + widest.outFeatures() + "×"
                + widest.inFeatures();
    }
}
