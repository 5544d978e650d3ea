package org.exl2spark.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.function.BiConsumer;
import org.exl2spark.kernels.CholeskyKernels;
import org.exl2spark.kernels.DenseKernels;
import org.exl2spark.kernels.DeviceBuffer;
import org.exl2spark.kernels.DeviceHalfMatrix;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.GptqKernels;
import org.exl2spark.plan.DeviceBytes;

/**
 * The GPTQ operations of {@link Backend} on device matrices, over the kernels of dense.cu, cholesky.cu and gptq.cu:
 * what {@link CudaBackend} delegates to once it has unwrapped its tensors. Temporaries (index
 * arrays, Cholesky panels, a run's codes and dequantized rows) come from {@code memory}, so they count against the
 * task's budget ({@link org.exl2spark.plan.DeviceBytes} predicts them). CPU twins: the same operations of {@code CpuBackend} and {@code CpuGptq}.
 */
public final class CudaGptq implements GptqOps<DeviceMatrix> {
    private final DeviceMemory memory;
    private final DenseKernels dense;
    private final CholeskyKernels cholesky;
    private final GptqKernels gptq;

    public CudaGptq(DeviceMemory memory) {
        this.memory = memory;
        this.dense = new DenseKernels(memory.context());
        this.cholesky = new CholeskyKernels(dense);
        this.gptq = new GptqKernels(dense);
    }

    public DeviceMemory memory() {
        return memory;
    }

    /** {@code gram += xᵀ·x} on the upper triangle only; {@link #finishHessian} mirrors it. */
    public void accumulateGram(DeviceMatrix x, DeviceMatrix gram) {
        dense.accumulateGram(x, gram);
    }

    /** The upper-triangle Gram matrix of {@code rows} calibration rows to the full Hessian (1/rows)·Σ XᵀX. */
    @Override
    public void finishHessian(DeviceMatrix gram, long rows) {
        if (rows <= 0) {
            throw new IllegalArgumentException("finishHessian: " + rows + " calibration rows");
        }
        dense.symmetrize(gram, rows);
    }

    @Override
    public float[] diagonal(DeviceMatrix square) {
        if (square.rows() != square.cols()) {
            throw new IllegalArgumentException("diagonal of a " + square.rows() + "×" + square.cols() + " matrix");
        }
        float[] d = new float[Math.toIntExact(square.rows())];
        square.buffer().copyStridedToHost(square.offset(), square.ld() + 1, d, d.length);
        return d;
    }

    /**
     * In place, with one panel of temporary rows: permuting the columns of every row panel gives H·Pᵀ; its
     * transpose is P·H (H is symmetric); permuting columns again gives P·H·Pᵀ.
     */
    @Override
    public void permuteSymmetric(DeviceMatrix h, int[] perm) {
        long n = h.rows();
        if (h.cols() != n || perm.length != n) {
            throw new IllegalArgumentException("permuteSymmetric: " + perm.length + " indices for a " + h.rows() + "×"
                    + h.cols() + " matrix");
        }
        DeviceBuffer index = upload("act-order permutation", perm);
        long panelRows = DeviceBytes.permutePanelRows(n);
        DeviceBuffer panel = null;
        try {
            panel = memory.allocateFloats("act-order permutation panel", n * panelRows);
            permuteColumns(h, index, panel, panelRows);
            dense.transposeSquare(h);
            permuteColumns(h, index, panel, panelRows);
        } finally {
            if (panel != null) {
                memory.free(panel);
            }
            memory.free(index);
        }
    }

    private void permuteColumns(DeviceMatrix h, DeviceBuffer index, DeviceBuffer panel, long panelRows) {
        long n = h.rows();
        for (long r0 = 0; r0 < n; r0 += panelRows) {
            long k = Math.min(panelRows, n - r0);
            DeviceMatrix rows = h.block(r0, 0, k, n);
            DeviceMatrix gathered = new DeviceMatrix(panel, 0, n, k, k);
            dense.gatherTransposed(rows, null, index, gathered);
            dense.gatherTransposed(gathered, null, null, rows);
        }
    }

    @Override
    public void restoreSymmetric(DeviceMatrix h, float[] diagonal) {
        if (h.rows() != h.cols() || diagonal.length != h.rows()) {
            throw new IllegalArgumentException("restoreSymmetric: " + diagonal.length + " diagonal values for a "
                    + h.rows() + "×" + h.cols() + " matrix");
        }
        // the intact strict lower triangle moves up, is mirrored back down (÷ 1 is exact), and the diagonal is set
        dense.transposeSquare(h);
        dense.symmetrize(h, 1f);
        h.buffer().copyStridedFromHost(diagonal, h.offset(), h.ld() + 1);
    }

    @Override
    public void addDiagonal(DeviceMatrix a, float value) {
        dense.addDiagonal(a, value);
    }

    @Override
    public boolean upperCholeskyOfInverse(DeviceMatrix h) {
        return cholesky.upperCholeskyOfInverse(h, memory);
    }

    @Override
    public void gatherTransposed(DeviceMatrix src, int[] rowIndex, int[] colIndex, DeviceMatrix dst) {
        withIndices(rowIndex, colIndex, (rows, cols) -> dense.gatherTransposed(src, rows, cols, dst));
    }

    /** {@link #gatherTransposed} into fp16 storage (CudaBackend's fp16 tensors). */
    void gatherTransposedToHalf(DeviceMatrix src, int[] rowIndex, int[] colIndex, DeviceHalfMatrix dst) {
        withIndices(rowIndex, colIndex, (rows, cols) -> dense.gatherTransposedToHalf(src, rows, cols, dst));
    }

    /** Runs {@code gather} with the indices on the device (null stays null), freeing them after. */
    private void withIndices(int[] rowIndex, int[] colIndex, BiConsumer<DeviceBuffer, DeviceBuffer> gather) {
        DeviceBuffer rows = rowIndex == null ? null : upload("gather row index", rowIndex);
        DeviceBuffer cols = null;
        try {
            cols = colIndex == null ? null : upload("gather column index", colIndex);
            gather.accept(rows, cols);
        } finally {
            if (rows != null) {
                memory.free(rows);
            }
            if (cols != null) {
                memory.free(cols);
            }
        }
    }

    @Override
    public DeviceMatrix zeros(long rows, long cols) {
        DeviceMatrix m = memory.matrix("GPTQ matrix", rows, cols);
        m.buffer().zero();
        return m;
    }

    @Override
    public void release(DeviceMatrix matrix) {
        memory.free(matrix.buffer());
    }

    @Override
    public long rows(DeviceMatrix matrix) {
        return matrix.rows();
    }

    @Override
    public long cols(DeviceMatrix matrix) {
        return matrix.cols();
    }

    /** GPTQ's column-block loop over device matrices; see {@link GptqRun}. */
    @Override
    public Run gptq(DeviceMatrix w, DeviceMatrix u, long maxGroupRows) {
        return new Run(w, u, maxGroupRows);
    }

    /**
     * {@link GptqRun} on the device: W and U are borrowed, codes, dequantized rows, errors and scales are its own.
     *
     * <p>The lazy updates go by blocks of up to {@link DeviceBytes#LAZY_BLOCK_ROWS} rows: after each group only the
     * rest of the current block is updated (a thin product), and once the next group might not fit the block, all
     * rows after the block get the whole block's errors in one product of K = 385-512 (fp32; W is read and written
     * once per block, not once per group: 39 TFLOP/s at K = 512 against 30 at K = 128 on the H100, where split TF32 on
     * the tensor cores measured 33). The result is GPTQ's (every row sees every earlier row's error before it is
     * quantized) with the sums in another order than {@code CpuGptq}'s group-by-group updates.
     */
    public final class Run implements GptqRun<DeviceMatrix> {
        private final DeviceMatrix w;
        private final DeviceMatrix u;
        private final DeviceBuffer codes;
        private final DeviceMatrix dequant;
        private final DeviceMatrix err;
        private final GptqKernels.Workspace workspace;
        private final long groupRows;
        private final long blockRows;
        private final List<Quantized> quantized = new ArrayList<>();
        /** Rows [blockStart, blockEnd) have every earlier error applied; err holds those from blockStart on. */
        private long blockStart;
        private long blockEnd;

        private Run(DeviceMatrix w, DeviceMatrix u, long maxGroupRows) {
            long rows = w.rows();
            long cols = w.cols();
            this.groupRows = Math.min(maxGroupRows, rows);
            this.blockRows = DeviceBytes.lazyBlockRows(rows, groupRows);
            DeviceBuffer c = memory.allocate("GPTQ codes " + rows + "×" + cols + " u8", rows * cols);
            DeviceMatrix d = null;
            DeviceMatrix e = null;
            try {
                d = memory.matrix("GPTQ dequantized rows", rows, cols);
                e = memory.matrix("GPTQ block errors", blockRows, cols);
                this.workspace = new GptqKernels.Workspace(memory, cols, groupRows);
            } catch (RuntimeException ex) {
                memory.free(c);
                for (DeviceMatrix m : new DeviceMatrix[] {d, e}) {
                    if (m != null) {
                        memory.free(m.buffer());
                    }
                }
                throw ex;
            }
            this.w = w;
            this.u = u;
            this.codes = c;
            this.dequant = d;
            this.err = e;
            this.blockStart = 0;
            this.blockEnd = blockRows;
        }

        @Override
        public void findParams(long a, long b, int bits) {
            gptq.findParams(w, a, b, bits, workspace);
        }

        @Override
        public GptqRun.GroupScales scales() {
            GptqKernels.GroupScales s = workspace.readScaleCodes();
            return new GptqRun.GroupScales(s.codes(), s.maxHalf());
        }

        @Override
        public void quantizeGroup(long a, long b, int bits) {
            if (a < blockStart || b > blockEnd) {
                throw new IllegalStateException("GPTQ group [" + a + ", " + b + ") outside the lazy block ["
                        + blockStart + ", " + blockEnd + "): groups must come in order, each ≤ " + groupRows
                        + " rows");
            }
            gptq.quantizeGroup(w, u, a, b, bits, workspace.scale(), codes, dequant, groupErrors(a, b));
            quantized.add(new Quantized(a, b - a, bits));
        }

        @Override
        public void lazyUpdate(long a, long b) {
            gptq.lazyUpdate(w, u, a, b, b, blockEnd, groupErrors(a, b));
            if (b + groupRows > blockEnd) {
                // the next group might not fit the block: the rows after it get the whole block's errors at once
                gptq.lazyUpdate(w, u, blockStart, b, blockEnd, w.rows(), err);
                blockStart = b;
                blockEnd = Math.min(w.rows(), b + blockRows);
            }
        }

        /** err's rows of group [a, b), a view that starts at the group's own row. */
        private DeviceMatrix groupErrors(long a, long b) {
            return err.block(a - blockStart, 0, b - a, err.cols());
        }

        /**
         * The packed codes on the host: packed on the device a slab of q-rows at a time into the lazy-block error
         * buffer (free once the groups are done; ≥ 4 bytes per code of a block) and copied from there, so only
         * 4 bits of a 4-bit code cross to the host and no more device memory is taken.
         */
        @Override
        public int[][] packedCodes() {
            long cols = w.cols();
            long total = quantized.stream().mapToLong(Quantized::qRows).sum();
            int[][] out = new int[Math.toIntExact(total)][Math.toIntExact(cols)];
            long slabRows = err.rows();
            int[] slab = new int[Math.toIntExact(Math.min(total, slabRows) * cols)];
            for (long s0 = 0; s0 < total; s0 += slabRows) {
                long s1 = Math.min(total, s0 + slabRows);
                long groupStart = 0;
                for (Quantized g : quantized) {
                    long from = Math.max(s0, groupStart);
                    long to = Math.min(s1, groupStart + g.qRows());
                    if (from < to) {
                        gptq.packCodes(codes, cols, g.firstRow(), g.rows(), g.bits(), from - groupStart, to - from,
                                err.buffer(), 4 * (from - s0) * cols);
                    }
                    groupStart += g.qRows();
                }
                err.buffer().copyToHost(0, slab, 0, Math.toIntExact((s1 - s0) * cols));
                for (long q = s0; q < s1; q++) {
                    System.arraycopy(slab, Math.toIntExact((q - s0) * cols), out[(int) q], 0, (int) cols);
                }
            }
            return out;
        }

        @Override
        public DeviceMatrix dequantized() {
            return dequant;
        }

        @Override
        public void close() {
            workspace.close();
            memory.free(err.buffer());
            memory.free(dequant.buffer());
            memory.free(codes);
        }
    }

    private DeviceBuffer upload(String what, int[] values) {
        DeviceBuffer b = memory.allocate(what, 4L * Math.max(1, values.length));
        b.copyFromHost(values, 0, values.length, 0);
        return b;
    }
}
