package org.exl2spark.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.exl2spark.plan.DeviceBytes;
import org.junit.jupiter.api.Test;

class HalfKernelsTest {
    /** The planner counts the fp16 Gram operand with DeviceBytes; the CUDA backend allocates what HalfKernels reads. */
    @Test
    void theFp16OperandIsPaddedTo64RowsAnd8ColumnsAsThePlannerCountsIt() {
        assertEquals(2L * 64 * 8, HalfKernels.operandBytes(1, 1));
        assertEquals(2L * 128 * 136, HalfKernels.operandBytes(65, 129));
        assertEquals(2L * 4096 * 49152, HalfKernels.operandBytes(4096, 49152));
        for (long[] s : new long[][] {{1, 1}, {31, 7}, {33, 129}, {517, 1000}, {4096, 49152}, {204800, 8192}}) {
            assertEquals(HalfKernels.operandBytes(s[0], s[1]), DeviceBytes.halfGramOperand(s[0], s[1]),
                    s[0] + "×" + s[1]);
        }
    }

    /**
     * The Gram grid covers every 128 × 256 tile with an element on or above the diagonal, counted per group of 16 row
     * tiles from the column tile of the group's first row: a single tile, one group, and 49152 (24 groups).
     */
    @Test
    void theGramGridCountsTheTilesOfEachRowGroupFromItsDiagonalOn() {
        assertEquals(1, HalfKernels.gramBlocks(1));
        // 2 row tiles of 128 under one column tile of 256, both reaching the diagonal
        assertEquals(2, HalfKernels.gramBlocks(256));
        // 3 row tiles, 2 column tiles, one group from column tile 0
        assertEquals(6, HalfKernels.gramBlocks(257));
        long mTiles = 384;
        long nTiles = 192;
        long expected = 0;
        for (long firstM = 0; firstM < mTiles; firstM += 16) {
            expected += 16 * (nTiles - firstM / 2);
        }
        assertEquals(expected, HalfKernels.gramBlocks(49152));
        long live = 0;
        for (long bi = 0; bi < mTiles; bi++) {
            for (long bj = 0; bj < nTiles; bj++) {
                live += bj * 256 + 255 >= bi * 128 ? 1 : 0;
            }
        }
        assertEquals(true, HalfKernels.gramBlocks(49152) >= live && HalfKernels.gramBlocks(49152) < 1.1 * live,
                "launched " + HalfKernels.gramBlocks(49152) + " blocks for " + live + " live tiles");
    }
}
