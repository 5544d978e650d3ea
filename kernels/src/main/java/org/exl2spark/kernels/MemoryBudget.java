package org.exl2spark.kernels;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Byte accounting of one device-memory pool: every allocation is reserved against a budget first, the peak is
 * tracked, and a reservation that would exceed the budget fails before anything is allocated, naming what, the
 * bytes it needs, the budget and what holds the rest.
 */
public final class MemoryBudget {
    /** One reservation: what it is for and its size. */
    public record Allocation(long id, String what, long bytes) {
    }

    private final String owner;
    private final long budget;
    private final Map<Long, Allocation> live = new LinkedHashMap<>();
    private long inUse;
    private long peak;
    private long nextId;

    /** @param owner names the pool in messages, e.g. "GPU 0 task pool" */
    public MemoryBudget(String owner, long budgetBytes) {
        if (budgetBytes < 0) {
            throw new IllegalArgumentException(owner + ": negative memory budget " + budgetBytes);
        }
        this.owner = owner;
        this.budget = budgetBytes;
    }

    public synchronized Allocation reserve(String what, long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException(owner + ": allocation '" + what + "' of " + bytes + " bytes");
        }
        if (bytes > budget - inUse) {
            throw new DeviceMemoryException(owner + " budget exceeded: cannot allocate " + what + ": needs "
                    + Bytes.format(bytes) + "; budget " + Bytes.format(budget) + ", " + Bytes.format(inUse)
                    + " already in use" + describeLive(), what, bytes);
        }
        Allocation a = new Allocation(nextId++, what, bytes);
        live.put(a.id(), a);
        inUse += bytes;
        peak = Math.max(peak, inUse);
        return a;
    }

    public synchronized void release(Allocation a) {
        if (live.remove(a.id()) == null) {
            throw new IllegalStateException(owner + ": '" + a.what() + "' released twice or never reserved here");
        }
        inUse -= a.bytes();
    }

    public synchronized long inUse() {
        return inUse;
    }

    public synchronized long peak() {
        return peak;
    }

    public long budget() {
        return budget;
    }

    public synchronized long remaining() {
        return budget - inUse;
    }

    public synchronized List<Allocation> live() {
        return new ArrayList<>(live.values());
    }

    public String owner() {
        return owner;
    }

    /** " by N allocation(s): the largest few with their sizes", or "" when nothing is live. */
    private String describeLive() {
        if (live.isEmpty()) {
            return "";
        }
        List<Allocation> largest = live.values().stream()
                .sorted(Comparator.comparingLong(Allocation::bytes).reversed()).limit(5).collect(Collectors.toList());
        return " by " + live.size() + " allocation(s): " + largest.stream()
                .map(a -> a.what() + " " + Bytes.format(a.bytes())).collect(Collectors.joining(", "))
                + (live.size() > largest.size() ? ", ..." : "");
    }
}
