package org.exl2spark.backend;

import java.util.List;
import org.exl2spark.io.Half;
import org.exl2spark.kernels.Bytes;
import org.exl2spark.kernels.DenseKernels;
import org.exl2spark.kernels.DeviceBuffer;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.ForwardKernels;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.HalfKernels;
import org.exl2spark.kernels.TensorCoreGemm;
import org.exl2spark.kernels.TensorCoreGemm.Precision;
import org.exl2spark.plan.DeviceBytes;

/**
 * The backend on one GPU: {@link DeviceTensor}s in a device-memory pool of this backend's own (closing the backend
 * frees whatever is still allocated), every operation a kernel of ours on the device's primary context
 * ({@link GpuContext}, shared by all backends of the JVM on that device). Operations are queued on the default
 * stream in call order; {@link #download} waits for them.
 *
 * <p>Products: {@link #linear} runs on the tensor cores at {@code linearPrecision} (TF32: ~5e-4 relative error in a
 * layer's output, 2.8× the rate of split TF32, which matches fp32), and with fp16 operands inside a {@link #linearMode}
 * scope of {@code FAST}; {@link #matmul} on the tensor cores at fp32 accuracy (split TF32);
 * {@link #accumulateGram} in plain fp32, {@link #accumulateHalfGram} (whose products are exact) on the fp16 tensor
 * cores. A FAST linear with an fp16 weight ({@link #halfZeros}) converts its input to fp16 in a temporary and runs the
 * fp16-operand GEMM (half the operand bytes of FP16's fp32 tiles). CPU twins: {@link CpuBackend}.
 */
public final class CudaBackend implements Backend {
    private final GpuContext context;
    private final DeviceMemory memory;
    private final DenseKernels dense;
    private final ForwardKernels forward;
    private final TensorCoreGemm tensorCores;
    private final HalfKernels half;
    private final Precision linearPrecision;
    /** The {@link #linearMode} in force: {@link #linear} runs at linearPrecision, or FP16 when FAST. */
    private LinearMode linearMode = LinearMode.ACCURATE;
    private final CudaGptq gptq;

    /**
     * @param budgetBytes     the most device memory this backend's tensors may hold at once
     * @param linearPrecision the tensor-core precision of {@link #linear}
     */
    public CudaBackend(GpuContext context, long budgetBytes, Precision linearPrecision) {
        this.context = context.makeCurrent();
        // the kernel images load now (once per device), so a jar built without nvcc fails here, by name
        for (String family : List.of(DenseKernels.FAMILY, ForwardKernels.FAMILY, TensorCoreGemm.FAMILY,
                HalfKernels.FAMILY)) {
            context.module(family);
        }
        this.memory = new DeviceMemory(context, budgetBytes);
        this.dense = new DenseKernels(context);
        this.forward = new ForwardKernels(context);
        this.tensorCores = new TensorCoreGemm(context);
        this.half = new HalfKernels(context);
        this.linearPrecision = linearPrecision;
        this.gptq = new CudaGptq(memory);
    }

    /**
     * A backend on CUDA device {@code ordinal} (the JVM's shared context for it, current on this thread), with a
     * pool of the device's free memory less {@link DeviceMemory#DEFAULT_RESERVE}.
     */
    public static CudaBackend open(int ordinal, Precision linearPrecision) {
        GpuContext context = GpuContext.forDevice(ordinal);
        return new CudaBackend(context, DeviceMemory.defaultBudget(context), linearPrecision);
    }

    public GpuContext context() {
        return context;
    }

    /** This backend's pool: what its tensors hold, its peak, its budget. */
    public DeviceMemory memory() {
        return memory;
    }

    public DenseKernels denseKernels() {
        return dense;
    }

    public Precision linearPrecision() {
        return linearPrecision;
    }

    @Override
    public String describe() {
        return "cuda (" + context.device() + ", linear " + linearPrecision + ", pool budget "
                + Bytes.format(memory.budget()) + ")";
    }

    @Override
    public DeviceTensor zeros(long... shape) {
        DeviceTensor t = allocate("tensor", shape);
        t.buffer().zero();
        return t;
    }

    @Override
    public DeviceTensor halfZeros(long... shape) {
        DeviceTensor t = allocate("tensor", Tensor.Storage.FP16, shape);
        t.buffer().zero();
        return t;
    }

    @Override
    public DeviceTensor upload(float[] data, long... shape) {
        long n = Tensor.elementCount(shape);
        if (n != data.length) {
            throw new IllegalArgumentException("upload: shape " + java.util.Arrays.toString(shape) + " has " + n
                    + " elements but the array has " + data.length);
        }
        DeviceTensor t = allocate("uploaded tensor", shape);
        t.buffer().copyFromHost(data, 0, data.length, 0);
        return t;
    }

    @Override
    public DeviceTensor uploadSlice(float[] data, int offset, long... shape) {
        long n = ShapeChecks.uploadSlice(data.length, offset, shape);
        DeviceTensor t = allocate("uploaded tensor", shape);
        t.buffer().copyFromHost(data, offset, (int) n, 0);
        return t;
    }

    /** 16-bit values staged on the device this many bytes at a time, each part widened by a kernel. */
    private static final long WIDEN_STAGE_BYTES = 64L << 20;

    /**
     * The 16-bit bytes go from the source into the pinned slab and to a device staging buffer (at most 64 MiB), where
     * a kernel widens them into the tensor: half the bytes of an fp32 upload cross PCIe and the host converts nothing.
     */
    @Override
    public DeviceTensor uploadWidened(StoredBytes source, boolean bf16, long... shape) throws java.io.IOException {
        long n = Tensor.elementCount(shape);
        DeviceTensor t = allocate("widened tensor", shape);
        if (n == 0) {
            return t;
        }
        DeviceBuffer staged = null;
        try {
            staged = memory.allocate("16-bit staging", Math.min(2 * n, WIDEN_STAGE_BYTES));
            for (long done = 0; done < n; ) {
                long k = Math.min(n - done, staged.bytes() / 2);
                long first = done;
                staged.copyFromSource((offset, dst) -> source.read(2 * first + offset, dst), 2 * k, 0);
                half.widen(staged, bf16, t.buffer(), done, k);
                done += k;
            }
            return t;
        } catch (java.io.IOException | RuntimeException e) {
            t.close();
            throw e;
        } finally {
            if (staged != null) {
                memory.free(staged);
            }
        }
    }

    @Override
    public void downloadSlice(Tensor t, float[] dst, int offset) {
        DeviceTensor d = deviceAnyStorage(t, "tensor");
        if (offset < 0 || d.size() > dst.length - (long) offset) {
            throw new IllegalArgumentException("downloadSlice: " + d + " does not fit an array of " + dst.length
                    + " from " + offset);
        }
        if (d.isHalf()) {
            // fp16 values are read as they are stored and widened here (exactly)
            short[] bits = new short[(int) d.size()];
            d.buffer().copyToHost(0, bits, 0, bits.length);
            for (int i = 0; i < bits.length; i++) {
                dst[offset + i] = Half.toFloat(bits[i]);
            }
        } else {
            d.buffer().copyToHost(0, dst, offset, (int) d.size());
        }
    }

    /** Waits for the queued kernels, then copies the tensor to the host. */
    @Override
    public float[] download(Tensor t) {
        DeviceTensor d = deviceAnyStorage(t, "tensor");
        if (d.size() > HostTensor.MAX_ELEMENTS) {
            throw new IllegalArgumentException("download: " + d + " has " + d.size() + " elements, more than a Java"
                    + " array holds (" + HostTensor.MAX_ELEMENTS + ")");
        }
        float[] out = new float[(int) d.size()];
        downloadSlice(d, out, 0);
        return out;
    }

    /** Frees every tensor still allocated. The shared context stays, for the next backend on this device. */
    @Override
    public void close() {
        memory.close();
    }

    // ---- dense products -------------------------------------------------------------------------------------

    /**
     * On the tensor cores at fp32 accuracy: the kernel reads both operands k-contiguous, so an op(a) stored
     * transposed or an op(b) stored untransposed is first transposed into a temporary.
     */
    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta) {
        DeviceTensor da = device(a, "a");
        DeviceTensor db = device(b, "b");
        DeviceTensor dc = device(c, "c");
        ShapeChecks.matmul(a, transposeA, b, transposeB, c);
        try (DeviceTensor aRows = transposeA ? transposed(da) : null;
                DeviceTensor bRows = transposeB ? null : transposed(db)) {
            DeviceMatrix left = aRows != null ? aRows.matrix() : da.matrix();
            DeviceMatrix right = bRows != null ? bRows.matrix() : db.matrix();
            tensorCores.gemmNT(left, right, dc.matrix(), null, alpha, beta, Precision.TF32X3);
        }
    }

    private DeviceTensor transposed(DeviceTensor t) {
        DeviceTensor out = allocate("transposed operand", t.cols(), t.rows());
        forward.transpose(t.matrix(), out.matrix());
        return out;
    }

    /**
     * FAST: operands rounded to fp16, fp32 accumulation, as ExLlamaV2's fp16 forwards round them (the mantissa of
     * TF32, so the same ~5e-4 relative error in a 110B linear's output, at a higher rate).
     */
    @Override
    public ModeScope linearMode(LinearMode mode) {
        LinearMode previous = linearMode;
        linearMode = mode;
        return () -> linearMode = previous;
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dw = deviceAnyStorage(weight, "weight");
        DeviceTensor dout = device(out, "out");
        DeviceTensor dbias = bias == null ? null : device(bias, "bias");
        ShapeChecks.linear(x, weight, bias, out);
        ShapeChecks.halfWeight(weight, linearMode);
        DeviceMatrix biasRow = dbias == null ? null : DeviceMatrix.of(dbias.buffer(), 1, weight.rows());
        if (dw.isHalf()) {
            try (DeviceTensor halfX = allocate("fp16 linear input", Tensor.Storage.FP16, x.rows(), x.cols())) {
                forward.toHalf(dx.matrix(), halfX.halfMatrix());
                tensorCores.gemmNTHalf(halfX.halfMatrix(), dw.halfMatrix(), dout.matrix(), biasRow, 1f, 0f);
            }
        } else {
            tensorCores.gemmNT(dx.matrix(), dw.matrix(), dout.matrix(), biasRow, 1f, 0f,
                    linearMode == LinearMode.FAST ? Precision.FP16 : linearPrecision);
        }
    }

    /** fp32 (no tensor cores): the upper triangle accumulated, then mirrored into the lower. */
    @Override
    public void accumulateGram(Tensor x, Tensor gram) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dg = device(gram, "gram");
        ShapeChecks.gram(x, gram);
        dense.accumulateGram(dx.matrix(), dg.matrix());
        dense.symmetrize(dg.matrix(), 1f);
    }

    /**
     * x rounded once into a zero-padded fp16 copy ({@link DeviceBytes#halfGramOperand} bytes, freed on return), then
     * the upper triangle on the fp16 tensor cores with fp32 accumulation; the lower triangle is left for
     * {@link #finishHessian} to mirror (once, instead of once per chunk).
     */
    @Override
    public void accumulateHalfGram(Tensor x, Tensor gram) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dg = device(gram, "gram");
        ShapeChecks.gram(x, gram);
        DeviceBuffer operand = memory.allocate("fp16 Gram operand " + x.rows() + "×" + x.cols(),
                Math.max(1, DeviceBytes.halfGramOperand(x.rows(), x.cols())));
        try {
            half.accumulateGram(dx.matrix(), operand, dg.matrix());
        } finally {
            // cuMemFree waits for the queued kernels that read the operand
            memory.free(operand);
        }
    }

    // ---- row-wise operations --------------------------------------------------------------------------------

    @Override
    public void embed(int[] ids, Tensor table, Tensor out) {
        DeviceTensor dt = device(table, "table");
        DeviceTensor dout = device(out, "out");
        ShapeChecks.embed(ids, table, out);
        if (ids.length == 0) {
            return;
        }
        DeviceBuffer deviceIds = memory.allocate("token ids", 4L * ids.length);
        try {
            deviceIds.copyFromHost(ids, 0, ids.length, 0);
            forward.embed(deviceIds, dt.matrix(), dout.matrix());
        } finally {
            // cuMemFree waits for the queued kernel that reads the ids
            memory.free(deviceIds);
        }
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dw = device(weight, "weight");
        DeviceTensor dout = device(out, "out");
        ShapeChecks.rmsNorm(x, weight, out);
        forward.rmsNorm(dx.matrix(), dw.matrix(), eps, dout.matrix());
    }

    @Override
    public void rope(Tensor x, int heads, int headDim, Tensor cos, Tensor sin) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dcos = device(cos, "cos");
        DeviceTensor dsin = device(sin, "sin");
        ShapeChecks.rope(x, heads, headDim, cos, sin);
        forward.rope(dx.matrix(), x.dim(1), heads, headDim, dcos.matrix(), dsin.matrix());
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, int heads, int kvHeads, int headDim,
            int slidingWindow) {
        DeviceTensor dq = device(q, "q");
        DeviceTensor dk = device(k, "k");
        DeviceTensor dv = device(v, "v");
        DeviceTensor dout = device(out, "out");
        ShapeChecks.attention(q, k, v, out, heads, kvHeads, headDim);
        forward.attention(dq.matrix(), dk.matrix(), dv.matrix(), dout.matrix(), q.dim(0), q.dim(1), heads, kvHeads,
                headDim, slidingWindow);
    }

    @Override
    public void swiGlu(Tensor gate, Tensor up, Tensor out) {
        elementwise("swiGlu", gate, up, out, forward::swiGlu);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        elementwise("add", a, b, out, forward::add);
    }

    @Override
    public void roundToHalf(Tensor x, Tensor out) {
        DeviceTensor dx = device(x, "roundToHalf operand");
        DeviceTensor dout = deviceAnyStorage(out, "roundToHalf output");
        ShapeChecks.sameShape("roundToHalf", x, out);
        if (dout.isHalf()) {
            forward.toHalf(dx.matrix(), dout.halfMatrix());
        } else {
            forward.roundToHalf(dx.matrix(), dout.matrix());
        }
    }

    /** A kernel of two operands and an output of one shape. */
    @FunctionalInterface
    private interface ElementwiseKernel {
        void launch(DeviceMatrix a, DeviceMatrix b, DeviceMatrix out);
    }

    private void elementwise(String op, Tensor a, Tensor b, Tensor out, ElementwiseKernel kernel) {
        DeviceTensor da = device(a, op + " operand");
        DeviceTensor db = device(b, op + " operand");
        DeviceTensor dout = device(out, op + " output");
        ShapeChecks.elementwise(op, a, b, out);
        kernel.launch(da.matrix(), db.matrix(), dout.matrix());
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        DeviceTensor ds = device(src, "src");
        DeviceTensor dd = device(dst, "dst");
        ShapeChecks.sameShape("copy", src, dst);
        if (ds.size() == 0) {
            return;
        }
        dd.buffer().copyFromDevice(ds.buffer(), 0, 0, 4L * ds.size());
    }

    /**
     * Sums over slices of each row on the device (relative_error_partials), the slices added here in order: only
     * 16 bytes per slice come back, and the result does not depend on the kernel's scheduling.
     */
    @Override
    public double[] relativeErrors(Tensor y, Tensor reference) {
        DeviceTensor dy = device(y, "y");
        DeviceTensor dr = device(reference, "reference");
        ShapeChecks.sameShape("relativeErrors", y, reference);
        long rows = y.dim(0);
        long rowSize = rows == 0 ? 0 : y.size() / rows;
        int slices = forward.errorSlices(rows, rowSize);
        double[] partial = new double[Math.toIntExact(2 * rows * slices)];
        DeviceBuffer sums = memory.allocate("block error sums", 8L * Math.max(1, partial.length));
        try {
            forward.relativeErrorPartials(new DeviceMatrix(dy.buffer(), 0, rows, rowSize, Math.max(1, rowSize)),
                    new DeviceMatrix(dr.buffer(), 0, rows, rowSize, Math.max(1, rowSize)), slices, sums);
            sums.copyToHost(0, partial, 0, partial.length);
        } finally {
            memory.free(sums);
        }
        double[] out = new double[(int) rows];
        for (int r = 0; r < rows; r++) {
            double diff = 0;
            double norm = 0;
            for (int p = 0; p < slices; p++) {
                diff += partial[2 * (r * slices + p)];
                norm += partial[2 * (r * slices + p) + 1];
            }
            out[r] = Math.sqrt(diff) / Math.sqrt(norm);
        }
        return out;
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        rowSoftmax(x, out, false);
    }

    @Override
    public void logSoftmax(Tensor x, Tensor out) {
        rowSoftmax(x, out, true);
    }

    private void rowSoftmax(Tensor x, Tensor out, boolean log) {
        DeviceTensor dx = device(x, "x");
        DeviceTensor dout = device(out, "out");
        ShapeChecks.sameShape(log ? "logSoftmax" : "softmax", x, out);
        forward.softmax(dx.matrix(), dout.matrix(), log);
    }

    @Override
    public void klDivergence(Tensor referenceLogProbs, Tensor logProbs, Tensor out) {
        DeviceTensor dp = device(referenceLogProbs, "referenceLogProbs");
        DeviceTensor dq = device(logProbs, "logProbs");
        DeviceTensor dout = device(out, "out");
        ShapeChecks.klDivergence(referenceLogProbs, logProbs, out);
        forward.klDivergence(dp.matrix(), dq.matrix(), DeviceMatrix.of(dout.buffer(), 1, referenceLogProbs.rows()));
    }

    // ---- GPTQ: CudaGptq on the tensors' matrices ---------------------------------------------------------

    @Override
    public void finishHessian(Tensor gram, long rows) {
        ShapeChecks.square("finishHessian", gram);
        gptq.finishHessian(device(gram, "gram").matrix(), rows);
    }

    @Override
    public float[] diagonal(Tensor square) {
        ShapeChecks.square("diagonal", square);
        return gptq.diagonal(device(square, "square").matrix());
    }

    @Override
    public void permuteSymmetric(Tensor h, int[] perm) {
        long n = ShapeChecks.square("permuteSymmetric", h);
        ShapeChecks.index("permuteSymmetric", perm, n, n);
        gptq.permuteSymmetric(device(h, "h").matrix(), perm);
    }

    @Override
    public void restoreSymmetric(Tensor h, float[] diagonal) {
        ShapeChecks.square("restoreSymmetric", h);
        gptq.restoreSymmetric(device(h, "h").matrix(), diagonal);
    }

    @Override
    public void addDiagonal(Tensor a, float value) {
        ShapeChecks.square("addDiagonal", a);
        gptq.addDiagonal(device(a, "a").matrix(), value);
    }

    @Override
    public boolean upperCholeskyOfInverse(Tensor h) {
        ShapeChecks.square("upperCholeskyOfInverse", h);
        return gptq.upperCholeskyOfInverse(device(h, "h").matrix());
    }

    @Override
    public void gatherTransposed(Tensor src, int[] rowIndex, int[] colIndex, Tensor dst) {
        ShapeChecks.gatherTransposed(src, rowIndex, colIndex, dst);
        DeviceTensor ddst = deviceAnyStorage(dst, "dst");
        if (ddst.isHalf()) {
            gptq.gatherTransposedToHalf(device(src, "src").matrix(), rowIndex, colIndex, ddst.halfMatrix());
        } else {
            gptq.gatherTransposed(device(src, "src").matrix(), rowIndex, colIndex, ddst.matrix());
        }
    }

    @Override
    public GptqRun<Tensor> gptq(Tensor w, Tensor u, long maxGroupRows) {
        DeviceTensor dw = device(w, "w");
        CudaGptq.Run run = gptq.gptq(dw.matrix(), device(u, "u").matrix(), maxGroupRows);
        // a view of the run's own buffer: freed by the run, so closing the view does nothing more
        DeviceTensor dequantized = new DeviceTensor(this, run.dequantized().buffer(), dw.rows(), dw.cols());
        return new GptqRun<>() {
            @Override
            public void findParams(long a, long b, int bits) {
                run.findParams(a, b, bits);
            }

            @Override
            public GroupScales scales() {
                return run.scales();
            }

            @Override
            public void quantizeGroup(long a, long b, int bits) {
                run.quantizeGroup(a, b, bits);
            }

            @Override
            public void lazyUpdate(long a, long b) {
                run.lazyUpdate(a, b);
            }

            @Override
            public int[][] packedCodes() {
                return run.packedCodes();
            }

            @Override
            public Tensor dequantized() {
                return dequantized;
            }

            @Override
            public void close() {
                run.close();
            }
        };
    }

    // ---- storage --------------------------------------------------------------------------------------------

    /** An uninitialised fp32 tensor; at least one element is allocated so that every tensor has an address. */
    private DeviceTensor allocate(String what, long... shape) {
        return allocate(what, Tensor.Storage.FP32, shape);
    }

    private DeviceTensor allocate(String what, Tensor.Storage storage, long... shape) {
        long n = Tensor.elementCount(shape);
        DeviceBuffer b = memory.allocate(what + " " + java.util.Arrays.toString(shape) + " " + storage,
                Math.multiplyExact(Math.max(1, n), DeviceTensor.elementBytes(storage)));
        return new DeviceTensor(this, storage, b, shape);
    }

    void free(DeviceTensor t) {
        if (!t.buffer().freed()) {
            memory.free(t.buffer());
        }
    }

    /** An fp32 tensor of this backend: fp16 ones only where Backend#halfZeros lists the operation. */
    private DeviceTensor device(Tensor t, String what) {
        DeviceTensor d = deviceAnyStorage(t, what);
        if (d.isHalf()) {
            throw new IllegalArgumentException(what + ": " + t + " is an fp16 tensor, which this operation does not"
                    + " take");
        }
        return d;
    }

    private DeviceTensor deviceAnyStorage(Tensor t, String what) {
        if (t instanceof DeviceTensor d && d.backend() == this) {
            return d;
        }
        throw new IllegalArgumentException(what + ": " + (t == null ? "null" : t + " is not a tensor of this CUDA"
                + " backend (" + context.device() + ")"));
    }
}
