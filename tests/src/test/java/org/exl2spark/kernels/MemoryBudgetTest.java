package org.exl2spark.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class MemoryBudgetTest {
    private static final long MIB = 1L << 20;

    @Test
    void countsReservationsAndTracksThePeak() {
        MemoryBudget budget = new MemoryBudget("GPU 0 memory pool", 100 * MIB);
        MemoryBudget.Allocation h = budget.reserve("H 4096×4096 fp32", 64 * MIB);
        MemoryBudget.Allocation x = budget.reserve("X chunk", 30 * MIB);
        assertEquals(94 * MIB, budget.inUse());
        assertEquals(6 * MIB, budget.remaining());
        budget.release(x);
        MemoryBudget.Allocation w = budget.reserve("W", 36 * MIB);
        assertEquals(100 * MIB, budget.inUse());
        assertEquals(100 * MIB, budget.peak());
        budget.release(h);
        budget.release(w);
        assertEquals(0, budget.inUse());
        assertEquals(100 * MIB, budget.peak());
        assertTrue(budget.live().isEmpty());
    }

    @Test
    void refusalNamesWhatTheBytesTheBudgetAndTheHolders() {
        MemoryBudget budget = new MemoryBudget("GPU 1 memory pool", 8L << 30);
        budget.reserve("U 40000×40000 fp32", 6_400_000_000L);
        DeviceMemoryException e = assertThrows(DeviceMemoryException.class,
                () -> budget.reserve("H 49152×49152 fp32", 9_663_676_416L));
        String m = e.getMessage();
        assertTrue(m.contains("GPU 1 memory pool"), m);
        assertTrue(m.contains("H 49152×49152 fp32"), m);
        assertTrue(m.contains("9663676416 bytes (9.00 GiB)"), m);
        assertTrue(m.contains("budget 8589934592 bytes (8.00 GiB)"), m);
        assertTrue(m.contains("U 40000×40000 fp32 6400000000 bytes"), m);
        assertEquals("H 49152×49152 fp32", e.what());
        assertEquals(9_663_676_416L, e.bytesNeeded());
        // a refused reservation leaves the accounting as it was
        assertEquals(6_400_000_000L, budget.inUse());
        assertEquals(1, budget.live().size());
    }

    @Test
    void exactFitIsAllowedAndOneByteMoreIsNot() {
        MemoryBudget budget = new MemoryBudget("pool", 10);
        budget.reserve("a", 4);
        budget.reserve("b", 6);
        assertThrows(DeviceMemoryException.class, () -> budget.reserve("c", 1));
    }

    @Test
    void hugeRequestsDoNotOverflowTheArithmetic() {
        MemoryBudget budget = new MemoryBudget("pool", Long.MAX_VALUE);
        budget.reserve("most", Long.MAX_VALUE - 1);
        assertThrows(DeviceMemoryException.class, () -> budget.reserve("two more", 2));
        assertEquals(Long.MAX_VALUE - 1, budget.inUse());
    }

    @Test
    void releasingTwiceOrNothingIsAnError() {
        MemoryBudget budget = new MemoryBudget("pool", 100);
        MemoryBudget.Allocation a = budget.reserve("a", 10);
        budget.release(a);
        assertThrows(IllegalStateException.class, () -> budget.release(a));
        assertThrows(IllegalArgumentException.class, () -> budget.reserve("empty", 0));
        assertThrows(IllegalArgumentException.class, () -> budget.reserve("negative", -5));
        assertThrows(IllegalArgumentException.class, () -> new MemoryBudget("pool", -1));
    }
}
