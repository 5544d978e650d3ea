package org.exl2spark.plan;

import java.util.Collection;
import java.util.LinkedHashSet;

/**
 * Which dequantized weights a measurement holds: at most {@code capacity} keys, least recently used first. The
 * planner counts GPTQ runs with it and the measurement task decides what to free with it, so both agree.
 */
public final class DequantCache<K> {
    private final int capacity;
    private final LinkedHashSet<K> order = new LinkedHashSet<>();

    public DequantCache(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("a dequantized-weight cache needs at least one slot");
        }
        this.capacity = capacity;
    }

    /** Whether {@code key} is held; if so it becomes the most recently used. */
    public boolean touch(K key) {
        if (order.remove(key)) {
            order.add(key);
            return true;
        }
        return false;
    }

    /**
     * The key to evict so one more fits, or null when there is room: the least recently used one not in
     * {@code keep}. Removes it from the cache.
     */
    public K evictFor(Collection<K> keep) {
        if (order.size() < capacity) {
            return null;
        }
        for (K k : order) {
            if (!keep.contains(k)) {
                order.remove(k);
                return k;
            }
        }
        throw new IllegalStateException("all " + capacity + " slots hold weights the current candidate needs");
    }

    public void put(K key) {
        order.add(key);
    }
}
