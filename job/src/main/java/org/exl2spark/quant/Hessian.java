package org.exl2spark.quant;

/**
 * GPTQ's Hessian of one linear's input, {@code H = (1/rows) Σ_rows XᵀX} with X a calibration row's activations
 * [tokens × in_features] (no factor 2, no division by tokens: EXL2-SPEC F.1). Accumulated in fp32.
 */
public final class Hessian {
    private final int n;
    private final float[] h;
    private int batches;

    public Hessian(int inFeatures) {
        DenseMath.checkSquare(inFeatures, "Hessian");
        this.n = inFeatures;
        this.h = new float[inFeatures * inFeatures];
    }

    public int size() {
        return n;
    }

    public int batches() {
        return batches;
    }

    /** Adds one calibration row's activations {@code x[tokens × n]} (row-major) as one batch. */
    public void addBatch(float[] x, int offset, int tokens) {
        if ((long) tokens * n > x.length - offset) {
            throw new IllegalArgumentException("activations hold fewer than " + tokens + "×" + n + " values");
        }
        DenseMath.syrkTransposedUpper(n, tokens, 1f, x, offset, h);
        batches++;
    }

    /** Merges another accumulator of the same input (e.g. from another row partition). */
    public void add(Hessian other) {
        if (other.n != n) {
            throw new IllegalArgumentException("Hessian sizes differ: " + n + " vs " + other.n);
        }
        for (int i = 0; i < h.length; i++) {
            h[i] += other.h[i];
        }
        batches += other.batches;
    }

    /** The finished matrix (row-major, full, divided by the batch count); the identity if nothing was added. */
    public float[] toMatrix() {
        float[] out = new float[n * n];
        if (batches == 0) {
            for (int i = 0; i < n; i++) {
                out[i * n + i] = 1f;
            }
            return out;
        }
        for (int i = 0; i < n; i++) {
            for (int j = i; j < n; j++) {
                float v = h[i * n + j] / batches;
                out[i * n + j] = v;
                out[j * n + i] = v;
            }
        }
        return out;
    }
}
