package org.exl2spark.gpu;

import dev.ludovic.netlib.blas.BLAS;
import dev.ludovic.netlib.lapack.LAPACK;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.CodePacking;
import org.exl2spark.backend.CpuGptq;
import org.exl2spark.backend.CudaGptq;
import org.exl2spark.backend.Tensor;
import org.exl2spark.io.Half;
import org.exl2spark.kernels.Bytes;
import org.exl2spark.kernels.CholeskyKernels;
import org.exl2spark.kernels.CudaRuntime;
import org.exl2spark.kernels.CudaStatus;
import org.exl2spark.kernels.DenseKernels;
import org.exl2spark.kernels.DenseKernels.GemmOption;
import org.exl2spark.kernels.DeviceBuffer;
import org.exl2spark.kernels.DeviceMatrix;
import org.exl2spark.kernels.DeviceMemory;
import org.exl2spark.kernels.DeviceMemoryException;
import org.exl2spark.kernels.ForwardKernels;
import org.exl2spark.kernels.GpuContext;
import org.exl2spark.kernels.GpuTimer;
import org.exl2spark.kernels.GptqKernels;
import org.exl2spark.kernels.HalfKernels;
import org.exl2spark.kernels.KernelImages;
import org.exl2spark.kernels.TensorCoreGemm;
import org.exl2spark.quant.AdaptiveGptq;
import org.exl2spark.quant.GptqResult;
import org.exl2spark.quant.QParams;
import org.netlib.util.intW;

/**
 * Runs every CUDA kernel against its CPU twin on fresh random inputs (seed printed) and prints one PASS/FAIL line per
 * check, PERF lines with device timings, and a summary; exits 1 if anything failed. Includes a 49152-wide Hessian
 * (2.4·10⁹ elements, past 32-bit indexing) accumulated from fp16 activations on the tensor cores, as tasks do, and
 * checked entry by entry against fp64 dot products, then factored into the GPTQ inverse factor and checked through
 * U·H·Uᵀ = I.
 *
 * <pre>java -cp ... org.exl2spark.gpu.GpuSelfTest [--device N] [--seed S] [--big-n 49152] [--big-rows 4096] [--no-big]
 *     [--only GROUP,GROUP]</pre>
 */
public final class GpuSelfTest {
    /** The ceilings figures are compared with: an H100 SXM's fp32 (non-tensor) rate and its measured copy rate. */
    private static final double PEAK_FP32 = 60e12;
    /** torch's bf16 tensor-core matmul as measured on the H100 (docs/BENCHMARKS.md): the 16-bit ceiling in reach. */
    private static final double PEAK_TENSOR16 = 790e12;
    private static final BLAS DBLAS = BLAS.getInstance();
    private static final LAPACK DLAPACK = LAPACK.getInstance();

    private final GpuContext ctx;
    private final DenseKernels dense;
    private final CholeskyKernels cholesky;
    private final GptqKernels gptq;
    private final HalfKernels half;
    private final long seed;
    /** Names of the check groups to run (e.g. "find_params,quantize group"), or null for all. */
    private final Set<String> only;
    /** The CPU twins of the kernels. */
    private final CpuBackend cpu = new CpuBackend();
    private final SplittableRandom random;
    private final CheckReport report = new CheckReport();
    private float[] perfBlock;

    private GpuSelfTest(GpuContext ctx, long seed, Set<String> only) {
        this.ctx = ctx;
        this.only = only;
        this.dense = new DenseKernels(ctx);
        this.cholesky = new CholeskyKernels(dense);
        this.gptq = new GptqKernels(dense);
        this.half = new HalfKernels(ctx);
        this.seed = seed;
        this.random = new SplittableRandom(seed);
    }

    @FunctionalInterface
    private interface Check {
        void run(DeviceMemory memory) throws Exception;
    }

    public static void main(String[] args) {
        int device = 0;
        long seed = System.nanoTime();
        int bigN = 49152;
        int bigRows = 4096;
        boolean big = true;
        Set<String> only = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--device" -> device = Integer.parseInt(args[++i]);
                case "--seed" -> seed = Long.parseLong(args[++i]);
                case "--big-n" -> bigN = Integer.parseInt(args[++i]);
                case "--big-rows" -> bigRows = Integer.parseInt(args[++i]);
                case "--no-big" -> big = false;
                case "--only" -> only = Set.of(args[++i].split(","));
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        System.out.println("exl2-spark GPU self-test, seed " + seed + ", Java " + Runtime.version() + ", CPU twins on "
                + CpuBackend.blasName() + " with " + Runtime.getRuntime().availableProcessors() + " cores");
        long t0 = System.nanoTime();
        CudaStatus status = CudaRuntime.status();
        System.out.printf(Locale.ROOT, "probe: %s (%.0f ms)%n", status, (System.nanoTime() - t0) / 1e6);
        if (!status.available()) {
            System.out.println("FAIL  probe: " + status.reason());
            System.exit(2);
        }
        GpuContext ctx = GpuContext.forDevice(device);
        System.out.println("device: " + ctx.device() + ", L2 " + Bytes.format(ctx.device().l2CacheBytes())
                + ", free " + Bytes.format(ctx.memoryInfo()[0]));
        GpuSelfTest t = new GpuSelfTest(ctx, seed, only);
        t.run("kernel images", t::images);
        t.run("device memory pool", t::memoryPool);
        t.run("copy bandwidth", t::copyBandwidth);
        t.run("gemm", t::gemm);
        t.run("hessian", t::hessian);
        t.run("find_params", t::findParams);
        t.run("quantize group", t::quantizeGroup);
        t.run("lazy update", t::lazyUpdate);
        t.run("pack codes", t::packCodes);
        t.run("gptq ops", t::gptqOps);
        t.run("gptq linear", t::gptqLinear);
        t.run("cholesky inverse", t::choleskyInverse);
        if (big) {
            int n = bigN;
            int rows = bigRows;
            t.run("big hessian + cholesky", m -> t.bigHessianAndCholesky(m, n, rows));
        }
        System.exit(t.report.summarize(ctx.device().name(), seed));
    }

    /** Runs one group of checks in its own memory pool, which frees everything even if the check throws. */
    private void run(String name, Check check) {
        if (only != null && !only.contains(name)) {
            return;
        }
        System.out.println("== " + name);
        long t0 = System.nanoTime();
        DeviceMemory memory = new DeviceMemory(ctx, DeviceMemory.defaultBudget(ctx));
        try {
            check.run(memory);
            ctx.synchronize();
        } catch (Throwable e) {
            fail(name, "threw " + e);
            e.printStackTrace(System.out);
        } finally {
            int live = memory.liveCount();
            try {
                memory.close();
            } catch (RuntimeException e) {
                fail(name, "freeing its device memory failed: " + e);
            }
            if (live != 0) {
                System.out.println("      (" + live + " allocation(s) freed by the pool's close)");
            }
        }
        System.out.printf(Locale.ROOT, "      %s: %.1f s wall, pool peak %s%n", name, (System.nanoTime() - t0) / 1e9,
                Bytes.format(memory.peak()));
    }

    private void expect(boolean ok, String name, String detail) {
        report.expect(ok, name, detail);
    }

    private void fail(String name, String detail) {
        report.fail(name, detail);
    }

    private void perf(String line) {
        report.perf(line);
    }

    private void perfFlops(String what, double flops, double ms) {
        double rate = flops / (ms / 1e3);
        perf(String.format(Locale.ROOT, "%s: %.3f ms, %.1f TFLOP/s = %.0f%% of %.0f TFLOP/s fp32", what, ms,
                rate / 1e12, 100 * rate / PEAK_FP32, PEAK_FP32 / 1e12));
    }

    private void perfBytes(String what, double bytes, double ms) {
        report.perfBytes(what, bytes, ms);
    }

    // ---------------------------------------------------------------------------------------------------------
    // infrastructure

    private void images(DeviceMemory memory) {
        for (String family : List.of(DenseKernels.FAMILY, CholeskyKernels.FAMILY, GptqKernels.FAMILY,
                ForwardKernels.FAMILY, TensorCoreGemm.FAMILY, HalfKernels.FAMILY)) {
            GpuContext.LoadedModule m = ctx.module(family);
            expect(m.image().kind() == KernelImages.Kind.CUBIN || ctx.device().capability().arch() > 90,
                    "image " + family, "loaded " + m.image() + " on compute " + ctx.device().capability());
            // the PTX path is what devices without a cubin take: it must JIT here too
            KernelImages.KernelImage ptx = KernelImages.load(family,
                    new KernelImages.Choice(KernelImages.Kind.PTX, KernelImages.PTX_ARCH));
            long t0 = System.nanoTime();
            CUmodule module = new CUmodule();
            JCudaDriver.cuModuleLoadData(module, ptx.data());
            JCudaDriver.cuModuleUnload(module);
            expect(true, "ptx jit " + family, String.format(Locale.ROOT, "compute_%d PTX (%d bytes) JIT-loaded in %.0f ms",
                    KernelImages.PTX_ARCH, ptx.data().length, (System.nanoTime() - t0) / 1e6));
        }
    }

    private void memoryPool(DeviceMemory unused) {
        long mib = 1L << 20;
        long freeBefore = ctx.memoryInfo()[0];
        DeviceMemory pool = new DeviceMemory(ctx, 64 * mib);
        try {
            pool.allocate("A", 40 * mib);
            String message = "";
            try {
                pool.allocate("second block B", 30 * mib);
            } catch (DeviceMemoryException e) {
                message = e.getMessage();
            }
            expect(message.contains("second block B") && message.contains(String.valueOf(30 * mib))
                    && message.contains(String.valueOf(64 * mib)) && message.contains("A "),
                    "budget refusal", "'" + message + "'");
            DeviceBuffer c = pool.allocate("C", 20 * mib);
            expect(pool.inUse() == 60 * mib && pool.peak() == 60 * mib, "budget accounting",
                    "in use " + pool.inUse() + ", peak " + pool.peak());
            pool.free(c);
            expect(pool.inUse() == 40 * mib && pool.peak() == 60 * mib, "budget release",
                    "in use " + pool.inUse() + ", peak " + pool.peak());
            pool.allocate("D", 10 * mib);
            throw new IllegalStateException("a task failing with allocations live");
        } catch (IllegalStateException expected) {
            pool.close();
        }
        long freeAfter = ctx.memoryInfo()[0];
        expect(pool.liveCount() == 0 && freeAfter >= freeBefore - 4 * mib, "close after failure frees all",
                "device free before " + Bytes.format(freeBefore) + ", after " + Bytes.format(freeAfter));
        long total = ctx.memoryInfo()[1];
        try (DeviceMemory huge = new DeviceMemory(ctx, Long.MAX_VALUE / 2)) {
            String message = "";
            try {
                huge.allocate("more than the device", total + (1L << 30));
            } catch (DeviceMemoryException e) {
                message = e.getMessage();
            }
            expect(message.contains("more than the device") && message.contains("free") && huge.inUse() == 0,
                    "device out of memory", "'" + message + "'");
        }
    }

    private void copyBandwidth(DeviceMemory memory) {
        long bytes = 4L << 30;
        DeviceBuffer a = memory.allocate("copy source", bytes);
        DeviceBuffer b = memory.allocate("copy target", bytes);
        a.fill32(0, bytes / 4, 0x3f800000);
        b.copyFromDevice(a, 0, 0, bytes);
        double ms = median(5, () -> b.copyFromDevice(a, 0, 0, bytes));
        perfBytes("device-to-device copy 4 GiB (read + write counted)", 2.0 * bytes, ms);
        memory.free(a);
        memory.free(b);

        // host arrays in and out through the pinned slab: 1 GiB plus a part slab, from and to an odd offset
        int floats = (1 << 28) + 12345;
        int offset = 7;
        float[] host = new float[floats + offset];
        // distinct mantissas in [1, 2), cheap to make for 2^28 values
        IntStream.range(0, host.length).parallel().forEach(i -> host[i] = Float.intBitsToFloat(0x3f800000
                | ((i * 0x9E3779B1) >>> 9)));
        DeviceBuffer d = memory.allocateFloats("host copy target", floats);
        d.copyFromHost(host, offset, floats, 0);
        float[] back = new float[floats + 2 * offset];
        d.copyToHost(0, back, offset, floats);
        int differ = 0;
        for (int i = 0; i < floats; i++) {
            differ += Float.floatToRawIntBits(back[offset + i]) != Float.floatToRawIntBits(host[offset + i]) ? 1 : 0;
        }
        expect(differ == 0, "host → device → host copy of " + floats + " floats from offset " + offset,
                differ + " floats differ");
        long t0 = System.nanoTime();
        d.copyFromHost(host, offset, floats, 0);
        double up = (System.nanoTime() - t0) / 1e6;
        long t1 = System.nanoTime();
        d.copyToHost(0, back, offset, floats);
        double down = (System.nanoTime() - t1) / 1e6;
        perfBytes("host-to-device copy of a Java array, 1 GiB", 4.0 * floats, up);
        perfBytes("device-to-host copy into a Java array, 1 GiB", 4.0 * floats, down);
    }

    // ---------------------------------------------------------------------------------------------------------
    // (c) and the building block of everything: GEMM

    private void gemm(DeviceMemory memory) {
        EnumSet<GemmOption> none = EnumSet.noneOf(GemmOption.class);
        gemmCase(memory, true, 333, 517, 77, 1.5f, 0.5f, none, false);
        gemmCase(memory, false, 300, 260, 129, -1f, 0f, none, false);
        gemmCase(memory, true, 389, 389, 50, 1f, 1f, EnumSet.of(GemmOption.C_UPPER_ONLY), false);
        gemmCase(memory, false, 270, 190, 270, 1f, 0f, EnumSet.of(GemmOption.A_UPPER_TRIANGULAR), false);
        gemmCase(memory, true, 270, 190, 270, 0.75f, 0f, EnumSet.of(GemmOption.A_UPPER_TRIANGULAR), false);
        gemmCase(memory, false, 150, 333, 333, 1f, 0f, EnumSet.of(GemmOption.B_UPPER_TRIANGULAR), false);
        gemmCase(memory, true, 131, 257, 33, 2f, -1f, none, true);
        gemmCase(memory, false, 129, 131, 300, 1f, 1f, EnumSet.of(GemmOption.C_UPPER_ONLY), true);
        gemmCase(memory, false, 1, 1, 1, 1f, 0f, none, false);
        gemmCase(memory, true, 64, 80, 0, 1f, 0.5f, none, false);

        int n = 8192;
        DeviceMatrix a = memory.matrix("perf A", n, n);
        DeviceMatrix b = memory.matrix("perf B", n, n);
        DeviceMatrix c = memory.matrix("perf C", n, n);
        fillRandom(a);
        fillRandom(b);
        double flops = 2.0 * n * n * n;
        perfFlops("gemm TN 8192³", flops, median(3, () -> dense.gemm(a, true, b, c, 1f, 0f)));
        perfFlops("gemm NN 8192³", flops, median(3, () -> dense.gemm(a, false, b, c, 1f, 0f)));
    }

    /**
     * C = beta·C + alpha·op(A)·B on random data against an fp64 BLAS reference. Elements a triangular option says are
     * not read are NaN on the device, so reading them shows; with C_UPPER_ONLY the lower triangle must keep its
     * sentinel; with beta = 0 C starts as NaN. {@code views} puts every operand at an odd offset with padded rows.
     */
    private void gemmCase(DeviceMemory memory, boolean transA, int m, int n, int k, float alpha, float beta,
            EnumSet<GemmOption> options, boolean views) {
        boolean triA = options.contains(GemmOption.A_UPPER_TRIANGULAR);
        boolean triB = options.contains(GemmOption.B_UPPER_TRIANGULAR);
        boolean upperC = options.contains(GemmOption.C_UPPER_ONLY);
        int aRows = transA ? k : m;
        int aCols = transA ? m : k;
        float[] a = gaussian(aRows * aCols, 1f);
        float[] b = gaussian(k * n, 1f);
        float[] c = gaussian(m * n, 1f);
        double[] aRef = toDouble(a);
        double[] bRef = toDouble(b);
        float[] aDev = a.clone();
        float[] bDev = b.clone();
        for (int r = 0; r < aRows; r++) {
            for (int q = 0; q < aCols; q++) {
                int mm = transA ? q : r;
                int kk = transA ? r : q;
                if (triA && kk < mm) {
                    aRef[r * aCols + q] = 0;
                    aDev[r * aCols + q] = Float.NaN;
                }
            }
        }
        for (int kk = 0; kk < k; kk++) {
            for (int nn = 0; nn < n; nn++) {
                if (triB && kk > nn) {
                    bRef[kk * n + nn] = 0;
                    bDev[kk * n + nn] = Float.NaN;
                }
            }
        }
        final float sentinel = 7.25f;
        float[] cDev = c.clone();
        for (int r = 0; r < m; r++) {
            for (int q = 0; q < n; q++) {
                if (upperC && q < r) {
                    cDev[r * n + q] = sentinel;
                } else if (beta == 0f) {
                    cDev[r * n + q] = Float.NaN;
                }
            }
        }
        double[] ref = new double[m * n];
        if (k == 0) {
            for (int i = 0; i < ref.length; i++) {
                ref[i] = beta * (double) c[i];
            }
        } else {
            if (beta != 0f) {
                ref = toDouble(c);
            }
            DBLAS.dgemm("N", transA ? "T" : "N", n, m, k, alpha, bRef, 0, n, aRef, 0, aCols, beta, ref, 0, n);
        }
        DeviceMatrix da = place(memory, "A", aRows, aCols, aDev, views);
        DeviceMatrix db = place(memory, "B", k, n, bDev, views);
        DeviceMatrix dc = place(memory, "C", m, n, cDev, views);
        dense.gemm(da, transA, db, dc, alpha, beta, options);
        float[] got = new float[m * n];
        dc.download(0, m, got, 0);
        double num = 0;
        double den = 0;
        int untouched = 0;
        int badLower = 0;
        for (int r = 0; r < m; r++) {
            for (int q = 0; q < n; q++) {
                int i = r * n + q;
                if (upperC && q < r) {
                    if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(sentinel)) {
                        badLower++;
                    }
                    continue;
                }
                if (!Float.isFinite(got[i])) {
                    untouched++;
                }
                num += (got[i] - ref[i]) * (got[i] - ref[i]);
                den += ref[i] * ref[i];
            }
        }
        double err = den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
        String name = String.format(Locale.ROOT, "gemm %s %d×%d×%d α=%s β=%s %s%s", transA ? "TN" : "NN", m, n, k,
                alpha, beta, options.isEmpty() ? "" : options.toString(), views ? " (unaligned views)" : "");
        expect(err <= 1e-5 && untouched == 0 && badLower == 0, name, String.format(Locale.ROOT,
                "rel err %.2e vs fp64 (tol 1e-5), non-finite %d, lower triangle overwritten %d", err, untouched,
                badLower));
        for (DeviceMatrix d : List.of(da, db, dc)) {
            memory.free(d.buffer());
        }
    }

    /** A device matrix holding {@code data}; with {@code view}, at an odd offset with padded rows. */
    private static DeviceMatrix place(DeviceMemory memory, String what, int rows, int cols, float[] data, boolean view) {
        long offset = view ? 1 : 0;
        long ld = view ? cols + 3 : Math.max(1, cols);
        long floats = offset + (long) Math.max(rows, 1) * ld + 4;
        DeviceBuffer buf = memory.allocateFloats(what, floats);
        buf.fill32(0, floats, Float.floatToRawIntBits(Float.NaN));
        DeviceMatrix d = new DeviceMatrix(buf, offset, rows, cols, ld);
        if (rows > 0 && cols > 0) {
            d.upload(0, rows, data, 0);
        }
        return d;
    }

    // ---------------------------------------------------------------------------------------------------------
    // (a) Hessian accumulation

    private void hessian(DeviceMemory memory) {
        int n = 3000;
        int chunk = 512;
        int batches = 3;
        float[] x = gaussian(batches * chunk * n, 1f);
        DeviceMatrix h = memory.matrix("H", n, n);
        DeviceMatrix xs = memory.matrix("X chunk", chunk, n);
        h.buffer().zero();
        for (int b = 0; b < batches; b++) {
            xs.upload(0, chunk, x, b * chunk * n);
            dense.accumulateGram(xs, h);
        }
        dense.symmetrize(h, batches);
        float[] got = h.download();
        float[] cpu = cpuHessian(x, batches * chunk, n, batches);
        double[] ref = new double[n * n];
        DBLAS.dgemm("N", "T", n, n, batches * chunk, 1.0 / batches, toDouble(x), 0, n, toDouble(x), 0, n, 0, ref, 0, n);
        double errGpu = relErr(got, ref);
        double errCpu = relErr(cpu, ref);
        int asymmetric = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i + 1; j < n; j++) {
                if (Float.floatToRawIntBits(got[i * n + j]) != Float.floatToRawIntBits(got[j * n + i])) {
                    asymmetric++;
                }
            }
        }
        expect(errGpu <= Math.max(8 * errCpu, 2e-6) && asymmetric == 0, "hessian n=3000 from 3×512 rows",
                String.format(Locale.ROOT, "rel err GPU %.2e, CPU twin (Hessian) %.2e vs fp64; GPU vs twin %.2e;"
                        + " asymmetric %d", errGpu, errCpu, relErr(got, toDouble(cpu)), asymmetric));
        memory.free(h.buffer());
        memory.free(xs.buffer());

        int pn = 8192;
        int rows = 8192;
        DeviceMatrix ph = memory.matrix("perf H", pn, pn);
        DeviceMatrix px = memory.matrix("perf X", rows, pn);
        fillRandom(px);
        ph.buffer().zero();
        perfFlops("hessian accumulate n=8192 rows=8192 (upper half, n(n+1)·rows flops)", (double) pn * (pn + 1) * rows,
                median(3, () -> dense.accumulateGram(px, ph)));
        perfBytes("hessian symmetrize n=8192", 2.0 * pn * pn * 4, median(3, () -> dense.symmetrize(ph, 1f)));
        memory.free(ph.buffer());
        memory.free(px.buffer());
        halfGram(memory);
        // the quantization pass's shapes: a chunk of 2 × 2048 tokens into down_proj's Hessian, 4 × 2048 into q/k/v's
        for (int[] shape : new int[][] {{8192, 8192}, {8192, 4096}, {49152, 4096}}) {
            int gn = shape[0];
            int tokens = shape[1];
            DeviceMatrix gh = memory.matrix("perf H", gn, gn);
            DeviceMatrix gx = memory.matrix("perf X", tokens, gn);
            fillRandom(gx);
            gh.buffer().zero();
            DeviceBuffer operand = memory.allocate("perf fp16 operand", HalfKernels.operandBytes(tokens, gn));
            for (HalfKernels.GramVariant v : List.of(HalfKernels.GramVariant.K32, HalfKernels.GramVariant.K64)) {
                HalfKernels kernels = new HalfKernels(ctx, v);
                perfTensor16("hessian accumulate, fp16 tensor cores (" + v + "), n=" + gn + " rows=" + tokens
                        + " (operand rounding included)", (double) gn * (gn + 1) * tokens,
                        median(3, () -> kernels.accumulateGram(gx, operand, gh)));
            }
            memory.free(operand);
            memory.free(gh.buffer());
            memory.free(gx.buffer());
        }
    }

    private void perfTensor16(String what, double flops, double ms) {
        double rate = flops / (ms / 1e3);
        perf(String.format(Locale.ROOT, "%s: %.3f ms, %.1f TFLOP/s = %.0f%% of %.0f TFLOP/s (16-bit tensor cores)",
                what, ms, rate / 1e12, 100 * rate / PEAK_TENSOR16, PEAK_TENSOR16 / 1e12));
    }

    /**
     * The fp16 Gram (HalfKernels) against fp64 sums of the rounded values, beside its CPU twin's error
     * ({@code Backend.accumulateHalfGram}'s default: round to fp16, fp32 Gram): two chunks onto a zero upper triangle
     * whose strict lower triangle holds a marker that must survive. The bound is the 49152-wide check's. Shapes cross the 128 × 256 tiles, the 16-group of row tiles, the 32-token k
     * step and the 8-column padding; one x is a view with an unaligned row stride, one has values past fp16's range.
     */
    private void halfGram(DeviceMemory memory) {
        int[][] shapes = {{1, 1}, {31, 7}, {33, 129}, {100, 300}, {517, 1000}, {64, 2056}, {40, 4100}};
        float marker = 12345f;
        for (int[] s : shapes) {
            int rows = s[0];
            int n = s[1];
            boolean view = n == 300;
            boolean outOfRange = n == 129;
            float[] x1 = gaussian(rows * n, 1f);
            float[] x2 = gaussian(rows * n, 1f);
            if (outOfRange) {
                x1[0] = 70000f;
                x2[n + 1] = -1e6f;
            }
            float[] start = new float[n * n];
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < i; j++) {
                    start[i * n + j] = marker;
                }
            }
            DeviceMatrix g = memory.matrix("half gram", n, n);
            g.upload(start);
            DeviceBuffer operand = memory.allocate("fp16 operand", HalfKernels.operandBytes(rows, n));
            for (float[] x : List.of(x1, x2)) {
                DeviceMatrix dx = place(memory, "half gram x", rows, n, x, view);
                half.accumulateGram(dx, operand, g);
                memory.free(dx.buffer());
            }
            float[] got = g.download();
            memory.free(g.buffer());
            memory.free(operand);

            Tensor tg = cpu.zeros(n, n);
            cpu.accumulateHalfGram(cpu.upload(x1.clone(), rows, n), tg);
            cpu.accumulateHalfGram(cpu.upload(x2.clone(), rows, n), tg);
            float[] twin = cpu.download(tg);
            double[] ref = new double[n * n];
            for (float[] x : List.of(x1, x2)) {
                double[] h = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    h[i] = Half.toFloat(Half.fromFloat(Math.max(-65504f, Math.min(65504f, x[i]))));
                }
                DBLAS.dgemm("N", "T", n, n, rows, 1.0, h, 0, n, h, 0, n, 1.0, ref, 0, n);
            }
            double errGpu = 0;
            double errTwin = 0;
            int lowerChanged = 0;
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < n; j++) {
                    if (j < i) {
                        lowerChanged += got[i * n + j] != marker ? 1 : 0;
                        continue;
                    }
                    double scale = Math.sqrt(ref[i * n + i] * ref[j * n + j]);
                    errGpu = Math.max(errGpu, nanInf(Math.abs(got[i * n + j] - ref[i * n + j]) / scale));
                    errTwin = Math.max(errTwin, nanInf(Math.abs(twin[i * n + j] - ref[i * n + j]) / scale));
                }
            }
            expect(errGpu < 1e-5 && lowerChanged == 0,
                    "fp16 gram " + rows + "×" + n + (view ? " (strided view)" : "") + (outOfRange ? " (clamped)" : ""),
                    String.format(Locale.ROOT, "2 chunks, upper triangle vs fp64 of the fp16 values: max |err|/sqrt(Hii·Hjj)"
                            + " GPU %.2e, CPU twin %.2e; strict lower changed %d", errGpu, errTwin, lowerChanged));
        }
    }

    private static double nanInf(double e) {
        return Double.isNaN(e) ? Double.POSITIVE_INFINITY : e;
    }

    // ---------------------------------------------------------------------------------------------------------
    // (b) find_params and the group quantization

    private void findParams(DeviceMemory memory) {
        int cols = 4100;
        int maxRows = 256;
        DeviceMatrix w = memory.matrix("W", maxRows, cols);
        int[] bitsList = {2, 3, 4, 5, 6, 8};
        int[] groups = {32, 64, 128, 256};
        String[] kinds = {"gaussian", "heavy-tailed", "zero column", "tiny (fp16 subnormal scales)",
            "all zero (every grid point ties)"};
        int cases = 0;
        int exact = 0;
        int exactPoints = 0;
        List<String> mismatches = new ArrayList<>();
        try (GptqKernels.Workspace ws = new GptqKernels.Workspace(memory, cols, maxRows)) {
            for (int kind = 0; kind < kinds.length; kind++) {
                for (int bi = 0; bi < bitsList.length; bi++) {
                    int bits = bitsList[bi];
                    int g = groups[(bi + kind) % groups.length];
                    int a = (kind == 1 && g <= 128) ? 64 : 0;
                    float[] host = weights(maxRows, cols, kind);
                    w.upload(host);
                    gptq.findParams(w, a, a + g, bits, ws);
                    GptqKernels.GroupScales got = ws.read();
                    exactPoints += ws.exactPoints();
                    CpuGptq.ScaleSearch twin = CpuGptq.findParams(host, a, a + g, cols, bits);
                    int scaleDiff = 0;
                    int codeDiff = 0;
                    for (int n = 0; n < cols; n++) {
                        scaleDiff += Float.floatToRawIntBits(got.scale()[n]) != Float.floatToRawIntBits(twin.scale()[n])
                                ? 1 : 0;
                        codeDiff += got.codes()[n] != twin.codes()[n] ? 1 : 0;
                    }
                    cases++;
                    if (scaleDiff == 0 && codeDiff == 0 && got.maxHalf() == twin.maxHalf()) {
                        exact++;
                    } else {
                        mismatches.add(String.format(Locale.ROOT, "%s bits=%d rows [%d,%d): scales %d, codes %d,"
                                        + " max %04x vs %04x, GPU grid argmin %d", kinds[kind], bits, a, a + g, scaleDiff,
                                codeDiff, got.maxHalf(), twin.maxHalf(), argmin(got.gridErrors())));
                    }
                }
            }
        }
        expect(exact == cases, "find_params vs CpuGptq.findParams (bit-exact)", exact + "/" + cases
                + " groups identical (scales, codes, q_scale_max) over bits 2..8, groups 32..256, 4100 columns; "
                + exactPoints + " of " + cases * GptqKernels.GRID_POINTS + " grid points evaluated exactly"
                + (mismatches.isEmpty() ? "" : "; " + mismatches));
        memory.free(w.buffer());

        int pcols = 14336;
        DeviceMatrix pw = memory.matrix("perf W", 128, pcols);
        fillRandom(pw);
        try (GptqKernels.Workspace ws = new GptqKernels.Workspace(memory, pcols, 128)) {
            double ms = median(5, () -> gptq.findParams(pw, 0, 128, 4, ws));
            perf(String.format(Locale.ROOT, "find_params group 128×14336 4-bit: %.3f ms (97-point grid, %.1f G"
                    + " element-evaluations/s counting 97 per weight; %d points exact)", ms,
                    97.0 * 128 * pcols / (ms / 1e3) / 1e9, ws.exactPoints()));
        }
    }

    private void quantizeGroup(DeviceMemory memory) {
        // groups of 1 to 200 rows, starting on and off a multiple of the kernel's 32-row sub-blocks
        quantizeGroupCases(memory, 384, 1000,
                new int[][] {{4, 0, 128}, {2, 128, 256}, {8, 256, 384}, {3, 100, 164}, {6, 383, 384}, {5, 37, 237}});
        // from 16384 columns on the kernel runs 64 columns per block: here with a partial last block
        quantizeGroupCases(memory, 160, 16411, new int[][] {{4, 0, 128}, {3, 7, 160}});

        // a GPTQ-like U and weight, so the errors fed forward stay finite (random ones overflow into the slow
        // paths of the divisions)
        int prow = 256;
        int pcols = 14336;
        DeviceMatrix pw = memory.matrix("perf W", prow, pcols);
        DeviceMatrix pu = memory.matrix("perf U", prow, prow);
        DeviceMatrix pd = memory.matrix("perf dequant", prow, pcols);
        DeviceMatrix pe = memory.matrix("perf E", 128, pcols);
        DeviceBuffer pc = memory.allocate("perf codes", (long) prow * pcols);
        DeviceBuffer ps = memory.allocateFloats("perf scales", pcols);
        float[] perfW = gaussian(prow * pcols, 0.05f);
        pw.upload(perfW);
        pu.upload(inverseFactor(prow, 2 * prow, 0.12f));
        ps.copyFromHost(CpuGptq.findParams(perfW, 0, 128, pcols, 4).scale(), 0, pcols, 0);
        double ms = median(3, () -> gptq.quantizeGroup(pw, pu, 0, 128, 4, ps, pc, pd, pe));
        perf(String.format(Locale.ROOT, "quantize group 128 rows × 14336 cols: %.3f ms", ms));
    }

    /** Cases {bits, a, b} of gptq_quantize_group on a rows × cols work matrix against CpuGptq.quantizeGroup. */
    private void quantizeGroupCases(DeviceMemory memory, int rows, int cols, int[][] cases) {
        int maxGroup = Arrays.stream(cases).mapToInt(c -> c[2] - c[1]).max().orElse(1);
        float[] u = inverseFactor(rows, rows, 0.12f);
        float[] w0 = gaussian(rows * cols, 0.05f);
        DeviceMatrix w = memory.matrix("W", rows, cols);
        DeviceMatrix du = memory.matrix("U", rows, rows);
        DeviceMatrix deq = memory.matrix("dequant", rows, cols);
        DeviceMatrix err = memory.matrix("E", maxGroup, cols);
        DeviceBuffer codes = memory.allocate("codes", (long) rows * cols);
        DeviceBuffer scale = memory.allocateFloats("scales", cols);
        w.upload(w0);
        du.upload(u);
        for (int[] cs : cases) {
            int bits = cs[0];
            int a = cs[1];
            int b = cs[2];
            float[] wc = w0.clone();
            CpuGptq.ScaleSearch s = CpuGptq.findParams(wc, a, b, cols, bits);
            byte[][] codesCpu = new byte[rows][cols];
            float[] deqCpu = new float[rows * cols];
            float[] errCpu = new float[(b - a) * cols];
            CpuGptq.quantizeGroup(wc, rows, cols, u, a, b, bits, s.scale(), codesCpu, deqCpu, errCpu);
            scale.copyFromHost(s.scale(), 0, cols, 0);
            deq.buffer().fill32(0, (long) rows * cols, Float.floatToRawIntBits(Float.NaN));
            gptq.quantizeGroup(w, du, a, b, bits, scale, codes, deq, err);
            byte[] codesGpu = new byte[(b - a) * cols];
            codes.copyToHost((long) a * cols, codesGpu, 0, codesGpu.length);
            float[] deqGpu = new float[(b - a) * cols];
            deq.download(a, b - a, deqGpu, 0);
            float[] errGpu = new float[(b - a) * cols];
            err.download(0, b - a, errGpu, 0);
            int codeDiff = 0;
            int deqDiff = 0;
            int errDiff = 0;
            for (int i = 0; i < (b - a) * cols; i++) {
                codeDiff += codesGpu[i] != codesCpu[a + i / cols][i % cols] ? 1 : 0;
                deqDiff += Float.floatToRawIntBits(deqGpu[i]) != Float.floatToRawIntBits(deqCpu[a * cols + i]) ? 1 : 0;
                errDiff += Float.floatToRawIntBits(errGpu[i]) != Float.floatToRawIntBits(errCpu[i]) ? 1 : 0;
            }
            expect(codeDiff + deqDiff + errDiff == 0,
                    "quantize group bits=" + bits + " rows [" + a + "," + b + ") × " + cols,
                    "differing from CpuGptq.quantizeGroup bit for bit: codes " + codeDiff + ", dequant " + deqDiff
                            + ", errors " + errDiff + " of " + (b - a) * cols);
        }
        for (DeviceBuffer d : List.of(w.buffer(), du.buffer(), deq.buffer(), err.buffer(), codes, scale)) {
            memory.free(d);
        }
    }

    private void lazyUpdate(DeviceMemory memory) {
        int rows = 384;
        int cols = 1000;
        int a = 128;
        int b = 192;
        float[] u = inverseFactor(rows, rows, 0.12f);
        float[] w0 = gaussian(rows * cols, 0.05f);
        float[] e = gaussian((b - a) * cols, 0.01f);
        DeviceMatrix w = memory.matrix("W", rows, cols);
        DeviceMatrix du = memory.matrix("U", rows, rows);
        DeviceMatrix de = memory.matrix("E", b - a, cols);
        w.upload(w0);
        du.upload(u);
        de.upload(e);
        gptq.lazyUpdate(w, du, a, b, de);
        float[] got = w.download();
        float[] cpu = w0.clone();
        float[] uPanel = new float[(b - a) * (rows - b)];
        for (int r = a; r < b; r++) {
            System.arraycopy(u, r * rows + b, uPanel, (r - a) * (rows - b), rows - b);
        }
        float[] cpuTail = Arrays.copyOfRange(cpu, b * cols, rows * cols);
        this.cpu.matmul(this.cpu.upload(uPanel, b - a, rows - b), true, this.cpu.upload(e.clone(), b - a, cols), false,
                this.cpu.upload(cpuTail, rows - b, cols), -1f, 1f);
        System.arraycopy(cpuTail, 0, cpu, b * cols, cpuTail.length);
        double[] ref = toDouble(w0);
        DBLAS.dgemm("N", "T", cols, rows - b, b - a, -1.0, toDouble(e), 0, cols, toDouble(u), a * rows + b, rows, 1.0,
                ref, b * cols, cols);
        int headChanged = 0;
        for (int i = 0; i < b * cols; i++) {
            headChanged += Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(w0[i]) ? 1 : 0;
        }
        float[] gotTail = Arrays.copyOfRange(got, b * cols, rows * cols);
        double[] refTail = Arrays.copyOfRange(ref, b * cols, rows * cols);
        double[] deltaRef = new double[refTail.length];
        double[] deltaGot = new double[refTail.length];
        for (int i = 0; i < refTail.length; i++) {
            deltaRef[i] = refTail[i] - w0[b * cols + i];
            deltaGot[i] = gotTail[i] - (double) w0[b * cols + i];
        }
        double errGpu = relErr(gotTail, refTail);
        double errCpu = relErr(Arrays.copyOfRange(cpu, b * cols, rows * cols), refTail);
        double deltaErr = relErr(deltaGot, deltaRef);
        expect(headChanged == 0 && errGpu <= Math.max(8 * errCpu, 2e-6) && deltaErr < 1e-4,
                "lazy update W[b:] -= U[a:b,b:]ᵀ·E (rows 384, cols 1000, group [128,192))", String.format(Locale.ROOT,
                        "rel err GPU %.2e, CPU twin %.2e vs fp64; update term rel err %.2e; rows before b changed %d",
                        errGpu, errCpu, deltaErr, headChanged));
        // a lazy block's flush: rows from 256 on get the errors of rows [a, b), rows [b, 256) are left alone
        int from = 256;
        w.upload(w0);
        gptq.lazyUpdate(w, du, a, b, from, rows, de);
        float[] flushed = w.download();
        int untouched = 0;
        for (int i = 0; i < from * cols; i++) {
            untouched += Float.floatToRawIntBits(flushed[i]) != Float.floatToRawIntBits(w0[i]) ? 1 : 0;
        }
        double errFlush = relErr(Arrays.copyOfRange(flushed, from * cols, rows * cols),
                Arrays.copyOfRange(ref, from * cols, rows * cols));
        double errCpuFrom = relErr(Arrays.copyOfRange(cpu, from * cols, rows * cols),
                Arrays.copyOfRange(ref, from * cols, rows * cols));
        expect(untouched == 0 && errFlush <= Math.max(8 * errCpuFrom, 2e-6),
                "lazy update of rows [256, 384) only: W[256:] -= U[a:b,256:]ᵀ·E (rows 384, cols 1000)",
                String.format(Locale.ROOT, "rel err GPU %.2e, CPU twin %.2e vs fp64; rows before 256 changed %d",
                        errFlush, errCpuFrom, untouched));
        for (DeviceBuffer d : List.of(w.buffer(), du.buffer(), de.buffer())) {
            memory.free(d);
        }

        int prow = 14336;
        int pcols = 4096;
        DeviceMatrix pw = memory.matrix("perf W", prow, pcols);
        DeviceMatrix pu = memory.matrix("perf U", prow, prow);
        DeviceMatrix pe = memory.matrix("perf E", 128, pcols);
        fillRandom(pw);
        fillRandom(pu);
        fillRandom(pe);
        perfFlops("lazy update rows 14336 × cols 4096, group 128 (K=128)", 2.0 * (prow - 128) * pcols * 128,
                median(3, () -> gptq.lazyUpdate(pw, pu, 0, 128, pe)));
        memory.free(pe.buffer());
        // a lazy block's flush: K = 512 rows of errors into the 13824 rows after the block
        int k = 512;
        DeviceMatrix pk = memory.matrix("perf block E", k, pcols);
        fillRandom(pk);
        perfFlops("lazy update of a 512-row block (K=512), rows 14336 × cols 4096", 2.0 * (prow - k) * pcols * k,
                median(3, () -> gptq.lazyUpdate(pw, pu, 0, k, pk)));
    }

    /**
     * gptq_pack_codes against CodePacking.packGroup (the codec's packer) on random codes, word for word: every bit
     * width, groups whose bit streams end inside a word, and q-row ranges that start inside a group.
     */
    private void packCodes(DeviceMemory memory) {
        int cols = 1000;
        int[] bits = {8, 6, 5, 4, 3, 2, 3, 5};
        int[] rows = {32, 64, 7, 100, 33, 1, 128, 61};
        int height = Arrays.stream(rows).sum();
        byte[][] codes = new byte[height][cols];
        byte[] flat = new byte[height * cols];
        int[] qStart = new int[bits.length + 1];
        for (int g = 0, row = 0; g < bits.length; row += rows[g], g++) {
            for (int r = row; r < row + rows[g]; r++) {
                for (int n = 0; n < cols; n++) {
                    codes[r][n] = (byte) random.nextInt(1 << bits[g]);
                    flat[r * cols + n] = codes[r][n];
                }
            }
            qStart[g + 1] = qStart[g] + (int) CodePacking.qRows(rows[g], bits[g]);
        }
        int[][] want = new int[qStart[bits.length]][cols];
        DeviceBuffer dc = memory.allocate("codes", flat.length);
        dc.copyFromHost(flat, 0, flat.length, 0);
        DeviceBuffer out = memory.allocate("packed", 4L * want.length * cols);
        int[] got = new int[want.length * cols];
        int wordDiff = 0;
        for (boolean split : new boolean[] {false, true}) {
            out.fill32(0, (long) want.length * cols, 0xdeadbeef);
            for (int g = 0, row = 0; g < bits.length; row += rows[g], g++) {
                int q = qStart[g + 1] - qStart[g];
                if (!split) {
                    CodePacking.packGroup(codes, row, rows[g], bits[g], want, qStart[g]);
                    gptq.packCodes(dc, cols, row, rows[g], bits[g], 0, q, out, 4L * qStart[g] * cols);
                } else {
                    // the group's q-rows in two calls, the second starting inside the group's bit stream
                    int first = q / 2;
                    gptq.packCodes(dc, cols, row, rows[g], bits[g], 0, first, out, 4L * qStart[g] * cols);
                    gptq.packCodes(dc, cols, row, rows[g], bits[g], first, q - first, out,
                            4L * (qStart[g] + first) * cols);
                }
            }
            out.copyToHost(0, got, 0, got.length);
            for (int q = 0; q < want.length; q++) {
                for (int n = 0; n < cols; n++) {
                    wordDiff += got[q * cols + n] != want[q][n] ? 1 : 0;
                }
            }
        }
        expect(wordDiff == 0, "pack codes vs CodePacking.packGroup (the codec's packer)", wordDiff + " of "
                + 2 * want.length * cols + " words differ; " + bits.length + " groups of 2-8 bits, " + height
                + " rows × " + cols + ", whole groups and groups in two q-row ranges");
        memory.free(dc);
        memory.free(out);
    }

    /** The GPTQ operations CudaGptq adds over the kernels against their CpuBackend twins: copies, bit for bit. */
    private void gptqOps(DeviceMemory memory) {
        CudaGptq ops = new CudaGptq(memory);
        int n = 1000;
        float[] sym = gaussian(n * n, 1f);
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                sym[i * n + j] = sym[j * n + i];
            }
        }
        DeviceMatrix h = memory.matrix("H", n, n);
        h.upload(sym);
        ops.finishHessian(h, 3);
        float[] cpuH = sym.clone();
        cpu.finishHessian(cpu.upload(cpuH, n, n), 3);
        float[] gotH = h.download();
        expect(Arrays.equals(gotH, cpuH), "finishHessian (symmetrize ÷ rows) vs CpuBackend.finishHessian",
                mismatches(gotH, cpuH) + " elements differ");
        float[] diag = ops.diagonal(h);
        float[] cpuDiag = cpu.diagonal(cpu.upload(cpuH, n, n));
        expect(Arrays.equals(diag, cpuDiag), "diagonal (one strided copy) vs CpuBackend.diagonal",
                mismatches(diag, cpuDiag) + " elements differ");
        // a failed factorization leaves the strict lower triangle: restoreSymmetric rebuilds the matrix from it
        float[] cpuDiag2 = cpuDiag.clone();
        h.buffer().copyStridedFromHost(new float[] {-1e6f}, 500L * n + 500, 1);
        float[] cpuBad = cpuH.clone();
        cpuBad[500 * n + 500] = -1e6f;
        boolean gpuFactored = ops.upperCholeskyOfInverse(h);
        boolean cpuFactored = cpu.upperCholeskyOfInverse(cpu.upload(cpuBad, n, n));
        ops.restoreSymmetric(h, cpuDiag2);
        cpu.restoreSymmetric(cpu.upload(cpuBad, n, n), cpuDiag2);
        float[] restored = h.download();
        expect(!gpuFactored && !cpuFactored && Arrays.equals(restored, cpuH) && Arrays.equals(cpuBad, cpuH),
                "restoreSymmetric after a failed factorization (GPU and CPU)", "factored GPU " + gpuFactored + ", CPU "
                        + cpuFactored + "; GPU differs in " + mismatches(restored, cpuH) + ", CPU in "
                        + mismatches(cpuBad, cpuH));
        // the in-place permutation works in panels of 256 MiB: 9000² floats take two
        int pn = 9000;
        float[] big = gaussian(pn * pn, 1f);
        for (int i = 0; i < pn; i++) {
            for (int j = 0; j < i; j++) {
                big[i * pn + j] = big[j * pn + i];
            }
        }
        int[] perm = shuffled(pn);
        DeviceMatrix p = memory.matrix("H to permute", pn, pn);
        p.upload(big);
        GpuTimer permTimer = new GpuTimer(ctx).start();
        ops.permuteSymmetric(p, perm);
        double permMs = permTimer.stopMillis();
        permTimer.close();
        cpu.permuteSymmetric(cpu.upload(big, pn, pn), perm);
        float[] gotP = p.download();
        expect(Arrays.equals(gotP, big), "permuteSymmetric in place 9000² (2 panels) vs CpuBackend.permuteSymmetric",
                mismatches(gotP, big) + " elements differ");
        perfBytes("permuteSymmetric in place n=9000 (4 gather passes + transpose, read+write)",
                5 * 2.0 * pn * (double) pn * 4, permMs);
        memory.free(p.buffer());
        int rows = 700;
        int cols = 900;
        float[] src = gaussian(rows * cols, 1f);
        DeviceMatrix ds = memory.matrix("gather source", rows, cols);
        ds.upload(src);
        int[] colIndex = shuffled(cols);
        int[] rowIndex = shuffled(rows);
        for (boolean byColumns : new boolean[] {true, false}) {
            int[] ri = byColumns ? null : rowIndex;
            int[] ci = byColumns ? colIndex : null;
            DeviceMatrix dd = memory.matrix("gather destination", cols, rows);
            ops.gatherTransposed(ds, ri, ci, dd);
            float[] want = new float[rows * cols];
            cpu.gatherTransposed(cpu.upload(src, rows, cols), ri, ci, cpu.upload(want, cols, rows));
            float[] got = dd.download();
            expect(Arrays.equals(got, want), "gather_transposed " + (byColumns ? "(column index)" : "(row index)")
                    + " 700×900 vs CpuBackend.gatherTransposed", mismatches(got, want) + " elements differ");
            memory.free(dd.buffer());
        }
        int side = 8192;
        DeviceMatrix bh = memory.matrix("8192² source", side, side);
        DeviceMatrix bt = memory.matrix("8192² gathered", side, side);
        fillRandom(bh);
        int[] bigIndex = shuffled(side);
        perfBytes("gather_transposed 8192² (column index, read+write)", 2.0 * side * side * 4,
                median(3, () -> ops.gatherTransposed(bh, null, bigIndex, bt)));
        perfBytes("gather_transposed 8192² (row index, read+write)", 2.0 * side * side * 4,
                median(3, () -> ops.gatherTransposed(bh, bigIndex, null, bt)));
    }

    /**
     * A whole linear through AdaptiveGptq on the device (CudaGptq) against AdaptiveGptq on CpuBackend: with the CPU's
     * inverse factor uploaded the first group matches bit for bit; with the device's own factor the codes agree
     * closely and the GPTQ loss is the same within 2 %.
     */
    private void gptqLinear(DeviceMemory memory) {
        int in = 1024;
        int out = 768;
        int tokens = 2048;
        float[] x = gaussian(tokens * in, 1f);
        scaleColumns(x, tokens, in, 1.5);
        float[] hm = cpuHessian(x, tokens, in, tokens);
        // the CPU preparation works in place on what it is given: a copy, hm stays the Hessian
        AdaptiveGptq.Preparation<Tensor> prep = AdaptiveGptq.prepare(cpu, cpu.upload(hm.clone(), in, in),
                "selftest.linear");
        float[] weight = gaussian(out * in, 0.02f);
        QParams qp = new QParams(new int[] {64, 128}, new int[] {6, 4}, new double[] {0.25, 0.75}, 4);
        float[] twinHf = new float[out * in];
        GptqResult twin = AdaptiveGptq.quantize(cpu, cpu.upload(weight, out, in), prep, qp,
                cpu.upload(twinHf, out, in));
        float[] twinDequant = inOut(twinHf, out, in);
        double lossCpu = gptqLoss(weight, twinDequant, hm, in, out);

        CudaGptq ops = new CudaGptq(memory);
        DeviceMatrix dw = memory.matrix("W (HF layout)", out, in);
        dw.upload(weight);
        DeviceMatrix dq = memory.matrix("dequantized (HF layout)", out, in);
        DeviceMatrix du = memory.matrix("U from the CPU", in, in);
        du.upload(cpu.download(prep.upperInverse()));
        GptqResult shared = AdaptiveGptq.quantize(ops, dw, new AdaptiveGptq.Preparation<>(in, prep.perm(), du, ops),
                qp, dq);
        compareLinear("gptq linear 768×1024 [6,4] on the device, CPU's U", twin, shared, inOut(dq.download(), out, in),
                lossCpu, weight, hm, true);

        DeviceMatrix dh = memory.matrix("H", in, in);
        dh.upload(hm);
        try (AdaptiveGptq.Preparation<DeviceMatrix> own = AdaptiveGptq.prepare(ops, dh, "selftest.linear")) {
            boolean samePerm = Arrays.equals(own.perm(), prep.perm());
            expect(samePerm, "act order on the device vs CPU", samePerm ? "identical permutations" : "permutations differ");
            GptqResult alone = AdaptiveGptq.quantize(ops, dw, own, qp, dq);
            compareLinear("gptq linear 768×1024 [6,4] all on the device (own U)", twin, alone,
                    inOut(dq.download(), out, in), lossCpu, weight, hm, false);
        }
    }

    private void compareLinear(String name, GptqResult twin, GptqResult got, float[] gotDequant, double lossCpu,
            float[] weight, float[] hm, boolean firstGroupExact) {
        int rows = twin.rows();
        int cols = twin.columns();
        int firstGroupRows = twin.groups().get(0).rows();
        int firstGroupDiff = 0;
        int codeDiff = 0;
        int maxStep = 0;
        for (int k = 0; k < rows; k++) {
            for (int n = 0; n < cols; n++) {
                int d = Math.abs(got.code(k, n) - twin.code(k, n));
                if (d != 0) {
                    codeDiff++;
                    maxStep = Math.max(maxStep, d);
                    firstGroupDiff += k < firstGroupRows ? 1 : 0;
                }
            }
        }
        double agree = 1 - codeDiff / (double) (rows * cols);
        double lossGpu = gptqLoss(weight, gotDequant, hm, rows, cols);
        expect((!firstGroupExact || firstGroupDiff == 0) && agree >= 0.95 && Math.abs(lossGpu / lossCpu - 1) < 0.02,
                name + " vs AdaptiveGptq on CpuBackend", String.format(Locale.ROOT, "first group %d code diffs;"
                        + " codes agree %.3f%%, largest step %d; GPTQ loss tr(DᵀHD) GPU/CPU = %.5f", firstGroupDiff,
                        100 * agree, maxStep, lossGpu / lossCpu));
    }

    /** An HF-layout [out × in] weight as the logical [in × out] one. */
    private static float[] inOut(float[] hf, int out, int in) {
        float[] d = new float[in * out];
        for (int k = 0; k < in; k++) {
            for (int n = 0; n < out; n++) {
                d[k * out + n] = hf[n * in + k];
            }
        }
        return d;
    }

    private int[] shuffled(int n) {
        int[] p = IntStream.range(0, n).toArray();
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    private static int mismatches(float[] a, float[] b) {
        int d = 0;
        for (int i = 0; i < a.length; i++) {
            d += Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i]) ? 1 : 0;
        }
        return d + Math.abs(a.length - b.length);
    }

    /** tr(Dᵀ·H·D) for D = W − Q, W given as the HF weight [out × in] and Q as [in × out]. */
    private static double gptqLoss(float[] weightHf, float[] q, float[] h, int in, int out) {
        float[] d = new float[in * out];
        for (int k = 0; k < in; k++) {
            for (int n = 0; n < out; n++) {
                d[k * out + n] = weightHf[n * in + k] - q[k * out + n];
            }
        }
        float[] hd = new float[in * out];
        try (CpuBackend twin = new CpuBackend()) {
            twin.matmul(twin.upload(h, in, in), false, twin.upload(d, in, out), false, twin.upload(hd, in, out), 1f, 0f);
        }
        double loss = 0;
        for (int i = 0; i < d.length; i++) {
            loss += (double) d[i] * hd[i];
        }
        return loss;
    }

    // ---------------------------------------------------------------------------------------------------------
    // (d) Cholesky of the inverse

    private void choleskyInverse(DeviceMemory memory) {
        factorAndInverseCase(memory, 1000);
        factorAndInverseCase(memory, 777);
        choleskyCase(memory, 3001, 1500, 0.12f, 0, true);
        choleskyCase(memory, 2500, 5000, 0.01f, 1.5, true);
        choleskyCase(memory, 64, 64, 0.12f, 0, true);
        choleskyCase(memory, 1, 4, 0.12f, 0, true);
        choleskyCase(memory, 8192, 4096, 0.12f, 0, false);

        int n = 700;
        float[] bad = new float[n * n];
        for (int i = 0; i < n; i++) {
            bad[i * n + i] = i == 517 ? -1f : 1f;
        }
        DeviceMatrix h = memory.matrix("indefinite H", n, n);
        h.upload(bad);
        boolean gpuOk = cholesky.upperCholeskyOfInverse(h, memory);
        boolean cpuOk = cpuCholesky(bad.clone(), n);
        expect(!gpuOk && !cpuOk, "cholesky inverse rejects an indefinite matrix", "GPU " + gpuOk + ", CPU twin " + cpuOk);
        bad[3 * n + 3] = Float.NaN;
        bad[517 * n + 517] = 1f;
        h.upload(bad);
        gpuOk = cholesky.upperCholeskyOfInverse(h, memory);
        expect(!gpuOk, "cholesky inverse rejects NaN", "GPU returned " + gpuOk);
        memory.free(h.buffer());
    }

    /**
     * The two building blocks on their own: {@link CholeskyKernels#choleskyUpper} against LAPACK spotrf, and
     * {@link CholeskyKernels#invertUpper} against strtri, both against fp64; the lower triangle (not to be touched)
     * holds NaN on the device.
     */
    private void factorAndInverseCase(DeviceMemory memory, int n) {
        float[] p = hessianMatrix(n, n / 2, 0.12f, 0.5);
        double[] refR = toDouble(p);
        intW info = new intW(0);
        DLAPACK.dpotrf("L", n, refR, 0, n, info);
        float[] cpuR = p.clone();
        DLAPACK.spotrf("L", n, cpuR, 0, n, info);
        float[] dev = p.clone();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                dev[i * n + j] = Float.NaN;
            }
        }
        DeviceMatrix d = memory.matrix("P", n, n);
        d.upload(dev);
        long status = cholesky.choleskyUpper(d, memory);
        float[] gotR = d.download();
        double errGpu = relErrUpper(gotR, refR, n);
        double errCpu = relErrUpper(cpuR, refR, n);
        expect(status == 0 && lowerIsNaN(gotR, n) && errGpu <= Math.max(8 * errCpu, 1e-6), "cholesky factor n=" + n,
                String.format(Locale.ROOT, "rel err GPU %.2e, LAPACK spotrf %.2e vs fp64; lower triangle untouched %s",
                        errGpu, errCpu, lowerIsNaN(gotR, n)));

        float[] r = new float[n * n];
        double[] refInv = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                r[i * n + j] = j >= i ? (float) refR[i * n + j] : Float.NaN;
                refInv[i * n + j] = j >= i ? r[i * n + j] : 0;
            }
        }
        DLAPACK.dtrtri("L", "N", n, refInv, 0, n, info);
        float[] cpuInv = r.clone();
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                cpuInv[i * n + j] = 0f;
            }
        }
        DLAPACK.strtri("L", "N", n, cpuInv, 0, n, info);
        d.upload(r);
        cholesky.invertUpper(d, memory);
        float[] gotInv = d.download();
        errGpu = relErrUpper(gotInv, refInv, n);
        errCpu = relErrUpper(cpuInv, refInv, n);
        expect(lowerIsNaN(gotInv, n) && errGpu <= Math.max(8 * errCpu, 1e-6), "triangular inverse n=" + n,
                String.format(Locale.ROOT, "rel err GPU %.2e, LAPACK strtri %.2e vs fp64; lower triangle untouched %s",
                        errGpu, errCpu, lowerIsNaN(gotInv, n)));
        memory.free(d.buffer());
    }

    private static double relErrUpper(float[] got, double[] ref, int n) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++) {
                double e = got[i * n + j] - ref[i * n + j];
                num += e * e;
                den += ref[i * n + j] * ref[i * n + j];
            }
        }
        return Double.isNaN(num) ? Double.POSITIVE_INFINITY : Math.sqrt(num / den);
    }

    private static boolean lowerIsNaN(float[] m, int n) {
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                if (!Float.isNaN(m[i * n + j])) {
                    return false;
                }
            }
        }
        return true;
    }

    /**
     * U of a GPTQ-like damped Hessian H = XᵀX/t + damp·mean(diag)·I (columns of X scaled by 10^uniform(±spread)) on
     * the device, vs the CPU twin and, where affordable, an fp64 LAPACK reference.
     */
    private void choleskyCase(DeviceMemory memory, int n, int tokens, float damp, double spread, boolean fp64) {
        float[] hm = hessianMatrix(n, tokens, damp, spread);
        DeviceMatrix h = memory.matrix("H", n, n);
        h.upload(hm);
        long t0 = System.nanoTime();
        float[] cpu = hm.clone();
        boolean cpuOk = cpuCholesky(cpu, n);
        double cpuMs = (System.nanoTime() - t0) / 1e6;
        GpuTimer timer = new GpuTimer(ctx).start();
        boolean gpuOk = cholesky.upperCholeskyOfInverse(h, memory);
        double gpuMs = timer.stopMillis();
        timer.close();
        float[] got = h.download();
        int lowerNonZero = 0;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                lowerNonZero += got[i * n + j] != 0f ? 1 : 0;
            }
        }
        String name = String.format(Locale.ROOT, "cholesky inverse n=%d (t=%d, damp %.2f, spread ±%.1f decades)", n,
                tokens, damp, spread);
        if (fp64) {
            double[] ref = upperCholeskyOfInverseF64(hm, n);
            double errGpu = relErr(got, ref);
            double errCpu = relErr(cpu, ref);
            expect(gpuOk && cpuOk && lowerNonZero == 0 && errGpu <= Math.max(8 * errCpu, 1e-5), name,
                    String.format(Locale.ROOT, "rel err GPU %.2e, CPU twin %.2e vs fp64 LAPACK; GPU vs twin %.2e;"
                            + " lower nonzero %d", errGpu, errCpu, relErr(got, toDouble(cpu)), lowerNonZero));
        } else {
            double diff = relErr(got, toDouble(cpu));
            expect(gpuOk && cpuOk && lowerNonZero == 0 && diff < 1e-4, name, String.format(Locale.ROOT,
                    "GPU vs CPU twin rel diff %.2e; lower nonzero %d", diff, lowerNonZero));
            perfFlops(String.format(Locale.ROOT, "cholesky inverse n=%d (2n³/3 flops; CPU twin %.0f ms on %s)", n,
                    cpuMs, CpuBackend.blasName()), 2.0 * n * n * (double) n / 3, gpuMs);
        }
        memory.free(h.buffer());
    }

    // ---------------------------------------------------------------------------------------------------------
    // the 64-bit case: a 49152-wide Hessian and its inverse factor

    private void bigHessianAndCholesky(DeviceMemory memory, int n, int rows) {
        int chunk = 512;
        long elements = (long) n * n;
        System.out.printf(Locale.ROOT, "      H %d×%d = %d elements (%s 2^31), X %d×%d%n", n, n, elements,
                elements > Integer.MAX_VALUE ? ">" : "<=", rows, n);
        long t0 = System.nanoTime();
        float[] x = new float[Math.multiplyExact(rows, n)];
        long xSeed = random.nextLong();
        // fp16 values, as the tasks' Hessians see them: the fp64 references below sum exactly what the kernel does
        IntStream.range(0, rows).parallel().forEach(r -> {
            SplittableRandom rr = new SplittableRandom(xSeed + r);
            for (int c = 0; c < n; c++) {
                x[r * n + c] = Half.toFloat(Half.fromFloat((float) rr.nextGaussian()));
            }
        });
        System.out.printf(Locale.ROOT, "      host X generated in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        DeviceMatrix h = memory.matrix("big H", n, n);
        DeviceMatrix xs = memory.matrix("X chunk", chunk, n);
        DeviceBuffer operand = memory.allocate("X chunk fp16", HalfKernels.operandBytes(chunk, n));
        h.buffer().zero();
        int batches = rows / chunk;
        double accMs = 0;
        try (GpuTimer timer = new GpuTimer(ctx)) {
            for (int b = 0; b < batches; b++) {
                xs.upload(0, chunk, x, b * chunk * n);
                timer.start();
                half.accumulateGram(xs, operand, h);
                accMs += timer.stopMillis();
            }
            timer.start();
            dense.symmetrize(h, batches);
            perfBytes("symmetrize n=" + n, 2.0 * elements * 4, timer.stopMillis());
        }
        perfTensor16("hessian accumulate, fp16 tensor cores, n=" + n + " from " + rows + " rows in chunks of " + chunk
                + " (operand rounding included)", (double) n * (n + 1) * rows, accMs);

        // whole rows (upper and mirrored lower parts, flat offsets past 2^31) and scattered entries vs fp64 dots
        int[] sampleRows = {0, 1, 12345, 43690, 43691, n - 2, n - 1};
        double worst = 0;
        int checked = 0;
        double[] diag = new double[n];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < n; c++) {
                diag[c] += (double) x[r * n + c] * x[r * n + c];
            }
        }
        for (int c = 0; c < n; c++) {
            diag[c] /= batches;
        }
        float[] row = new float[n];
        for (int i : sampleRows) {
            if (i >= n) {
                continue;
            }
            h.download(i, 1, row, 0);
            double[] ref = new double[n];
            for (int r = 0; r < rows; r++) {
                double xi = x[r * n + i];
                int off = r * n;
                for (int c = 0; c < n; c++) {
                    ref[c] += xi * x[off + c];
                }
            }
            for (int c = 0; c < n; c++) {
                double e = Math.abs(row[c] - ref[c] / batches) / Math.sqrt(diag[i] * diag[c]);
                worst = Math.max(worst, Double.isNaN(e) ? Double.POSITIVE_INFINITY : e);
                checked++;
            }
        }
        float[] one = new float[1];
        for (int s = 0; s < 2000; s++) {
            int i = random.nextInt(n);
            int j = random.nextInt(n);
            h.buffer().copyToHost((long) i * n + j, one, 0, 1);
            double ref = 0;
            for (int r = 0; r < rows; r++) {
                ref += (double) x[r * n + i] * x[r * n + j];
            }
            double e = Math.abs(one[0] - ref / batches) / Math.sqrt(diag[i] * diag[j]);
            worst = Math.max(worst, Double.isNaN(e) ? Double.POSITIVE_INFINITY : e);
            checked++;
        }
        expect(worst < 1e-5, "fp16 hessian n=" + n + " (64-bit offsets) vs fp64 dot products", String.format(Locale.ROOT,
                "%d entries (%d whole rows incl. row %d at flat offset %d, 2000 random): max |err|/sqrt(Hii·Hjj) %.2e",
                checked, sampleRows.length, n - 1, (long) (n - 1) * n, worst));
        memory.free(xs.buffer());
        memory.free(operand);

        // GPTQ damping, then U with H⁻¹ = UᵀU; checked through (U·H·Uᵀ)[i][j] = δij with H kept in a copy
        double mean = Arrays.stream(diag).sum() / n;
        float damp = (float) (0.12 * mean);
        dense.addDiagonal(h, damp);
        DeviceMatrix h0 = memory.matrix("big H copy", n, n);
        h0.buffer().copyFromDevice(h.buffer(), 0, 0, h.buffer().bytes());
        boolean ok;
        double ms;
        try (GpuTimer timer = new GpuTimer(ctx)) {
            timer.start();
            ok = cholesky.upperCholeskyOfInverse(h, memory);
            ms = timer.stopMillis();
        }
        perfFlops("cholesky inverse n=" + n + " (2n³/3 flops)", 2.0 * n * (double) n * n / 3, ms);
        int[] probe = {0, 1, 777, 20000, 43691, n - 2, n - 1};
        DeviceBuffer y = memory.allocate("H·u_j (fp64)", 8L * n);
        double worstId = 0;
        int lowerNonZero = 0;
        float[][] uRows = new float[probe.length][n];
        for (int p = 0; p < probe.length; p++) {
            h.download(Math.min(probe[p], n - 1), 1, uRows[p], 0);
            for (int c = 0; c < Math.min(probe[p], n); c++) {
                lowerNonZero += uRows[p][c] != 0f ? 1 : 0;
            }
        }
        double[] hy = new double[n];
        for (int q = 0; q < probe.length; q++) {
            int j = Math.min(probe[q], n - 1);
            dense.gemvF64(h0, h.block(j, 0, 1, n), y);
            y.copyToHost(0, hy, 0, n);
            for (int p = 0; p < probe.length; p++) {
                int i = Math.min(probe[p], n - 1);
                double s = 0;
                for (int c = i; c < n; c++) {
                    s += uRows[p][c] * hy[c];
                }
                worstId = Math.max(worstId, Double.isNaN(s) ? Double.POSITIVE_INFINITY : Math.abs(s - (i == j ? 1 : 0)));
            }
        }
        expect(ok && lowerNonZero == 0 && worstId < 5e-3, "cholesky inverse n=" + n + " (64-bit offsets)",
                String.format(Locale.ROOT, "max |(U·H·Uᵀ)ij − δij| over %d×%d sampled pairs %.2e (fp64 residual of"
                        + " fp32 U, damp %.3f); lower nonzero %d", probe.length, probe.length, worstId, damp,
                        lowerNonZero));
    }

    // ---------------------------------------------------------------------------------------------------------
    // inputs and references

    private float[] gaussian(int count, float sigma) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) (random.nextGaussian() * sigma);
        }
        return v;
    }

    /**
     * Fills a device matrix (for timings) with N(0,1) values: one random block of 2^24 values, made once, uploaded
     * at shifting offsets so rows differ.
     */
    private void fillRandom(DeviceMatrix m) {
        if (perfBlock == null) {
            perfBlock = gaussian(1 << 24, 1f);
        }
        int cols = Math.toIntExact(m.cols());
        int rowsPerBlock = Math.max(1, Math.min((int) Math.min(m.rows(), Integer.MAX_VALUE), (1 << 23) / cols));
        for (long r = 0; r < m.rows(); r += rowsPerBlock) {
            int count = (int) Math.min(rowsPerBlock, m.rows() - r);
            int shift = (int) ((r * 7919) % (1 << 22));
            m.upload(r, count, perfBlock, shift);
        }
    }

    /** Test weights of a kind: gaussian, heavy-tailed, with an all-zero column, or tiny enough for subnormal scales. */
    private float[] weights(int rows, int cols, int kind) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            double g = random.nextGaussian();
            w[i] = (float) switch (kind) {
                case 1 -> 0.02 * g / Math.sqrt(0.05 + random.nextDouble());
                case 3 -> 3e-6 * g;
                case 4 -> 0;
                default -> 0.02 * g;
            };
        }
        if (kind == 2) {
            for (int r = 0; r < rows; r++) {
                w[r * cols + 17] = 0f;
            }
        }
        return w;
    }

    private static void scaleColumns(float[] x, int rows, int cols, double decades) {
        SplittableRandom r = new SplittableRandom(cols * 31L + rows);
        for (int c = 0; c < cols; c++) {
            float s = (float) Math.pow(10, decades * (2 * r.nextDouble() - 1));
            for (int t = 0; t < rows; t++) {
                x[t * cols + c] *= s;
            }
        }
    }

    /** GPTQ-like damped Hessian (float, row-major, full): XᵀX/t + damp·mean(diag)·I. */
    private float[] hessianMatrix(int n, int tokens, float damp, double spread) {
        float[] x = gaussian(tokens * n, 1f);
        if (spread > 0) {
            scaleColumns(x, tokens, n, spread);
        }
        float[] h = cpuHessian(x, tokens, n, tokens);
        double mean = 0;
        for (int i = 0; i < n; i++) {
            mean += h[i * n + i];
        }
        float d = (float) (damp * mean / n);
        for (int i = 0; i < n; i++) {
            h[i * n + i] += d;
        }
        return h;
    }

    /** U of a GPTQ-like Hessian, computed by the CPU twin. */
    private float[] inverseFactor(int n, int tokens, float damp) {
        float[] h = hessianMatrix(n, tokens, damp, 0);
        if (!cpuCholesky(h, n)) {
            throw new IllegalStateException("test Hessian not positive definite");
        }
        return h;
    }

    /** The CPU backend's Hessian XᵀX/divisor of activations x [tokens × n]. */
    private float[] cpuHessian(float[] x, int tokens, int n, int divisor) {
        float[] h = new float[n * n];
        Tensor gram = cpu.upload(h, n, n);
        cpu.accumulateGram(cpu.upload(x, tokens, n), gram);
        cpu.finishHessian(gram, divisor);
        return h;
    }

    /** The CPU backend's upper Cholesky factor of the inverse, in place on {@code h}. */
    private boolean cpuCholesky(float[] h, int n) {
        return cpu.upperCholeskyOfInverse(cpu.upload(h, n, n));
    }

    /** fp64 LAPACK: the upper Cholesky factor of the inverse, as the CPU backend does in fp32. */
    private static double[] upperCholeskyOfInverseF64(float[] h, int n) {
        double[] a = toDouble(h);
        intW info = new intW(0);
        DLAPACK.dpotrf("L", n, a, 0, n, info);
        DLAPACK.dpotri("L", n, a, 0, n, info);
        DLAPACK.dpotrf("L", n, a, 0, n, info);
        if (info.val != 0) {
            throw new IllegalStateException("fp64 reference factorization failed: info " + info.val);
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < i; j++) {
                a[i * n + j] = 0;
            }
        }
        return a;
    }

    private double median(int reps, Runnable work) {
        return CheckReport.median(ctx, reps, work);
    }

    private static int argmin(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] < v[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    private static double relErr(float[] got, double[] ref) {
        double[] wide = new double[got.length];
        for (int i = 0; i < got.length; i++) {
            wide[i] = got[i];
        }
        return relErr(wide, ref);
    }

    private static double relErr(double[] got, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = got[i] - ref[i];
            num += d * d;
            den += ref[i] * ref[i];
        }
        return Double.isNaN(num) ? Double.POSITIVE_INFINITY : Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }
}
