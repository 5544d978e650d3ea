package org.exl2spark.gpu;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.CudaBackend;
import org.exl2spark.backend.DeviceTensor;
import org.exl2spark.backend.Tensor;
import org.exl2spark.eval.PerplexityEval;
import org.exl2spark.io.Half;
import org.exl2spark.kernels.Bytes;
import org.exl2spark.kernels.CudaRuntime;
import org.exl2spark.kernels.CudaStatus;
import org.exl2spark.kernels.DenseKernels;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.TensorCoreGemm;
import org.exl2spark.kernels.TensorCoreGemm.Precision;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.pipeline.BlockMeasurement;
import org.exl2spark.pipeline.BlockRunner;
import org.exl2spark.pipeline.HiddenStates;
import org.exl2spark.quant.BlockCandidate;

/**
 * The CUDA backend against the CPU backend: every {@link org.exl2spark.backend.Backend} operation on fresh random
 * inputs (seed printed), edge shapes included; device timings of the products (tensor-core TF32 and split TF32 against
 * the fp32 SIMT GEMM) and of the memory-bound kernels; and, given a {@link ForwardFixture}, the tiny model's logits,
 * its perplexity evaluation and its layer 0 measurement on both backends. Prints PASS/FAIL/PERF lines and a summary;
 * exits 1 on a failure.
 *
 * <pre>java -cp ... org.exl2spark.gpu.GpuBackendTest [--device N] [--seed S] [--fixture FILE] [--no-perf]
 *     [--only SECTION,SECTION]</pre>
 * ({@code --only} runs only the named sections, e.g. {@code operations vs CpuBackend}, as GpuSelfTest's does).
 */
public final class GpuBackendTest {
    /** The acceptance bound on the GPU eval's perplexity against the CPU's. */
    private static final double PERPLEXITY_TOLERANCE = 0.1;

    private final GpuContext ctx;
    private final CpuBackend cpu;
    private final SplittableRandom random;
    private final CheckReport report = new CheckReport();
    /** The sections to run (null: all). */
    private List<String> only;

    private GpuBackendTest(GpuContext ctx, CpuBackend cpu, long seed) {
        this.ctx = ctx;
        this.cpu = cpu;
        this.random = new SplittableRandom(seed);
    }

    @FunctionalInterface
    private interface Section {
        void run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        int device = 0;
        long seed = System.nanoTime();
        Path fixture = null;
        boolean perf = true;
        List<String> only = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--device" -> device = Integer.parseInt(args[++i]);
                case "--seed" -> seed = Long.parseLong(args[++i]);
                case "--fixture" -> fixture = Path.of(args[++i]);
                case "--no-perf" -> perf = false;
                case "--only" -> only = List.of(args[++i].split(","));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        CudaStatus status = CudaRuntime.status();
        System.out.println("exl2-spark CUDA backend test, seed " + seed + ", probe: " + status);
        if (!status.available()) {
            System.out.println("FAIL  probe: " + status.reason());
            System.exit(2);
        }
        GpuContext ctx = GpuContext.forDevice(device);
        System.out.println("device: " + ctx.device() + ", free " + Bytes.format(ctx.memoryInfo()[0]));
        try (CpuBackend cpu = new CpuBackend()) {
            System.out.println("CPU twin: " + cpu.describe());
            GpuBackendTest t = new GpuBackendTest(ctx, cpu, seed);
            t.only = only;
            t.section("operations vs CpuBackend", t::operations);
            t.section("device memory on failure", t::memoryOnFailure);
            if (perf) {
                t.section("products: timings", t::productTimings);
                t.section("memory-bound kernels: timings", t::memoryBoundTimings);
            }
            if (fixture != null) {
                Path f = fixture;
                t.section("tiny model: logits and perplexity", () -> t.tinyModel(f));
            }
            System.exit(t.report.summarize(ctx.device().name(), seed));
        }
    }

    private void section(String name, Section body) {
        if (only != null && !only.contains(name)) {
            return;
        }
        System.out.println("== " + name);
        long t0 = System.nanoTime();
        try {
            body.run();
            ctx.synchronize();
        } catch (Throwable e) {
            report.fail(name, "threw " + e);
            e.printStackTrace(System.out);
        }
        System.out.printf(Locale.ROOT, "      %s: %.1f s wall%n", name, (System.nanoTime() - t0) / 1e9);
    }

    private void expect(boolean ok, String name, String detail) {
        report.expect(ok, name, detail);
    }

    // ---------------------------------------------------------------------------------------------------------
    // operations

    /** A CUDA backend with the given linear precision and a pool of the device's free memory. */
    private CudaBackend gpu(Precision linear) {
        return new CudaBackend(ctx, DeviceMemory.defaultBudget(ctx), linear);
    }

    private void operations() throws java.io.IOException {
        try (CudaBackend fast = gpu(Precision.TF32); CudaBackend exact = gpu(Precision.TF32X3);
                CudaBackend half = gpu(Precision.FP16)) {
            linear(fast, exact, half);
            halfStorage(exact);
            matmul(fast);
            gram(fast);
            halfGram(fast);
            uploadWidened(fast);
            rowOps(fast);
            attention(fast);
            int live = fast.memory().liveCount() + exact.memory().liveCount() + half.memory().liveCount();
            expect(live == 0, "tensors closed", live + " allocation(s) still live after every check closed its own");
        }
    }

    private void linear(CudaBackend fast, CudaBackend exact, CudaBackend half) {
        // rows, in, out, bias: tile remainders, a row stride that is not 16-byte aligned (203), one row, a wide head
        long[][] shapes = {{111, 200, 300, 1}, {1, 203, 77, 0}, {257, 1024, 384, 1}, {130, 64, 4096, 0}};
        for (long[] s : shapes) {
            int rows = (int) s[0];
            int in = (int) s[1];
            int out = (int) s[2];
            float[] x = gaussian(rows * in, 1);
            float[] w = gaussian(out * in, 0.05);
            float[] b = s[3] == 1 ? gaussian(out, 1) : null;
            float[] ref = linearOn(cpu, x, w, b, rows, in, out);
            String shape = rows + "×" + in + " · (" + out + "×" + in + ")ᵀ" + (b != null ? " + bias" : "");
            double errFast = scaledErr(linearOn(fast, x, w, b, rows, in, out), ref);
            double errExact = scaledErr(linearOn(exact, x, w, b, rows, in, out), ref);
            float[] halfOut = linearOn(half, x, w, b, rows, in, out);
            double errHalf = scaledErr(halfOut, linearOn(cpu, roundedToHalf(x), roundedToHalf(w), b, rows, in, out));
            expect(errFast < 4e-3, "linear TF32 " + shape, String.format(Locale.ROOT, "max error %.2e of max |y|",
                    errFast));
            expect(errExact < 1e-5, "linear split TF32 " + shape, String.format(Locale.ROOT,
                    "max error %.2e of max |y|", errExact));
            expect(errHalf < 1e-5, "linear FP16 " + shape, String.format(Locale.ROOT, "max error %.2e of max |y|"
                    + " against the CPU product of fp16-rounded operands (%.2e against fp32 operands)", errHalf,
                    scaledErr(halfOut, ref)));
        }
        // a FAST linearMode scope: FP16 on a split-TF32 backend, split TF32 again once the scope closes
        {
            int rows = 130;
            int in = 1024;
            int out = 384;
            float[] x = gaussian(rows * in, 1);
            float[] w = gaussian(out * in, 0.05);
            float[] ref = linearOn(cpu, x, w, null, rows, in, out);
            float[] scoped;
            try (Backend.ModeScope s = exact.linearMode(Backend.LinearMode.FAST)) {
                scoped = linearOn(exact, x, w, null, rows, in, out);
            }
            float[] after = linearOn(exact, x, w, null, rows, in, out);
            float[] fp16 = linearOn(half, x, w, null, rows, in, out);
            expect(Arrays.equals(scoped, fp16) && scaledErr(after, ref) < 1e-5, "linear in a FAST linearMode scope",
                    String.format(Locale.ROOT, "inside: bit for bit the FP16 backend's; after: split TF32, max error"
                            + " %.2e of max |y|", scaledErr(after, ref)));
        }
        // the 72 KiB tile variants, which devices with at most 99 KiB of shared memory per block (sm_86, sm_89) run
        TensorCoreGemm smallTiles = new TensorCoreGemm(ctx, TensorCoreGemm.SMALL_DEVICE_SHARED_BYTES);
        int rows = 257;
        int in = 1023;
        int out = 300;
        float[] x = gaussian(rows * in, 1);
        float[] w = gaussian(out * in, 0.05);
        float[] b = gaussian(out, 1);
        float[] ref = linearOn(cpu, x, w, b, rows, in, out);
        float[] refHalf = linearOn(cpu, roundedToHalf(x), roundedToHalf(w), b, rows, in, out);
        for (Precision p : Precision.values()) {
            float[] got;
            try (DeviceTensor tx = fast.upload(x.clone(), rows, in); DeviceTensor tw = fast.upload(w.clone(), out, in);
                    DeviceTensor tb = fast.upload(b.clone(), 1, out); DeviceTensor ty = fast.zeros(rows, out)) {
                smallTiles.gemmNT(tx.matrix(), tw.matrix(), ty.matrix(), tb.matrix(), 1f, 0f, p);
                got = fast.download(ty);
            }
            double err = scaledErr(got, p == Precision.FP16 ? refHalf : ref);
            double tolerance = p == Precision.TF32 ? 4e-3 : 1e-5;
            expect(err < tolerance, "linear " + p + ", small tiles, " + rows + "×" + in + " · (" + out + "×" + in
                    + ")ᵀ + bias", String.format(Locale.ROOT, "max error %.2e of max |y|", err));
        }
    }

    /**
     * fp16 tensors (Backend#halfZeros): rounding into them and reading them back, gathering into them, FAST linears
     * with an fp16 weight on every fp16-operand kernel variant, and the operations that must refuse them.
     */
    private void halfStorage(CudaBackend gpu) {
        // odd length (the conversion's scalar tail), values beyond ±65504 and below fp16's normal range
        int n = 100_003;
        float[] v = gaussian(n, 3e4);
        for (int i = 0; i < n; i += 7) {
            v[i] *= 1e-9f;
        }
        compare("roundToHalf into an fp16 tensor, n=" + n, new float[][] {roundIntoHalf(cpu, v), roundIntoHalf(gpu, v)},
                0, "read back through download");
        // the measurement's gather of act-ordered, transposed GPTQ output into its fp16 weight
        int rows = 300;
        int cols = 77;
        float[] src = gaussian(rows * cols, 10);
        int[] rowIndex = new int[rows];
        for (int i = 0; i < rows; i++) {
            rowIndex[i] = (i * 37) % rows;  // a permutation: 37 and 300 are coprime
        }
        float[] expected;
        try (Tensor ts = cpu.upload(src.clone(), rows, cols); Tensor td = cpu.halfZeros(cols, rows)) {
            cpu.gatherTransposed(ts, rowIndex, null, td);
            expected = cpu.download(td);
        }
        try (Tensor ts = gpu.upload(src.clone(), rows, cols); Tensor td = gpu.halfZeros(cols, rows)) {
            gpu.gatherTransposed(ts, rowIndex, null, td);
            compare("gatherTransposed into an fp16 tensor " + cols + "×" + rows, new float[][] {expected,
                gpu.download(td)}, 0, "rows permuted");
        }
        // FAST linears with fp16 weights: the backend's own kernel on the edge shapes of linear(), then every variant
        long[][] shapes = {{111, 200, 300, 1}, {1, 203, 77, 0}, {257, 1024, 384, 1}, {130, 64, 4096, 0}};
        for (long[] sh : shapes) {
            int r = (int) sh[0];
            int in = (int) sh[1];
            int out = (int) sh[2];
            float[] x = gaussian(r * in, 1);
            float[] w = gaussian(out * in, 0.05);
            float[] b = sh[3] == 1 ? gaussian(out, 1) : null;
            float[] ref = linearOn(cpu, roundedToHalf(x), roundedToHalf(w), b, r, in, out);
            float[] twin = halfWeightLinearOn(cpu, x, w, b, r, in, out);
            double err = scaledErr(halfWeightLinearOn(gpu, x, w, b, r, in, out), ref);
            String shape = r + "×" + in + " · (" + out + "×" + in + ")ᵀ" + (b != null ? " + bias" : "");
            expect(err < 1e-5, "linear with an fp16 weight (FAST) " + shape, String.format(Locale.ROOT, "max error"
                    + " %.2e of max |y| against the CPU product of fp16-rounded operands (CPU twin with the fp16"
                    + " weight: %.2e)", err, scaledErr(twin, ref)));
        }
        for (int shared : new int[] {Integer.MAX_VALUE, TensorCoreGemm.A100_SHARED_BYTES,
                TensorCoreGemm.SMALL_DEVICE_SHARED_BYTES}) {
            TensorCoreGemm g = new TensorCoreGemm(ctx, shared);
            for (int in : new int[] {1023, 1024}) {
                int r = 257;
                int out = 300;
                float[] x = gaussian(r * in, 1);
                float[] w = gaussian(out * in, 0.05);
                float[] b = gaussian(out, 1);
                float[] ref = linearOn(cpu, roundedToHalf(x), roundedToHalf(w), b, r, in, out);
                float[] got;
                try (DeviceTensor tx = gpu.halfZeros(r, in); DeviceTensor tw = gpu.halfZeros(out, in);
                        DeviceTensor fx = gpu.upload(x.clone(), r, in); DeviceTensor fw = gpu.upload(w.clone(), out, in);
                        DeviceTensor tb = gpu.upload(b.clone(), 1, out); DeviceTensor ty = gpu.zeros(r, out)) {
                    gpu.roundToHalf(fx, tx);
                    gpu.roundToHalf(fw, tw);
                    g.gemmNTHalf(tx.halfMatrix(), tw.halfMatrix(), ty.matrix(), tb.matrix(), 1f, 0f);
                    got = gpu.download(ty);
                }
                double err = scaledErr(got, ref);
                expect(err < 1e-5, "gemm " + g.halfKernel() + " " + r + "×" + in + " · (" + out + "×" + in + ")ᵀ + bias",
                        String.format(Locale.ROOT, "max error %.2e of max |y| (%s)", err, in % 8 == 0
                                ? "16-byte copies" : "rows not 16-byte aligned: element copies"));
            }
        }
        // an fp16 tensor outside the operations that take one, and an fp16 weight outside a FAST scope
        String refusals;
        try (Tensor h = gpu.halfZeros(4, 8); Tensor x = gpu.zeros(2, 8); Tensor y = gpu.zeros(2, 4)) {
            refusals = thrown(() -> gpu.add(h, h, h)) + "; " + thrown(() -> gpu.linear(x, h, null, y));
        }
        expect(refusals.startsWith("IllegalArgumentException") && refusals.contains("; IllegalStateException"),
                "fp16 tensors refused elsewhere", refusals);
    }

    private static String thrown(Runnable op) {
        try {
            op.run();
            return "nothing thrown";
        } catch (RuntimeException e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    /** roundToHalf of v into an fp16 tensor of {@code be}, read back as floats. */
    private static float[] roundIntoHalf(Backend be, float[] v) {
        try (Tensor t = be.upload(v.clone(), v.length); Tensor h = be.halfZeros(v.length)) {
            be.roundToHalf(t, h);
            return be.download(h);
        }
    }

    /** A FAST linear whose weight is w rounded into an fp16 tensor. */
    private static float[] halfWeightLinearOn(Backend be, float[] x, float[] w, float[] b, int rows, int in,
            int out) {
        try (Tensor tx = be.upload(x.clone(), rows, in);
                Tensor fw = be.upload(w.clone(), out, in);
                Tensor tw = be.halfZeros(out, in);
                Tensor tb = b == null ? null : be.upload(b.clone(), out);
                Tensor ty = be.zeros(rows, out)) {
            be.roundToHalf(fw, tw);
            try (Backend.ModeScope fast = be.linearMode(Backend.LinearMode.FAST)) {
                be.linear(tx, tw, tb, ty);
            }
            return be.download(ty);
        }
    }

    /** The CPU twin's operands of an FP16 product: each value rounded to fp16 (nearest even) and back. */
    private static float[] roundedToHalf(float[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Half.toFloat(Half.fromFloat(v[i]));
        }
        return r;
    }

    private static void fastLinear(Backend be, Tensor x, Tensor weight, Tensor out) {
        try (Backend.ModeScope fast = be.linearMode(Backend.LinearMode.FAST)) {
            be.linear(x, weight, null, out);
        }
    }

    private static float[] linearOn(Backend be, float[] x, float[] w, float[] b, int rows, int in, int out) {
        try (Tensor tx = be.upload(x.clone(), rows, in);
                Tensor tw = be.upload(w.clone(), out, in);
                Tensor tb = b == null ? null : be.upload(b.clone(), out);
                Tensor ty = be.zeros(rows, out)) {
            be.linear(tx, tw, tb, ty);
            return be.download(ty);
        }
    }

    private void matmul(CudaBackend gpu) {
        int m = 77;
        int n = 130;
        int k = 67;
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                float[] a = gaussian(m * k, 1);
                float[] b = gaussian(k * n, 1);
                float[] c = gaussian(m * n, 1);
                long[] aShape = ta ? new long[] {k, m} : new long[] {m, k};
                long[] bShape = tb ? new long[] {n, k} : new long[] {k, n};
                float[] ref = matmulOn(cpu, a, aShape, ta, b, bShape, tb, c, m, n, 0.7f, 0.3f);
                double err = scaledErr(matmulOn(gpu, a, aShape, ta, b, bShape, tb, c, m, n, 0.7f, 0.3f), ref);
                expect(err < 1e-5, "matmul " + (ta ? "aᵀ" : "a") + "·" + (tb ? "bᵀ" : "b") + " " + m + "×" + n + "×" + k,
                        String.format(Locale.ROOT, "0.7·op(a)·op(b) + 0.3·c: max error %.2e of max |c|", err));
            }
        }
        float[] nan = new float[m * n];
        java.util.Arrays.fill(nan, Float.NaN);
        float[] a = gaussian(m * k, 1);
        float[] b = gaussian(n * k, 1);
        float[] ref = matmulOn(cpu, a, new long[] {m, k}, false, b, new long[] {n, k}, true, nan, m, n, 1f, 0f);
        float[] got = matmulOn(gpu, a, new long[] {m, k}, false, b, new long[] {n, k}, true, nan, m, n, 1f, 0f);
        expect(scaledErr(got, ref) < 1e-5, "matmul beta 0", "c's old NaNs are ignored");
    }

    private static float[] matmulOn(Backend be, float[] a, long[] aShape, boolean ta, float[] b, long[] bShape,
            boolean tb, float[] c, int m, int n, float alpha, float beta) {
        try (Tensor tA = be.upload(a.clone(), aShape);
                Tensor tB = be.upload(b.clone(), bShape);
                Tensor tC = be.upload(c.clone(), m, n)) {
            be.matmul(tA, ta, tB, tb, tC, alpha, beta);
            return be.download(tC);
        }
    }

    private void gram(CudaBackend gpu) {
        int rows = 257;
        int n = 300;
        float[] x = gaussian(rows * n, 1);
        float[] start = gaussian(n * n, 1);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                start[i * n + j] = start[j * n + i];
            }
        }
        float[] ref = gramOn(cpu, x, start, rows, n);
        float[] got = gramOn(gpu, x, start, rows, n);
        int asymmetric = 0;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                asymmetric += got[i * n + j] != got[j * n + i] ? 1 : 0;
            }
        }
        double err = scaledErr(got, ref);
        expect(err < 1e-5 && asymmetric == 0, "accumulateGram " + rows + "×" + n, String.format(Locale.ROOT,
                "gram += xᵀx onto a symmetric start (fp32 SIMT): max error %.2e of max |g|, %d asymmetric pairs", err,
                asymmetric));
    }

    /**
     * accumulateHalfGram (fp16 tensor cores, upper triangle) finished by finishHessian (mirror, ÷ rows) against the CPU
     * twin (round to fp16, fp32 Gram, ÷ rows), over two chunks whose shapes are not multiples of the tiles.
     */
    private void halfGram(CudaBackend gpu) {
        int n = 777;
        int[] chunks = {100, 33};
        float[][] xs = {gaussian(chunks[0] * n, 1), gaussian(chunks[1] * n, 1)};
        float[][] cpuGpu = new float[2][];
        Backend[] backends = {cpu, gpu};
        for (int b = 0; b < 2; b++) {
            try (Tensor g = backends[b].zeros(n, n)) {
                for (int c = 0; c < 2; c++) {
                    try (Tensor x = backends[b].upload(xs[c].clone(), chunks[c], n)) {
                        backends[b].accumulateHalfGram(x, g);
                    }
                }
                backends[b].finishHessian(g, chunks[0] + chunks[1]);
                cpuGpu[b] = backends[b].download(g);
            }
        }
        int asymmetric = 0;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                asymmetric += cpuGpu[1][i * n + j] != cpuGpu[1][j * n + i] ? 1 : 0;
            }
        }
        double err = scaledErr(cpuGpu[1], cpuGpu[0]);
        expect(err < 1e-5 && asymmetric == 0, "accumulateHalfGram 100+33×777 + finishHessian", String.format(
                Locale.ROOT, "fp16 tensor cores vs CPU twin: max error %.2e of max |h|, %d asymmetric pairs", err,
                asymmetric));
    }

    /**
     * uploadWidened (16-bit bytes through the pinned slab, widened on the device in 64 MiB parts) against the CPU
     * twin's host widening, fp16 and bf16: every 16-bit pattern, then random ones up to a length that leaves a partial
     * last part; NaNs compared as NaNs.
     */
    private void uploadWidened(CudaBackend gpu) throws java.io.IOException {
        int n = (32 << 20) + 12345;
        byte[] bytes = new byte[2 * n];
        for (int i = 0; i < n; i++) {
            int v = i < 65536 ? i : random.nextInt(65536);
            bytes[2 * i] = (byte) v;
            bytes[2 * i + 1] = (byte) (v >>> 8);
        }
        Backend.StoredBytes source = (offset, dst) -> dst.put(bytes, (int) offset, dst.remaining());
        for (boolean bf16 : new boolean[] {false, true}) {
            float[] want;
            float[] got;
            try (Tensor c = cpu.uploadWidened(source, bf16, n); Tensor g = gpu.uploadWidened(source, bf16, n)) {
                want = cpu.download(c);
                got = gpu.download(g);
            }
            int differ = 0;
            for (int i = 0; i < n; i++) {
                boolean same = Float.isNaN(want[i]) ? Float.isNaN(got[i])
                        : Float.floatToRawIntBits(want[i]) == Float.floatToRawIntBits(got[i]);
                differ += same ? 0 : 1;
            }
            expect(differ == 0, "uploadWidened " + (bf16 ? "bf16" : "fp16") + " " + n + " values",
                    differ + " values differ from the CPU twin's widening (every 16-bit pattern included)");
        }
    }

    private static float[] gramOn(Backend be, float[] x, float[] start, int rows, int n) {
        try (Tensor tx = be.upload(x.clone(), rows, n); Tensor tg = be.upload(start.clone(), n, n)) {
            be.accumulateGram(tx, tg);
            return be.download(tg);
        }
    }

    private void rowOps(CudaBackend gpu) {
        int vocab = 500;
        int hidden = 384;
        int[] ids = new int[37];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = random.nextInt(vocab);
        }
        float[] table = gaussian(vocab * hidden, 1);
        float[][] embedded = on(be -> {
            try (Tensor t = be.upload(table.clone(), vocab, hidden); Tensor o = be.zeros(ids.length, hidden)) {
                be.embed(ids, t, o);
                return be.download(o);
            }
        });
        expect(scaledErr(embedded[1], embedded[0]) == 0, "embed", ids.length + " rows of a " + vocab + "×" + hidden
                + " table, bit for bit");

        float[] x = gaussian(ids.length * hidden, 3);
        float[] weight = gaussian(hidden, 1);
        for (boolean inPlace : new boolean[] {false, true}) {
            float[][] r = on(be -> {
                try (Tensor tx = be.upload(x.clone(), ids.length, hidden); Tensor tw = be.upload(weight.clone(), hidden);
                        Tensor to = inPlace ? null : be.zeros(ids.length, hidden)) {
                    be.rmsNorm(tx, tw, 1e-5f, inPlace ? tx : to);
                    return be.download(inPlace ? tx : to);
                }
            });
            compare("rmsNorm" + (inPlace ? " in place" : ""), r, 1e-6, ids.length + "×" + hidden);
        }

        int batch = 2;
        int seq = 100;
        int heads = 6;
        int headDim = 64;
        float[] q = gaussian(batch * seq * heads * headDim, 1);
        float[][] table2 = ropeTables(128, headDim);
        float[][] roped = on(be -> {
            try (Tensor tq = be.upload(q.clone(), batch, seq, (long) heads * headDim);
                    Tensor c = be.upload(table2[0].clone(), 128, headDim / 2);
                    Tensor s = be.upload(table2[1].clone(), 128, headDim / 2)) {
                be.rope(tq, heads, headDim, c, s);
                return be.download(tq);
            }
        });
        compare("rope", roped, 1e-6, batch + "×" + seq + "×" + heads + "·" + headDim);

        float[] copied = on(be -> {
            try (Tensor src = be.upload(q.clone(), batch, seq, (long) heads * headDim);
                    Tensor dst = be.zeros(batch, seq, (long) heads * headDim)) {
                be.copy(src, dst);
                return be.download(dst);
            }
        })[1];
        expect(Arrays.equals(copied, q), "copy", batch + "×" + seq + "×" + heads * headDim + ", bit for bit");
        float[] sliced = on(be -> {
            float[] back = new float[q.length];
            try (Tensor t = be.uploadSlice(q, 64, batch, seq - 1, (long) heads * headDim)) {
                be.downloadSlice(t, back, 3);
            }
            return back;
        })[1];
        float[] expectedSlice = new float[q.length];
        System.arraycopy(q, 64, expectedSlice, 3, batch * (seq - 1) * heads * headDim);
        expect(Arrays.equals(sliced, expectedSlice), "uploadSlice and downloadSlice", "from offset 64, into offset 3,"
                + " bit for bit");

        // the block error: 3 rows, one with values beyond fp16's range (clamped) and one with a NaN; a long row
        // (1.5 M values) spreads over many slices
        for (int[] shape : new int[][] {{3, 7, 500}, {2, 2048, 768}}) {
            int rowCount = shape[0];
            int n = rowCount * shape[1] * shape[2];
            float[] yv = gaussian(n, 1);
            float[] refv = yv.clone();
            for (int i = 0; i < n; i++) {
                refv[i] += (float) (0.05 * random.nextGaussian());
            }
            yv[5] = 1e6f;
            if (rowCount > 2) {
                yv[n - 1] = Float.NaN;
            }
            double[][] errs = new double[2][];
            for (int b = 0; b < 2; b++) {
                Backend be = b == 0 ? cpu : gpu;
                try (Tensor ty = be.upload(yv.clone(), rowCount, shape[1], shape[2]);
                        Tensor tr = be.upload(refv.clone(), rowCount, shape[1], shape[2])) {
                    errs[b] = be.relativeErrors(ty, tr);
                }
            }
            double worst = 0;
            boolean nanSame = true;
            for (int r = 0; r < rowCount; r++) {
                if (Double.isNaN(errs[0][r]) || Double.isNaN(errs[1][r])) {
                    nanSame &= Double.isNaN(errs[0][r]) && Double.isNaN(errs[1][r]);
                } else {
                    worst = Math.max(worst, Math.abs(errs[1][r] - errs[0][r]) / errs[0][r]);
                }
            }
            expect(worst < 1e-9 && nanSame, "relativeErrors " + rowCount + "×" + shape[1] + "×" + shape[2],
                    String.format(Locale.ROOT, "per-row errors %s; largest relative difference %.1e, NaN rows alike"
                            + " %s", Arrays.toString(errs[1]), worst, nanSame));
        }

        for (int n : new int[] {1001, 4096}) {
            float[] g = gaussian(n, 3);
            float[] u = gaussian(n, 1);
            for (boolean inPlace : new boolean[] {false, true}) {
                float[][] sw = on(be -> {
                    try (Tensor tg = be.upload(g.clone(), n); Tensor tu = be.upload(u.clone(), n);
                            Tensor to = inPlace ? null : be.zeros(n)) {
                        be.swiGlu(tg, tu, inPlace ? tu : to);
                        return be.download(inPlace ? tu : to);
                    }
                });
                compare("swiGlu n=" + n + (inPlace ? " in place" : ""), sw, 1e-6, "silu(gate)·up");
                float[][] sum = on(be -> {
                    try (Tensor tg = be.upload(g.clone(), n); Tensor tu = be.upload(u.clone(), n);
                            Tensor to = inPlace ? null : be.zeros(n)) {
                        be.add(tg, tu, inPlace ? tg : to);
                        return be.download(inPlace ? tg : to);
                    }
                });
                compare("add n=" + n + (inPlace ? " in place" : ""), sum, 0, "bit for bit");
                // magnitudes from fp16's subnormals to beyond its range, where the rounding clamps
                float[] wide = new float[n];
                for (int i = 0; i < n; i++) {
                    wide[i] = (float) (g[i] * Math.pow(10, random.nextInt(13) - 8));
                }
                float[][] rounded = on(be -> {
                    try (Tensor tx = be.upload(wide.clone(), n); Tensor to = inPlace ? null : be.zeros(n)) {
                        be.roundToHalf(tx, inPlace ? tx : to);
                        return be.download(inPlace ? tx : to);
                    }
                });
                compare("roundToHalf n=" + n + (inPlace ? " in place" : ""), rounded, 0, "bit for bit");
            }
        }

        int rows = 7;
        int cols = 4099;
        float[] logits = gaussian(rows * cols, 4);
        for (boolean log : new boolean[] {false, true}) {
            for (boolean inPlace : new boolean[] {false, true}) {
                float[][] sm = on(be -> {
                    try (Tensor tx = be.upload(logits.clone(), rows, cols);
                            Tensor to = inPlace ? null : be.zeros(rows, cols)) {
                        if (log) {
                            be.logSoftmax(tx, inPlace ? tx : to);
                        } else {
                            be.softmax(tx, inPlace ? tx : to);
                        }
                        return be.download(inPlace ? tx : to);
                    }
                });
                compare((log ? "logSoftmax" : "softmax") + (inPlace ? " in place" : ""), sm, 1e-5, rows + "×" + cols);
            }
        }

        float[] other = logits.clone();
        for (int i = 0; i < other.length; i++) {
            other[i] += (float) (0.3 * random.nextGaussian());
        }
        float[][] kl = on(be -> {
            try (Tensor p = be.upload(logits.clone(), rows, cols); Tensor lq = be.upload(other, rows, cols);
                    Tensor o = be.zeros(rows)) {
                be.logSoftmax(p, p);
                be.logSoftmax(lq, lq);
                be.klDivergence(p, lq, o);
                return be.download(o);
            }
        });
        compare("klDivergence", kl, 1e-4, rows + " rows of " + cols + " log-probabilities");
    }

    private void attention(CudaBackend gpu) {
        // batch, seqLen, heads, kvHeads, headDim, window
        int[][] configs = {{2, 100, 6, 2, 64, 0}, {1, 300, 4, 4, 128, 50}, {3, 1, 2, 1, 32, 0}, {1, 70, 2, 1, 256, 0},
            {2, 257, 8, 2, 96, 33}};
        for (int[] c : configs) {
            int batch = c[0];
            int seq = c[1];
            int heads = c[2];
            int kvHeads = c[3];
            int headDim = c[4];
            int window = c[5];
            float[] q = gaussian(batch * seq * heads * headDim, 1);
            float[] k = gaussian(batch * seq * kvHeads * headDim, 1);
            float[] v = gaussian(batch * seq * kvHeads * headDim, 1);
            float[][] r = on(be -> {
                try (Tensor tq = be.upload(q.clone(), batch, seq, (long) heads * headDim);
                        Tensor tk = be.upload(k.clone(), batch, seq, (long) kvHeads * headDim);
                        Tensor tv = be.upload(v.clone(), batch, seq, (long) kvHeads * headDim);
                        Tensor to = be.zeros(batch, seq, (long) heads * headDim)) {
                    be.attention(tq, tk, tv, to, heads, kvHeads, headDim, window);
                    return be.download(to);
                }
            });
            compare("attention", r, 2e-5, String.format(Locale.ROOT, "batch %d, %d tokens, %d heads / %d KV, dim %d,"
                    + " window %d", batch, seq, heads, kvHeads, headDim, window));
        }
    }

    @FunctionalInterface
    private interface OnBackend {
        float[] run(Backend be);
    }

    /** {CPU result, GPU result} of the same computation (the GPU on a fresh TF32 backend, closed after). */
    private float[][] on(OnBackend body) {
        float[] ref = body.run(cpu);
        try (CudaBackend gpu = gpu(Precision.TF32)) {
            return new float[][] {ref, body.run(gpu)};
        }
    }

    private void compare(String name, float[][] cpuGpu, double tolerance, String detail) {
        double err = scaledErr(cpuGpu[1], cpuGpu[0]);
        expect(err <= tolerance, name, String.format(Locale.ROOT, "%s: max error %.2e of max |ref| (tolerance %.0e)",
                detail, err, tolerance));
    }

    /** A failing task's tensors are freed by the backend's close, and the device gets its memory back. */
    private void memoryOnFailure() {
        long freeBefore = ctx.memoryInfo()[0];
        CudaBackend gpu = gpu(Precision.TF32);
        String error = "none";
        try (gpu) {
            Tensor a = gpu.zeros(1024, 1024, 64);
            Tensor b = gpu.zeros(1024, 64);
            expect(gpu.memory().inUse() >= 4L * (a.size() + b.size()), "pool accounting", Bytes.format(gpu.memory()
                    .inUse()) + " in use for " + a + " and " + b);
            gpu.add(a, b, a);
        } catch (IllegalArgumentException e) {
            error = e.getMessage();
        }
        long freeAfter = ctx.memoryInfo()[0];
        expect(gpu.memory().liveCount() == 0 && freeAfter >= freeBefore - (8L << 20), "freed on failure",
                "the op failed (" + error + "); close freed " + Bytes.format(gpu.memory().peak())
                        + ", device free " + Bytes.format(freeBefore) + " before, " + Bytes.format(freeAfter) + " after");
    }

    // ---------------------------------------------------------------------------------------------------------
    // timings

    private void productTimings() {
        try (CudaBackend gpu = gpu(Precision.TF32); CudaBackend exact = gpu(Precision.TF32X3)) {
            int n = 8192;
            try (DeviceTensor a = gpu.upload(gaussian(n * n, 1), n, n);
                    DeviceTensor b = gpu.upload(gaussian(n * n, 1), n, n);
                    DeviceTensor c = gpu.zeros(n, n);
                    DeviceTensor ea = exact.upload(gpu.download(a), n, n);
                    DeviceTensor eb = exact.upload(gpu.download(b), n, n);
                    DeviceTensor ec = exact.zeros(n, n)) {
                double flops = 2.0 * n * n * n;
                perfFlops("linear TF32 tensor cores 8192×8192·(8192×8192)ᵀ", flops, median(3, () -> gpu.linear(a, b,
                        null, c)));
                perfFlops("linear FP16 (FAST) tensor cores 8192×8192·(8192×8192)ᵀ", flops, median(3,
                        () -> fastLinear(gpu, a, b, c)));
                perfFlops("linear split TF32 (fp32-accurate) 8192³", flops, median(3, () -> exact.linear(ea, eb, null,
                        ec)));
                DenseKernels simt = gpu.denseKernels();
                perfFlops("fp32 SIMT gemm_nn 8192³ (for comparison)", flops, median(3, () -> simt.gemm(a.matrix(),
                        false, b.matrix(), c.matrix(), 1f, 0f)));
                perfFlops("accumulateGram (fp32 SIMT, upper half + mirror) n 8192, 8192 rows", 1.0 * n * (n + 1) * n,
                        median(3, () -> gpu.accumulateGram(a, c)));
                perfFlops("accumulateHalfGram (fp16 tensor cores, upper half, rounding and operand allocation"
                        + " included) n 8192, 8192 rows", 1.0 * n * (n + 1) * n, median(3,
                        () -> gpu.accumulateHalfGram(a, c)));
            }
            // the 110B MLP projections: 32768 tokens through 8192 → 49152 (gate, up) and 49152 → 8192 (down)
            int tokens = 32768;
            int hidden = 8192;
            int inter = 49152;
            try (DeviceTensor x = gpu.upload(gaussian(tokens * hidden, 1), tokens, hidden);
                    DeviceTensor wUp = gpu.upload(gaussian(inter * hidden, 0.02), inter, hidden);
                    DeviceTensor h = gpu.zeros(tokens, inter)) {
                double flops = 2.0 * tokens * hidden * inter;
                perfFlops("linear TF32 32768×8192 → 49152 (gate/up)", flops, median(3, () -> gpu.linear(x, wUp, null,
                        h)));
                perfFlops("linear FP16 (FAST) 32768×8192 → 49152 (gate/up)", flops, median(3, () -> fastLinear(gpu,
                        x, wUp, h)));
                TensorCoreGemm smallTiles = new TensorCoreGemm(ctx, TensorCoreGemm.SMALL_DEVICE_SHARED_BYTES);
                perfFlops("linear FP16 small tiles (128 × 128, 2 stages) 32768×8192 → 49152", flops, median(3,
                        () -> smallTiles.gemmNT(x.matrix(), wUp.matrix(), h.matrix(), null, 1f, 0f, Precision.FP16)));
                // fp16 operands in device memory: the measurement's candidates (fp16 weights, input converted once
                // per linear), and the GEMM alone on each of its variants
                TensorCoreGemm own = new TensorCoreGemm(ctx);
                try (DeviceTensor wUpHalf = gpu.halfZeros(inter, hidden); DeviceTensor xHalf = gpu.halfZeros(tokens,
                        hidden)) {
                    gpu.roundToHalf(wUp, wUpHalf);
                    gpu.roundToHalf(x, xHalf);
                    perfFlops("linear fp16 weight (FAST, input converted) 32768×8192 → 49152 (gate/up)", flops,
                            median(3, () -> fastLinear(gpu, x, wUpHalf, h)));
                    for (int shared : new int[] {Integer.MAX_VALUE, TensorCoreGemm.A100_SHARED_BYTES,
                            TensorCoreGemm.SMALL_DEVICE_SHARED_BYTES}) {
                        TensorCoreGemm g = new TensorCoreGemm(ctx, shared);
                        perfFlops("gemm " + g.halfKernel() + " (fp16 operands) 32768×8192 → 49152", flops, median(3,
                                () -> g.gemmNTHalf(xHalf.halfMatrix(), wUpHalf.halfMatrix(), h.matrix(), null, 1f,
                                        0f)));
                    }
                    perfBytes("input to fp16 (toHalf) 32768×8192 (4 + 2 bytes an element)", 6.0 * tokens * hidden,
                            median(5, () -> gpu.roundToHalf(x, xHalf)));
                }
                try (DeviceTensor wDown = gpu.upload(gaussian(hidden * inter, 0.02), hidden, inter)) {
                    perfFlops("linear TF32 32768×49152 → 8192 (down)", flops, median(3, () -> gpu.linear(h, wDown, null,
                            x)));
                    perfFlops("linear FP16 (FAST) 32768×49152 → 8192 (down)", flops, median(3, () -> fastLinear(gpu,
                            h, wDown, x)));
                    try (DeviceTensor wDownHalf = gpu.halfZeros(hidden, inter)) {
                        gpu.roundToHalf(wDown, wDownHalf);
                        perfFlops("linear fp16 weight (FAST, input converted) 32768×49152 → 8192 (down)", flops,
                                median(3, () -> fastLinear(gpu, h, wDownHalf, x)));
                    }
                }
                report.perf("fp16-operand kernel on this device: " + own.halfKernel());
            }
            // attention at the 110B model's shape: 64 heads over 8 KV heads of 128, 2 × 2048 tokens
            int batch = 2;
            int seq = 2048;
            try (DeviceTensor q = gpu.upload(gaussian(batch * seq * 64 * 128, 1), batch, seq, 64 * 128);
                    DeviceTensor k = gpu.upload(gaussian(batch * seq * 8 * 128, 1), batch, seq, 8 * 128);
                    DeviceTensor v = gpu.upload(gaussian(batch * seq * 8 * 128, 1), batch, seq, 8 * 128);
                    DeviceTensor o = gpu.zeros(batch, seq, 64 * 128)) {
                double flops = 4.0 * 128 * 64 * ((double) seq * (seq + 1) / 2) * batch;
                perfFlops("attention fp32 SIMT, 2×2048 tokens, 64/8 heads of 128, causal", flops, median(3,
                        () -> gpu.attention(q, k, v, o, 64, 8, 128, 0)));
            }
        }
    }

    private void memoryBoundTimings() {
        try (CudaBackend gpu = gpu(Precision.TF32)) {
            long rows = 32768;
            long cols = 8192;
            long n = rows * cols;
            double bytes = 4.0 * n;
            try (DeviceTensor a = gpu.zeros(rows, cols); DeviceTensor b = gpu.zeros(rows, cols);
                    DeviceTensor c = gpu.zeros(rows, cols); DeviceTensor w = gpu.zeros(cols)) {
                perfBytes("add 32768×8192 (2 reads + 1 write)", 3 * bytes, median(5, () -> gpu.add(a, b, c)));
                perfBytes("swiGlu 32768×8192", 3 * bytes, median(5, () -> gpu.swiGlu(a, b, c)));
                perfBytes("rmsNorm 32768×8192 (1 read + 1 write)", 2 * bytes, median(5, () -> gpu.rmsNorm(a, w, 1e-5f,
                        c)));
                int heads = 64;
                int headDim = 128;
                try (DeviceTensor cos = gpu.zeros(2048, headDim / 2); DeviceTensor sin = gpu.zeros(2048, headDim / 2);
                        DeviceTensor q = gpu.zeros(16, 2048, (long) heads * headDim)) {
                    perfBytes("rope 16×2048×64·128 in place", 2 * bytes, median(5, () -> gpu.rope(q, heads, headDim, cos,
                            sin)));
                }
                int[] ids = new int[(int) rows];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = random.nextInt(16384);
                }
                try (DeviceTensor table = gpu.zeros(16384, cols)) {
                    perfBytes("embed 32768 rows of 8192 (incl. the ids' upload)", 2 * bytes, median(5,
                            () -> gpu.embed(ids, table, c)));
                }
            }
            try (DeviceTensor x = gpu.zeros(16384, 32768); DeviceTensor y = gpu.zeros(16384, 32768);
                    DeviceTensor kl = gpu.zeros(16384)) {
                double b = 4.0 * x.size();
                perfBytes("logSoftmax 16384×32768 (1 read + 1 write, plus a re-read)", 2 * b, median(5,
                        () -> gpu.logSoftmax(x, y)));
                perfBytes("softmax 16384×32768", 2 * b, median(5, () -> gpu.softmax(x, y)));
                perfBytes("klDivergence 16384×32768 (2 reads)", 2 * b, median(5, () -> gpu.klDivergence(x, y, kl)));
            }
        }
    }

    private void perfFlops(String what, double flops, double ms) {
        report.perf(String.format(Locale.ROOT, "%s: %.3f ms, %.1f TFLOP/s", what, ms, flops / (ms / 1e3) / 1e12));
    }

    private void perfBytes(String what, double bytes, double ms) {
        report.perfBytes(what, bytes, ms);
    }

    private double median(int runs, Runnable work) {
        return CheckReport.median(ctx, runs, work);
    }

    // ---------------------------------------------------------------------------------------------------------
    // the tiny model

    private void tinyModel(Path fixture) throws Exception {
        ForwardFixture.Contents f = ForwardFixture.read(fixture);
        System.out.println("fixture: " + f.architecture().family() + ", " + f.architecture().numLayers() + " layers, "
                + f.tokens().rows() + " × " + f.tokens().length() + " tokens, sha256 " + f.tokens().sha256());
        int[][] rows = f.tokens().rows(0, 2);
        float[] ref;
        long t0 = System.nanoTime();
        try (Tensor logits = new Transformer(f.architecture(), cpu).forward(f.weights(), rows)) {
            ref = cpu.download(logits);
        }
        double cpuSeconds = (System.nanoTime() - t0) / 1e9;
        System.out.printf(Locale.ROOT, "      CPU forward of 2 rows: %.2f s%n", cpuSeconds);
        int vocab = f.architecture().vocabSize();
        for (Precision p : Precision.values()) {
            try (CudaBackend gpu = gpu(p)) {
                new Transformer(f.architecture(), gpu).forward(f.weights(), rows).close();  // loads the kernels
                long g0 = System.nanoTime();
                float[] got;
                try (Tensor logits = new Transformer(f.architecture(), gpu).forward(f.weights(), rows)) {
                    got = gpu.download(logits);
                }
                double gpuSeconds = (System.nanoTime() - g0) / 1e9;
                double err = scaledErr(got, ref);
                double maxAbs = 0;
                for (int i = 0; i < got.length; i++) {
                    maxAbs = Math.max(maxAbs, Math.abs(got[i] - ref[i]));
                }
                int positions = ref.length / vocab;
                int agree = 0;
                for (int pos = 0; pos < positions; pos++) {
                    agree += PerplexityEval.argmax(got, pos * vocab, vocab) == PerplexityEval.argmax(ref, pos * vocab,
                            vocab) ? 1 : 0;
                }
                double tolerance = p == Precision.TF32X3 ? 1e-4 : 2e-2;  // TF32 and FP16: 10-bit operands
                expect(err < tolerance, "tiny logits, linear " + p, String.format(Locale.ROOT,
                        "2×2048 tokens: max |Δ| %.2e (%.2e of max |logit|, tolerance %.0e), argmax agrees at %d/%d"
                                + " positions; forward %.3f s (CPU %.2f s, weights uploaded per layer)", maxAbs, err,
                        tolerance, agree, positions, gpuSeconds, cpuSeconds));
            }
        }

        PerplexityEval.Result cpuEval = new PerplexityEval(cpu, s -> { }).evaluate(f.weights(), f.tokens());
        report.perf(String.format(Locale.ROOT, "tiny eval %d×%d on CPU (%s): perplexity %.4f, %.2f s", f.tokens().rows(),
                f.tokens().length(), cpu.describe(), cpuEval.perplexity(), cpuEval.seconds()));
        for (Precision p : Precision.values()) {
            try (CudaBackend gpu = gpu(p)) {
                PerplexityEval.Result r = new PerplexityEval(gpu, s -> { }).evaluate(f.weights(), f.tokens());
                double delta = Math.abs(r.perplexity() - cpuEval.perplexity());
                report.perf(String.format(Locale.ROOT, "tiny eval on GPU, linear %s: perplexity %.4f, %.2f s, pool peak %s", p,
                        r.perplexity(), r.seconds(), Bytes.format(gpu.memory().peak())));
                expect(delta < PERPLEXITY_TOLERANCE, "tiny perplexity, linear " + p, String.format(Locale.ROOT,
                        "%.4f vs CPU %.4f (|Δ| %.4f, bound %.1f)", r.perplexity(), cpuEval.perplexity(), delta,
                        PERPLEXITY_TOLERANCE));
            }
        }
        layerZeroMeasurement(f);
        try (CudaBackend gpu = gpu(Precision.TF32)) {
            PerplexityEval.Result self = new PerplexityEval(gpu, s -> { }).evaluate(f.weights(), f.weights(),
                    f.tokens());
            expect(Math.abs(self.meanKlDivergence()) < 1e-6 && self.top1Agreement() == 1.0, "tiny eval vs itself",
                    String.format(Locale.ROOT, "mean KL %.2e, top-1 agreement %.4f (%.2f s)", self.meanKlDivergence(),
                            self.top1Agreement(), self.seconds()));
        }
    }

    /**
     * Layer 0's measurement (EXL2-SPEC D: Hessians, GPTQ of every candidate setting on the host, candidate forwards)
     * with the forwards and Hessians on each backend, over 4 × 2048 held-out tokens; both blocks get the same input
     * states (computed on the CPU), so differences come from the block's own computation.
     */
    private void layerZeroMeasurement(ForwardFixture.Contents f) throws Exception {
        ModelArchitecture arch = f.architecture();
        int rows = 4;
        int[][] tokens = f.tokens().rows(0, rows);
        int length = tokens[0].length;
        Transformer cpuModel = new Transformer(arch, cpu);
        HiddenStates embedded;
        try (Tensor h = cpuModel.embed(f.weights(), tokens)) {
            embedded = new HiddenStates(cpu.download(h), rows, length, arch.hiddenSize());
        }
        LayerSpec layer = arch.layer(0);
        HiddenStates mlpInput;
        try (Transformer.BlockWeights attention = cpuModel.loadBlock(f.weights(), layer.attention())) {
            mlpInput = new BlockRunner(cpuModel, rows).forward(embedded, attention, LinearInputObserver.NONE);
        }
        List<List<BlockCandidate>> reference = null;
        for (Precision p : new Precision[] {null, Precision.TF32X3, Precision.TF32}) {
            try (Backend be = p == null ? new CpuBackend() : gpu(p)) {
                long t0 = System.nanoTime();
                BlockMeasurement m = new BlockMeasurement(new BlockRunner(new Transformer(arch, be), 2));
                List<List<BlockCandidate>> measured = List.of(m.measure(f.weights(), layer.attention(), embedded),
                        m.measure(f.weights(), layer.mlp(), mlpInput));
                double seconds = (System.nanoTime() - t0) / 1e9;
                if (p == null) {
                    reference = measured;
                    report.perf(String.format(Locale.ROOT, "layer 0 measurement on CPU: %d + %d candidates, %.1f s",
                            measured.get(0).size(), measured.get(1).size(), seconds));
                    continue;
                }
                double worst = 0;
                int pairs = 0;
                int reordered = 0;
                for (int b = 0; b < 2; b++) {
                    List<BlockCandidate> cpuBlock = reference.get(b);
                    List<BlockCandidate> gpuBlock = measured.get(b);
                    for (int c = 0; c < gpuBlock.size(); c++) {
                        double ref = 1 - cpuBlock.get(c).accuracy();
                        worst = Math.max(worst, Math.abs(1 - gpuBlock.get(c).accuracy() - ref) / ref);
                        for (int d = 0; d < c; d++) {
                            pairs++;
                            boolean cpuOrder = cpuBlock.get(c).accuracy() < cpuBlock.get(d).accuracy();
                            boolean gpuOrder = gpuBlock.get(c).accuracy() < gpuBlock.get(d).accuracy();
                            reordered += cpuOrder != gpuOrder ? 1 : 0;
                        }
                    }
                }
                String detail = String.format(Locale.ROOT, "layer 0, linears %s: candidate errors within %.2e"
                        + " (relative) of the CPU's, %d of %d candidate pairs ordered differently; %.1f s", p, worst,
                        reordered, pairs, seconds);
                if (p == Precision.TF32X3) {
                    // the planner's smaller splits: scoring passes of the few weights held, states on the device or
                    // uploaded per pass; the same operations on the same data, so the same numbers
                    List<BlockCandidate> resident = m.measure(f.weights(), layer.mlp(), mlpInput, 3, true);
                    List<BlockCandidate> uploaded = m.measure(f.weights(), layer.mlp(), mlpInput, 5, false);
                    double apart = 0;
                    for (int c = 0; c < resident.size(); c++) {
                        double all = measured.get(1).get(c).accuracy();
                        apart = Math.max(apart, Math.max(Math.abs(resident.get(c).accuracy() - all),
                                Math.abs(uploaded.get(c).accuracy() - all)));
                    }
                    expect(apart == 0, "tiny MLP measurement in scoring passes", String.format(Locale.ROOT,
                            "3 weights held with resident states, 5 with uploads: accuracies at most %.1e from all"
                                    + " held at once", apart));
                    // what the pipeline's GPU tasks run. GPTQ's rounding decisions follow fp32-level differences of the
                    // Hessian, so errors differ by a few 1e-3 (BENCHMARKS.md); the bound is for gross faults
                    expect(worst < 1e-2, "tiny measurement", detail);
                } else {
                    report.perf("tiny measurement, " + detail);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // helpers

    /** Seeded Gaussian values; big arrays are drawn in parallel chunks, each from its own split of the generator. */
    private float[] gaussian(long n, double scale) {
        float[] x = new float[Math.toIntExact(n)];
        int chunk = 1 << 20;
        int chunks = (x.length + chunk - 1) / chunk;
        SplittableRandom[] streams = new SplittableRandom[chunks];
        for (int c = 0; c < chunks; c++) {
            streams[c] = random.split();
        }
        IntStream.range(0, chunks).parallel().forEach(c -> {
            SplittableRandom r = streams[c];
            for (int i = c * chunk, end = Math.min(x.length, i + chunk); i < end; i++) {
                x[i] = (float) (scale * r.nextGaussian());
            }
        });
        return x;
    }

    /** cos and sin of position·frequency as {@link Transformer} computes them (base 10000). */
    private static float[][] ropeTables(int positions, int headDim) {
        int half = headDim / 2;
        float[] cos = new float[positions * half];
        float[] sin = new float[positions * half];
        for (int p = 0; p < positions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * (float) Math.pow(10000, -2.0 * i / headDim);
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }

    /** max |got − ref| over max |ref|: the error on the scale of the result (0 only when bit for bit). */
    static double scaledErr(float[] got, float[] ref) {
        if (got.length != ref.length) {
            return Double.POSITIVE_INFINITY;
        }
        double maxDiff = 0;
        double maxRef = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs((double) got[i] - ref[i]);
            if (Double.isNaN(d)) {
                return Double.POSITIVE_INFINITY;
            }
            maxDiff = Math.max(maxDiff, d);
            maxRef = Math.max(maxRef, Math.abs(ref[i]));
        }
        return maxDiff == 0 ? 0 : maxDiff / Math.max(maxRef, Double.MIN_NORMAL);
    }

}
