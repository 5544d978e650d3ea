package org.exl2spark.quant;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.GptqOps;
import org.exl2spark.backend.GptqRun;
import org.exl2spark.backend.Tensor;

/**
 * ExLlamaV2's AdaptiveGPTQ for one linear (EXL2-SPEC F): act-order by the Hessian diagonal, damped Cholesky inverse,
 * groups of mixed bit widths with 4-bit scales searched per group, error feedback inside each group and a lazy
 * GEMM update of the rows after it. The order of steps lives here; each step is a {@link GptqOps} operation, so the
 * same code runs on a backend's tensors and on device matrices, the big matrices staying where they are.
 */
public final class AdaptiveGptq {
    static final float DAMP_FRACTION = 0.12f;
    static final int DAMP_ATTEMPTS = 10;

    private AdaptiveGptq() {
    }

    /**
     * What linears sharing one Hessian share: the act-order permutation and U, the upper Cholesky factor of the
     * damped inverse Hessian in permuted order [size × size] where the operations keep their matrices (q/k/v share
     * q's; gate/up share up's). Closing releases U.
     */
    public record Preparation<M>(int size, int[] perm, M upperInverse, GptqOps<M> ops) implements AutoCloseable {
        @Override
        public void close() {
            ops.release(upperInverse);
        }
    }

    public static Preparation<Tensor> prepare(Backend backend, Tensor hessian, String module) {
        return prepare(GptqOps.of(backend), hessian, module);
    }

    public static GptqResult quantize(Backend backend, Tensor weightHf, Preparation<Tensor> prep, QParams qp,
            Tensor dequantizedHf) {
        return quantize(GptqOps.of(backend), weightHf, prep, qp, dequantizedHf);
    }

    /**
     * Orders rows by descending Hessian diagonal (stable for ties) and factors the damped inverse in place:
     * {@code hessian}, the finished Hessian (see {@link Backend#finishHessian}), becomes the preparation's U and is
     * owned by it, also when this fails.
     */
    public static <M> Preparation<M> prepare(GptqOps<M> backend, M hessian, String module) {
        try {
            int n = Math.toIntExact(backend.rows(hessian));
            float[] diag = backend.diagonal(hessian);
            Integer[] order = new Integer[n];
            for (int i = 0; i < n; i++) {
                order[i] = i;
            }
            Arrays.sort(order, (a, b) -> Float.compare(diag[b], diag[a]));
            int[] perm = new int[n];
            float[] permutedDiag = new float[n];
            double diagSum = 0;
            for (int i = 0; i < n; i++) {
                perm[i] = order[i];
                permutedDiag[i] = diag[perm[i]];
                diagSum += permutedDiag[i];
            }
            float damp = Math.max(DAMP_FRACTION * (float) (diagSum / n), 1e-5f);
            backend.permuteSymmetric(hessian, perm);
            for (int attempt = 1; attempt <= DAMP_ATTEMPTS; attempt++) {
                if (attempt > 1) {
                    backend.restoreSymmetric(hessian, permutedDiag);
                }
                // the damping grows by one step per attempt, added step by step so the sums round the same way
                for (int step = 0; step < attempt; step++) {
                    backend.addDiagonal(hessian, damp);
                }
                if (backend.upperCholeskyOfInverse(hessian)) {
                    return new Preparation<>(n, perm, hessian, backend);
                }
            }
            throw new ArithmeticException(module + ": Hessian is not positive definite after " + DAMP_ATTEMPTS
                    + " damping attempts (calibration activations degenerate?)");
        } catch (RuntimeException e) {
            backend.release(hessian);
            throw e;
        }
    }

    /**
     * Quantizes {@code weightHf} (the Hugging Face weight [out_features × in_features] where the operations keep it)
     * with {@code qp} and a Hessian preparation of its input. If {@code dequantizedHf} is given ([out × in], like the
     * weight) it receives the fp16-exact weight the codes decode to.
     */
    public static <M> GptqResult quantize(GptqOps<M> backend, M weightHf, Preparation<M> prep, QParams qp,
            M dequantizedHf) {
        return run(backend, weightHf, prep, qp, dequantizedHf, true);
    }

    /**
     * The measurement's GPTQ: only the fp16-exact dequantized weight [out × in], into {@code dequantizedHf}; codes and
     * scales stay where the operations run.
     */
    public static <M> void dequantize(GptqOps<M> backend, M weightHf, Preparation<M> prep, QParams qp,
            M dequantizedHf) {
        run(backend, weightHf, prep, qp, dequantizedHf, false);
    }

    public static void dequantize(Backend backend, Tensor weightHf, Preparation<Tensor> prep, QParams qp,
            Tensor dequantizedHf) {
        dequantize(GptqOps.of(backend), weightHf, prep, qp, dequantizedHf);
    }

    /** The column-block loop; with {@code stored} it returns codes and scales, otherwise null. */
    private static <M> GptqResult run(GptqOps<M> backend, M weightHf, Preparation<M> prep, QParams qp,
            M dequantizedHf, boolean stored) {
        int rows = Math.toIntExact(backend.cols(weightHf));
        int cols = Math.toIntExact(backend.rows(weightHf));
        if (prep.size() != rows) {
            throw new IllegalArgumentException("Hessian is " + prep.size() + " wide, the weight has " + rows + " inputs");
        }
        int[] perm = prep.perm();
        List<QParams.Group> plan = qp.groups(rows);
        long maxGroup = plan.stream().mapToLong(QParams.Group::rows).max().orElse(1);
        List<GptqResult.QuantGroup> groups = new ArrayList<>();
        // W[k][n] = weightHf[n][perm[k]]: transposed to [in × out] and rows in act order
        M w = backend.zeros(rows, cols);
        try {
            backend.gatherTransposed(weightHf, null, perm, w);
            try (GptqRun<M> run = backend.gptq(w, prep.upperInverse(), maxGroup)) {
                for (QParams.Group g : plan) {
                    long a = g.firstRow();
                    long b = g.endRow();
                    run.findParams(a, b, g.bits());
                    if (stored) {
                        GptqRun.GroupScales scales = run.scales();
                        groups.add(new GptqResult.QuantGroup(g.bits(), (int) a, (int) (b - a), scales.codes(),
                                scales.maxHalf()));
                    }
                    run.quantizeGroup(a, b, g.bits());
                    run.lazyUpdate(a, b);
                }
                if (dequantizedHf != null) {
                    int[] invperm = new int[rows];
                    for (int k = 0; k < rows; k++) {
                        invperm[perm[k]] = k;
                    }
                    backend.gatherTransposed(run.dequantized(), invperm, null, dequantizedHf);
                }
                return stored ? new GptqResult(rows, cols, perm, groups, run.packedCodes()) : null;
            }
        } finally {
            backend.release(w);
        }
    }
}
