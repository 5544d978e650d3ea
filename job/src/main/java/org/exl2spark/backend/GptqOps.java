package org.exl2spark.backend;

/**
 * The operations GPTQ is made of, over some matrix type {@code M}: {@link Backend}'s tensors ({@link #of}) or a
 * device's matrices (the CUDA implementation). {@code AdaptiveGptq} is written once against this, so the same steps
 * run wherever the matrices live. Each method means what the {@link Backend} method of the same name means.
 */
public interface GptqOps<M> {

    /** A zero-filled rows × cols matrix. */
    M zeros(long rows, long cols);

    /** Frees a matrix this made (or was given to own). */
    void release(M matrix);

    long rows(M matrix);

    long cols(M matrix);

    void finishHessian(M gram, long rows);

    float[] diagonal(M square);

    void permuteSymmetric(M h, int[] perm);

    void restoreSymmetric(M h, float[] diagonal);

    void addDiagonal(M a, float value);

    boolean upperCholeskyOfInverse(M h);

    void gatherTransposed(M src, int[] rowIndex, int[] colIndex, M dst);

    GptqRun<M> gptq(M w, M u, long maxGroupRows);

    /** A backend's GPTQ operations on its tensors. */
    static GptqOps<Tensor> of(Backend backend) {
        return new GptqOps<>() {
            @Override
            public Tensor zeros(long rows, long cols) {
                return backend.zeros(rows, cols);
            }

            @Override
            public void release(Tensor matrix) {
                matrix.close();
            }

            @Override
            public long rows(Tensor matrix) {
                return matrix.rows();
            }

            @Override
            public long cols(Tensor matrix) {
                return matrix.cols();
            }

            @Override
            public void finishHessian(Tensor gram, long rows) {
                backend.finishHessian(gram, rows);
            }

            @Override
            public float[] diagonal(Tensor square) {
                return backend.diagonal(square);
            }

            @Override
            public void permuteSymmetric(Tensor h, int[] perm) {
                backend.permuteSymmetric(h, perm);
            }

            @Override
            public void restoreSymmetric(Tensor h, float[] diagonal) {
                backend.restoreSymmetric(h, diagonal);
            }

            @Override
            public void addDiagonal(Tensor a, float value) {
                backend.addDiagonal(a, value);
            }

            @Override
            public boolean upperCholeskyOfInverse(Tensor h) {
                return backend.upperCholeskyOfInverse(h);
            }

            @Override
            public void gatherTransposed(Tensor src, int[] rowIndex, int[] colIndex, Tensor dst) {
                backend.gatherTransposed(src, rowIndex, colIndex, dst);
            }

            @Override
            public GptqRun<Tensor> gptq(Tensor w, Tensor u, long maxGroupRows) {
                return backend.gptq(w, u, maxGroupRows);
            }
        };
    }
}
