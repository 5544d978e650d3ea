package org.exl2spark.testing;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Deterministic pseudo-random bytes addressed by a 64-bit position: byte {@code i} of stream {@code seed} is always
 * the same, so a multi-GB file can be written as a stream and any range checked later without keeping it anywhere.
 * Every 8-byte word is a hash of (seed, word index), so a read at a wrong offset, even a multiple of 2^31 off, shows.
 */
public final class PatternBytes {
    private PatternBytes() {
    }

    /** SplitMix64 finalizer of the word index, keyed by the seed. */
    static long word(long seed, long index) {
        long z = seed * 0x9E3779B97F4A7C15L + index + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public static byte at(long seed, long position) {
        return (byte) (word(seed, position >>> 3) >>> (8 * (position & 7)));
    }

    /** Fills the remaining bytes of {@code dst} with the pattern from {@code position} on. */
    public static void fill(long seed, long position, ByteBuffer dst) {
        long pos = position;
        while (dst.hasRemaining() && (pos & 7) != 0) {
            dst.put(at(seed, pos++));
        }
        ByteOrder order = dst.order();
        dst.order(ByteOrder.LITTLE_ENDIAN);
        while (dst.remaining() >= 8) {
            dst.putLong(word(seed, pos >>> 3));
            pos += 8;
        }
        dst.order(order);
        while (dst.hasRemaining()) {
            dst.put(at(seed, pos++));
        }
    }

    /** Writes {@code length} pattern bytes from position 0 in 4 MiB pieces. */
    public static void write(long seed, long length, OutputStream out) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(4 << 20);
        for (long pos = 0; pos < length; ) {
            int n = (int) Math.min(buf.capacity(), length - pos);
            buf.clear().limit(n);
            fill(seed, pos, buf);
            out.write(buf.array(), 0, n);
            pos += n;
        }
    }

    /** Position of the first byte of {@code got} (its remaining bytes) that differs from the pattern, or -1. */
    public static long firstMismatch(long seed, long position, ByteBuffer got) {
        ByteBuffer want = ByteBuffer.allocate(got.remaining());
        fill(seed, position, want);
        want.flip();
        int i = want.mismatch(got.duplicate());
        return i < 0 ? -1 : position + i;
    }
}
