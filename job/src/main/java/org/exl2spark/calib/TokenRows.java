package org.exl2spark.calib;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** A [rows, length] matrix of token ids, row-major; each row is one sequence. */
public record TokenRows(int rows, int length, int[] ids) {

    public TokenRows {
        if (rows < 0 || length < 0 || (long) rows * length != ids.length) {
            throw new IllegalArgumentException(ids.length + " ids do not form " + rows + " rows of " + length);
        }
    }

    public int[] row(int r) {
        return java.util.Arrays.copyOfRange(ids, r * length, (r + 1) * length);
    }

    /** Rows [from, to) as separate arrays (a batch for the forward). */
    public int[][] rows(int from, int to) {
        int[][] out = new int[to - from][];
        for (int r = from; r < to; r++) {
            out[r - from] = row(r);
        }
        return out;
    }

    /** SHA-256 of the ids as int32 little-endian, row-major: the fingerprint EXL2-SPEC.md H.3 gives. */
    public String sha256() {
        ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(ids.length, Integer.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(ids);
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b.array()));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
