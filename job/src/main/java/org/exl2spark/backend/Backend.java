package org.exl2spark.backend;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.exl2spark.io.DType;
import org.exl2spark.io.SafetensorsFile;

/**
 * The tensor operations the forward pass, the evaluation and GPTQ need, on fp32 row-major {@link Tensor}s that
 * this backend allocated (and a few on fp16 ones, see {@link #halfZeros}). Every operation works on whole tensors and
 * names its layout, so a device backend can run each one as a kernel with no host round trip; {@link CpuBackend} is
 * the plain Java (plus BLAS) twin of each.
 *
 * <p>Conventions: a tensor "seen as a matrix" is [rows, cols] with cols = its last dim and rows = the product of the
 * others. Sequence tensors are [batch, seqLen, features]; a token's position is its index in its sequence (every
 * sequence starts at position 0). Outputs must be allocated by the caller with the documented shape; an output may
 * be the same tensor as an input only where the method says so.
 */
public interface Backend extends AutoCloseable {

    /** What runs the math, for logs and reports (device, threads, BLAS library). */
    String describe();

    /** A zero-filled tensor. */
    Tensor zeros(long... shape);

    /**
     * A zero-filled tensor of fp16 values ({@link Tensor.Storage#FP16}): on a device two bytes an element, half of
     * {@link #zeros}'s. It is for weights that only {@code FAST} linears read, such as the measurement's dequantized
     * candidate weights (fp16-exact already, so storing them loses nothing) and lets more of them stay on the device.
     * Only these operations take one: {@link #roundToHalf} and {@link #gatherTransposed} write it (as out / dst,
     * rounding each value to fp16 as {@code roundToHalf} does), {@link #linear} reads it as its weight inside a
     * {@code FAST} {@link #linearMode} scope, {@link #download} and {@link #downloadSlice} read it back as floats,
     * and closing frees it; every other operation refuses it. The CPU holds the same fp16 values in floats and
     * computes with them as with any fp32 tensor.
     */
    Tensor halfZeros(long... shape);

    /**
     * A tensor holding {@code data} (row-major, exactly the shape's element count). The backend may keep using the
     * array instead of copying it, so the caller must not modify it afterwards.
     */
    Tensor upload(float[] data, long... shape);

    /**
     * A tensor holding a copy of {@code data[offset, offset + n)}, n the shape's element count: a slice of a large
     * host array (a chunk of calibration rows) without an intermediate array.
     */
    Tensor uploadSlice(float[] data, int offset, long... shape);

    /** Reads stored bytes, e.g. a checkpoint tensor's: fills {@code dst}'s remaining bytes with those from offset on. */
    @FunctionalInterface
    interface StoredBytes {
        void read(long offset, ByteBuffer dst) throws IOException;
    }

    /**
     * A tensor of {@code shape} from as many 16-bit little-endian floats read from {@code source}: fp16, or bfloat16
     * when {@code bf16}, widened to fp32 (exactly; every 16-bit value is an fp32 value). A checkpoint's weights come
     * this way, so that a device backend can move the 16-bit bytes and widen them where it computes. This default, the
     * CPU twin, widens on the host.
     */
    default Tensor uploadWidened(StoredBytes source, boolean bf16, long... shape) throws IOException {
        long n = Tensor.elementCount(shape);
        if (n > HostTensor.MAX_ELEMENTS) {
            throw new IllegalArgumentException("uploadWidened: shape " + Arrays.toString(shape) + " has " + n
                    + " elements, more than a Java array holds (" + HostTensor.MAX_ELEMENTS + ")");
        }
        float[] out = new float[(int) n];
        // 16 MiB read at a time
        ByteBuffer chunk = ByteBuffer.allocate((int) Math.min(2 * n, 16 << 20)).order(ByteOrder.LITTLE_ENDIAN);
        for (int done = 0; done < n; ) {
            int k = (int) Math.min(n - done, chunk.capacity() / 2);
            chunk.clear().limit(2 * k);
            source.read(2L * done, chunk);
            SafetensorsFile.toFloats(chunk.flip(), bf16 ? DType.BF16 : DType.F16, out, done, k);
            done += k;
        }
        return upload(out, shape);
    }

    /** A copy of the tensor's elements on the host (at most 2^31-9 of them); an fp16 tensor's exactly, as floats. */
    float[] download(Tensor t);

    /** Copies the tensor's elements into {@code dst} from {@code offset} on (waiting for queued work first). */
    void downloadSlice(Tensor t, float[] dst, int offset);

    /**
     * GEMM on matrices: {@code c = alpha·op(a)·op(b) + beta·c}, op = transpose when the flag is set. With
     * {@code beta = 0} the old contents of {@code c} are ignored (NaN included).
     */
    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c, float alpha, float beta);

    /**
     * A linear layer as stored by Hugging Face: {@code out[rows, outF] = x[rows, inF]·weightᵀ + bias}, weight
     * [outF, inF], bias [outF] or null. The weight may be an fp16 tensor ({@link #halfZeros}) inside a {@code FAST}
     * {@link #linearMode} scope only (elsewhere that fails, naming the weight); a device then rounds x to fp16 in a
     * temporary of half x's bytes and multiplies fp16 operands, which is the FAST precision's arithmetic with
     * half its operand traffic.
     */
    void linear(Tensor x, Tensor weight, Tensor bias, Tensor out);

    /**
     * How {@link #linear} meets the hardware. {@code ACCURATE}: fp32 accuracy (the reference forwards, the Hessians'
     * inputs, evaluation). {@code FAST}: the device's fastest precision with about 1e-3 relative rounding, the class
     * of the fp16 forwards ExLlamaV2 measures with; for forwards whose outputs are only compared with a reference
     * (the measurement's candidates). A backend without a faster precision runs both the same way.
     */
    enum LinearMode { ACCURATE, FAST }

    /**
     * Runs {@link #linear} in {@code mode} until the returned scope closes, then restores the previous mode. The CPU
     * computes every linear in fp32 whatever the mode: it has no faster reduced-precision product, and rounding the
     * operands first would only cost time.
     */
    default ModeScope linearMode(LinearMode mode) {
        return () -> { };
    }

    /** A {@link #linearMode} setting that ends when closed. */
    @FunctionalInterface
    interface ModeScope extends AutoCloseable {
        @Override
        void close();
    }

    /** {@code gram += xᵀ·x} for x [rows, n] and gram [n, n] (the GPTQ Hessian accumulation); gram stays symmetric. */
    void accumulateGram(Tensor x, Tensor gram);

    /**
     * GPTQ's Hessian accumulation from fp16 activations, as ExLlamaV2's fp16 forward gives them (EXL2-SPEC F.1):
     * {@code gram += hᵀ·h} with h = x rounded as {@link #roundToHalf} rounds it (x itself unchanged). Only gram's upper
     * triangle (j ≥ i) is defined afterwards; {@link #finishHessian} makes the whole square symmetric. A product of two
     * fp16 values is exact in fp32, so a backend may sum them on fp16 tensor cores with fp32 accumulation: the result
     * differs from {@link #accumulateGram} of h only in the order of the additions. This default is that fp32 path
     * (the CPU twin), which keeps the whole square symmetric.
     */
    default void accumulateHalfGram(Tensor x, Tensor gram) {
        try (Tensor half = zeros(x.shape())) {
            roundToHalf(x, half);
            accumulateGram(half, gram);
        }
    }

    /** {@code out[r, :] = table[ids[r], :]}; out [ids.length, hidden] (any leading dims with that row count). */
    void embed(int[] ids, Tensor table, Tensor out);

    /** RMSNorm per row: {@code out = x / sqrt(mean(x²) + eps) · weight}; out may be x. */
    void rmsNorm(Tensor x, Tensor weight, float eps, Tensor out);

    /**
     * Rotary embedding in place, Hugging Face's rotate_half convention: within each head the dims i and i + headDim/2
     * form a pair rotated by the angle of frequency i. x is [batch, seqLen, heads·headDim]; cos and sin are
     * [≥ seqLen, headDim/2], row p holding the values for position p.
     */
    void rope(Tensor x, int heads, int headDim, Tensor cos, Tensor sin);

    /**
     * Causal scaled-dot-product attention with grouped KV heads: query head h reads KV head
     * {@code h / (heads / kvHeads)}. q and out are [batch, seqLen, heads·headDim]; k and v are
     * [batch, seqLen, kvHeads·headDim]. Position i sees positions j ≤ i, and with {@code slidingWindow > 0} only
     * j > i − slidingWindow (the window counts the token itself). Scores are scaled by 1/sqrt(headDim).
     */
    void attention(Tensor q, Tensor k, Tensor v, Tensor out, int heads, int kvHeads, int headDim, int slidingWindow);

    /** SwiGLU: {@code out = silu(gate) · up} elementwise, silu(x) = x / (1 + e^-x); out may be gate or up. */
    void swiGlu(Tensor gate, Tensor up, Tensor out);

    /** Elementwise {@code out = a + b}; out may be a or b. */
    void add(Tensor a, Tensor b, Tensor out);

    /** {@code dst = src} for two tensors of the same shape. */
    void copy(Tensor src, Tensor dst);

    /**
     * ExLlamaV2's block error of each calibration row: for every index r of dim 0 of y and reference (same shape),
     * {@code ‖clamp(y[r]) − reference[r]‖_F / ‖reference[r]‖_F}, y clamped to fp16's ±65504 as fp16 states would be,
     * the differences taken in fp32 and the sums in fp64.
     */
    double[] relativeErrors(Tensor y, Tensor reference);

    /**
     * Elementwise {@code out = float(fp16(x))}: each value rounded to the nearest fp16 (half to even), values beyond
     * the fp16 range clamped to ±65504; out may be x, or an fp16 tensor ({@link #halfZeros}) that stores them.
     * GPTQ's Hessians are built from fp16 activations, as ExLlamaV2's fp16 forward gives them (EXL2-SPEC F.1).
     */
    void roundToHalf(Tensor x, Tensor out);

    /** Softmax of each row; out may be x. */
    void softmax(Tensor x, Tensor out);

    /** Log-softmax of each row; out may be x. */
    void logSoftmax(Tensor x, Tensor out);

    /**
     * Per row, the Kullback–Leibler divergence KL(P‖Q) = Σ p·(log p − log q) of two rows of log-probabilities
     * (P = {@code referenceLogProbs}); out has one element per row.
     */
    void klDivergence(Tensor referenceLogProbs, Tensor logProbs, Tensor out);

    // ---- GPTQ (EXL2-SPEC F) ------------------------------------------------------------------------------

    /**
     * Turns a Gram matrix built by {@link #accumulateGram} over {@code rows} calibration rows into GPTQ's Hessian
     * {@code (1/rows)·Σ XᵀX}: every element divided by {@code rows}, the whole square symmetric.
     */
    void finishHessian(Tensor gram, long rows);

    /** The diagonal of a square matrix, copied to the host. */
    float[] diagonal(Tensor square);

    /**
     * In place {@code h[i][j] := h[perm[i]][perm[j]]} for a square h (act order), with no second n × n copy: a
     * 49152-wide Hessian is 9.7 GB.
     */
    void permuteSymmetric(Tensor h, int[] perm);

    /**
     * After {@link #upperCholeskyOfInverse} returned false: makes h the symmetric matrix it was given again, from
     * its strict lower triangle (which a failed factorization leaves as given) and {@code diagonal}.
     */
    void restoreSymmetric(Tensor h, float[] diagonal);

    /** {@code diag(a) += value} of a square matrix. */
    void addDiagonal(Tensor a, float value);

    /**
     * Overwrites a symmetric positive definite {@code h} with U, the upper Cholesky factor of its inverse
     * ({@code h⁻¹ = Uᵀ·U}, strict lower triangle zeroed). Returns false if h is not positive definite or U is not
     * finite; h's strict lower triangle is then as given (see {@link #restoreSymmetric}), the rest undefined.
     */
    boolean upperCholeskyOfInverse(Tensor h);

    /**
     * A transpose that gathers: {@code dst[i][j] = src[rowIndex[j]][colIndex[i]]}, a null index meaning the
     * identity; dst is [colIndex length or src.cols(), rowIndex length or src.rows()]. An fp16 dst
     * ({@link #halfZeros}) gets each value rounded as {@link #roundToHalf} rounds it.
     */
    void gatherTransposed(Tensor src, int[] rowIndex, int[] colIndex, Tensor dst);

    /**
     * Starts GPTQ's column-block loop over the act-ordered work matrix {@code w} [rows × cols] (which the run
     * modifies) and U [rows × rows], for groups of at most {@code maxGroupRows} rows.
     */
    GptqRun<Tensor> gptq(Tensor w, Tensor u, long maxGroupRows);

    /** Releases the backend's threads and device state; its tensors must not be used afterwards. */
    @Override
    void close();
}
