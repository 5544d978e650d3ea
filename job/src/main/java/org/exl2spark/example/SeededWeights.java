package org.exl2spark.example;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.ModelArchitecture;

/**
 * Deterministic synthetic fp16 weights at scales that keep a forward pass finite: norm weights N(1, 0.02²),
 * embeddings N(0, 1), linear weights [out, in] N(0, 1/in) (so a linear keeps its input's scale), biases
 * N(0, 0.02²). Each chunk of {@link #CHUNK_ELEMENTS} values has its own generator, seeded from (seed, tensor name,
 * chunk index), so the bytes depend only on those; chunks are drawn in parallel and written in order.
 */
public final class SeededWeights {
    static final int CHUNK_ELEMENTS = 1 << 20;

    /** The distribution one tensor's values are drawn from. */
    public record Init(double mean, double std) {
    }

    private SeededWeights() {
    }

    public static Init initFor(String name, long[] shape) {
        if (name.endsWith("norm.weight")) {
            return new Init(1.0, 0.02);
        }
        if (name.endsWith(".bias")) {
            return new Init(0.0, 0.02);
        }
        if (name.equals(ModelArchitecture.EMBED)) {
            return new Init(0.0, 1.0);
        }
        if (shape.length == 2) {
            return new Init(0.0, 1.0 / Math.sqrt(shape[1]));
        }
        throw new IllegalArgumentException("no initialisation rule for tensor '" + name + "'");
    }

    /** Streams the tensor's fp16 bytes, little-endian, chunk by chunk. */
    public static void write(TensorSpec t, long seed, OutputStream out) throws IOException {
        if (t.dtype() != DType.F16) {
            throw new IllegalArgumentException("tensor '" + t.name() + "': synthetic weights are F16, not " + t.dtype());
        }
        Init init = initFor(t.name(), t.shape());
        long base = tensorSeed(seed, t.name());
        long n = t.numElements();
        long chunks = (n + CHUNK_ELEMENTS - 1) / CHUNK_ELEMENTS;
        int batch = (int) Math.min(chunks, Runtime.getRuntime().availableProcessors());
        byte[][] buffers = new byte[batch][2 * (int) Math.min(n, CHUNK_ELEMENTS)];
        // a batch of chunks is drawn in parallel, then written in order
        for (long first = 0; first < chunks; first += batch) {
            long firstChunk = first;
            int inBatch = (int) Math.min(batch, chunks - first);
            IntStream.range(0, inBatch).parallel().forEach(i -> {
                long chunk = firstChunk + i;
                fill(new SplittableRandom(mix(base + chunk * 0x9E3779B97F4A7C15L)), init, buffers[i],
                        elementsIn(chunk, n));
            });
            for (int i = 0; i < inBatch; i++) {
                out.write(buffers[i], 0, 2 * elementsIn(firstChunk + i, n));
            }
        }
    }

    private static int elementsIn(long chunk, long n) {
        return (int) Math.min(CHUNK_ELEMENTS, n - chunk * CHUNK_ELEMENTS);
    }

    private static void fill(SplittableRandom r, Init init, byte[] buf, int count) {
        double mean = init.mean();
        double std = init.std();
        for (int i = 0; i < count; i++) {
            short h = Half.fromFloat((float) (mean + std * r.nextGaussian()));
            buf[2 * i] = (byte) h;
            buf[2 * i + 1] = (byte) (h >>> 8);
        }
    }

    /** 64-bit FNV-1a of the name's UTF-8 bytes, mixed with the seed: stable across JVMs and platforms. */
    static long tensorSeed(long seed, String name) {
        long h = 0xcbf29ce484222325L;
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xff)) * 0x100000001b3L;
        }
        return mix(h ^ mix(seed));
    }

    /** The SplitMix64 finaliser: nearby inputs give unrelated seeds. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
