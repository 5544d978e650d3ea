package org.exl2spark.calib;

/**
 * Concatenates the token ids of consecutive records, with no separator, until {@code rows × length} are collected,
 * then cuts them into rows: how ExLlamaV2 turns parquet records into calibration and evaluation rows (EXL2-SPEC H.2).
 */
final class RowCollector {
    private final int rows;
    private final int length;
    private final int[] ids;
    private int collected;

    RowCollector(int rows, int length) {
        if (rows <= 0 || length <= 0) {
            throw new IllegalArgumentException("rows and length must be positive, got " + rows + " × " + length);
        }
        this.rows = rows;
        this.length = length;
        this.ids = new int[Math.multiplyExact(rows, length)];
    }

    /** Appends a record's ids; returns true once the matrix is full (later ids are dropped). */
    boolean add(int[] recordIds) {
        int take = Math.min(recordIds.length, ids.length - collected);
        System.arraycopy(recordIds, 0, ids, collected, take);
        collected += take;
        return full();
    }

    boolean full() {
        return collected == ids.length;
    }

    int collected() {
        return collected;
    }

    int needed() {
        return ids.length;
    }

    TokenRows rows() {
        if (!full()) {
            throw new IllegalStateException(collected + " of " + ids.length + " ids collected");
        }
        return new TokenRows(rows, length, ids);
    }
}
