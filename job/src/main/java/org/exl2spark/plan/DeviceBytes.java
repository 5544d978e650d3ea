package org.exl2spark.plan;

/**
 * Device bytes of the GPTQ steps' own allocations, shared by the planner and the CUDA code that makes them (so a
 * change to one is a change to both; the GPU test of measured ≤ predicted peak checks them together).
 */
public final class DeviceBytes {
    /** Scale-search grid points (EXL2-SPEC F.5); gptq.cu's partial sums hold one double per point per block. */
    static final int GRID_POINTS = 97;
    /** Elements one block of gptq.cu's grid-error kernel covers (256 threads × 8). */
    static final long GRID_BLOCK_ELEMENTS = 256 * 8;
    /** Cap of the Cholesky inverse's temporary panel (CholeskyKernels.PANEL_BYTES). */
    static final long CHOLESKY_PANEL = 256L << 20;

    private DeviceBytes() {
    }

    /** An fp16 tensor of {@code elements} (Backend#halfZeros; at least one element is allocated). */
    public static long halfTensor(long elements) {
        return 2 * Math.max(1, elements);
    }

    /** The scale search's workspace for {@code cols} columns and groups of ≤ {@code maxGroupRows} rows. */
    public static long scaleSearch(long cols, long maxGroupRows) {
        long blocks = Math.max(1, (maxGroupRows * cols + GRID_BLOCK_ELEMENTS - 1) / GRID_BLOCK_ELEMENTS);
        // base scales, max scale, grid partials, grid errors, group scales, scale codes, q_scale_max, candidates
        return 4 * cols + 4 + 8L * GRID_POINTS * blocks + 8L * GRID_POINTS + 4 * cols + cols + 4
                + 4L * (GRID_POINTS + 1);
    }

    /**
     * Rows whose errors a GPTQ run on the device gathers before it updates the rows after them (CudaGptq.Run): 4
     * groups of 128, a K at which the update runs at 39 TFLOP/s instead of 30 (H100).
     */
    public static final long LAZY_BLOCK_ROWS = 512;

    /** A run's lazy block for a rows-tall work matrix and groups of ≤ groupRows rows (at least one group). */
    public static long lazyBlockRows(long rows, long groupRows) {
        return Math.min(rows, Math.max(LAZY_BLOCK_ROWS, groupRows));
    }

    /**
     * A GPTQ run's own buffers for a work matrix rows × cols: one byte of code and one fp32 dequantized value per
     * weight, one lazy block of scaled errors, the scale search's workspace.
     */
    public static long gptqRun(long rows, long cols, long maxGroupRows) {
        long group = Math.min(maxGroupRows, rows);
        long block = lazyBlockRows(rows, group);
        return rows * cols + 4 * rows * cols + 4 * block * cols + scaleSearch(cols, group);
    }

    /**
     * The zero-padded fp16 copy of activations x [rows, n] that {@code Backend.accumulateHalfGram} makes on the device
     * (HalfKernels.operandBytes: rows padded to 64, columns to 8).
     */
    public static long halfGramOperand(long rows, long n) {
        return 2 * ((rows + 63) / 64 * 64) * ((n + 7) / 8 * 8);
    }

    /** Rows of the in-place act-order permutation's temporary panel for an n × n matrix (at least one). */
    public static long permutePanelRows(long n) {
        return Math.max(1, Math.min(n, CHOLESKY_PANEL / (4 * Math.max(1, n))));
    }

    /** The in-place act-order permutation's temporaries: its panel and the permutation on the device. */
    public static long permute(long n) {
        return 4 * n * permutePanelRows(n) + 4 * n;
    }

    /** Upper bound of the inverse factor's temporaries for an n × n matrix: its panel and status word. */
    public static long cholesky(long n) {
        return Math.min(Math.max(CHOLESKY_PANEL, 4L * 64 * n), 4 * n * n) + 8;
    }
}
