package org.exl2spark.backend;

import java.util.Arrays;

/** The shape rules of {@link Backend}'s operations, shared by every backend so each fails with the same message. */
final class ShapeChecks {
    private ShapeChecks() {
    }

    /** {m, n, k} of {@code c = op(a)·op(b)}. */
    static long[] matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, Tensor c) {
        long m = transposeA ? a.cols() : a.rows();
        long k = transposeA ? a.rows() : a.cols();
        long kb = transposeB ? b.cols() : b.rows();
        long n = transposeB ? b.rows() : b.cols();
        if (k != kb || c.rows() != m || c.cols() != n) {
            throw new IllegalArgumentException("matmul: op(a) is [" + m + ", " + k + "], op(b) is [" + kb + ", " + n
                    + "], c is [" + c.rows() + ", " + c.cols() + "]");
        }
        return new long[] {m, n, k};
    }

    static void linear(Tensor x, Tensor weight, Tensor bias, Tensor out) {
        long in = weight.cols();
        long outF = weight.rows();
        if (weight.rank() != 2 || x.cols() != in || out.cols() != outF || out.rows() != x.rows()) {
            throw new IllegalArgumentException("linear: x " + x.shapeString() + ", weight " + weight.shapeString()
                    + ", out " + out.shapeString() + " (need x [rows, in], weight [out, in], out [rows, out])");
        }
        if (bias != null && bias.size() != outF) {
            throw new IllegalArgumentException("linear: bias " + bias.shapeString() + " for " + outF + " outputs");
        }
    }

    static void gram(Tensor x, Tensor gram) {
        long n = x.cols();
        if (gram.rows() != n || gram.cols() != n) {
            throw new IllegalArgumentException("accumulateGram: x " + x.shapeString() + " needs gram [" + n + ", " + n
                    + "], got " + gram.shapeString());
        }
    }

    static void embed(int[] ids, Tensor table, Tensor out) {
        long vocab = table.rows();
        if (out.rows() != ids.length || out.cols() != table.cols()) {
            throw new IllegalArgumentException("embed: " + ids.length + " ids into " + out.shapeString()
                    + " from table " + table.shapeString());
        }
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab) {
                throw new IllegalArgumentException("embed: token id " + ids[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
    }

    static void rmsNorm(Tensor x, Tensor weight, Tensor out) {
        sameShape("rmsNorm", x, out);
        if (weight.size() != x.cols()) {
            throw new IllegalArgumentException("rmsNorm: weight " + weight.shapeString() + " for rows of " + x.cols());
        }
    }

    static void rope(Tensor x, int heads, int headDim, Tensor cos, Tensor sin) {
        if (x.rank() != 3 || x.dim(2) != (long) heads * headDim || headDim % 2 != 0) {
            throw new IllegalArgumentException("rope: x " + x.shapeString() + " is not [batch, seqLen, " + heads + "·"
                    + headDim + "] with an even head dim");
        }
        long seqLen = x.dim(1);
        int half = headDim / 2;
        if (cos.cols() != half || sin.cols() != half || cos.rows() < seqLen || sin.rows() < seqLen) {
            throw new IllegalArgumentException("rope: cos " + cos.shapeString() + " / sin " + sin.shapeString()
                    + " do not cover " + seqLen + " positions of " + half + " frequencies");
        }
    }

    static void attention(Tensor q, Tensor k, Tensor v, Tensor out, int heads, int kvHeads, int headDim) {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0 || headDim <= 0) {
            throw new IllegalArgumentException("attention: " + heads + " heads over " + kvHeads + " KV heads");
        }
        if (q.rank() != 3 || q.dim(2) != (long) heads * headDim) {
            throw new IllegalArgumentException("attention: q " + q.shapeString() + " is not [batch, seqLen, " + heads
                    + "·" + headDim + "]");
        }
        long[] kvShape = {q.dim(0), q.dim(1), (long) kvHeads * headDim};
        if (!Arrays.equals(k.shape(), kvShape) || !Arrays.equals(v.shape(), kvShape)) {
            throw new IllegalArgumentException("attention: k " + k.shapeString() + ", v " + v.shapeString()
                    + " must be " + Arrays.toString(kvShape));
        }
        sameShape("attention", q, out);
    }

    static void klDivergence(Tensor referenceLogProbs, Tensor logProbs, Tensor out) {
        sameShape("klDivergence", referenceLogProbs, logProbs);
        if (out.size() != referenceLogProbs.rows()) {
            throw new IllegalArgumentException("klDivergence: out " + out.shapeString() + " for "
                    + referenceLogProbs.rows() + " rows");
        }
    }

    /** An elementwise operation of two operands into out: all three of one shape. */
    static void elementwise(String op, Tensor a, Tensor b, Tensor out) {
        sameShape(op, a, b);
        sameShape(op, a, out);
    }

    static void sameShape(String op, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new IllegalArgumentException(op + ": shapes " + a.shapeString() + " and " + b.shapeString()
                    + " differ");
        }
    }

    /** The side of a square matrix; fails naming the operation otherwise. */
    static long square(String op, Tensor t) {
        if (t.rank() != 2 || t.rows() != t.cols()) {
            throw new IllegalArgumentException(op + ": " + t.shapeString() + " is not a square matrix");
        }
        return t.rows();
    }

    /** An index array (null = identity) of {@code length} entries, each in [0, bound). */
    static void index(String op, int[] index, long bound, long length) {
        if (index == null) {
            if (length != bound) {
                throw new IllegalArgumentException(op + ": identity index of " + bound + " where " + length
                        + " are needed");
            }
            return;
        }
        if (index.length != length) {
            throw new IllegalArgumentException(op + ": " + index.length + " indices, need " + length);
        }
        for (int i : index) {
            if (i < 0 || i >= bound) {
                throw new IllegalArgumentException(op + ": index " + i + " outside [0, " + bound + ")");
            }
        }
    }

    /** The [rows, cols] a gather-transpose writes: index lengths, or src's transposed dims where an index is null. */
    static void gatherTransposed(Tensor src, int[] rowIndex, int[] colIndex, Tensor dst) {
        long outRows = colIndex == null ? src.cols() : colIndex.length;
        long outCols = rowIndex == null ? src.rows() : rowIndex.length;
        if (dst.rows() != outRows || dst.cols() != outCols) {
            throw new IllegalArgumentException("gatherTransposed: dst " + dst.shapeString() + " must be [" + outRows
                    + ", " + outCols + "]");
        }
        index("gatherTransposed rowIndex", rowIndex, src.rows(), outCols);
        index("gatherTransposed colIndex", colIndex, src.cols(), outRows);
    }

    /** The element count of {@code shape}, which must fit {@code length − offset} elements of an array from offset on. */
    static long uploadSlice(int length, int offset, long... shape) {
        long n = Tensor.elementCount(shape);
        if (offset < 0 || n > length - (long) offset) {
            throw new IllegalArgumentException("uploadSlice: shape " + java.util.Arrays.toString(shape) + " needs " + n
                    + " elements from " + offset + " of an array of " + length);
        }
        return n;
    }

    /** An fp16 weight is read only by FAST linears (Backend#halfZeros). */
    static void halfWeight(Tensor weight, Backend.LinearMode mode) {
        if (weight.isHalf() && mode != Backend.LinearMode.FAST) {
            throw new IllegalStateException("linear: the weight " + weight + " is fp16, which only a FAST linearMode"
                    + " scope reads (now " + mode + ")");
        }
    }
}
