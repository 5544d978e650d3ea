package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.exl2spark.cli.Cli;
import org.exl2spark.testing.SharedData;

/**
 * Conversions the pipeline tests share. Every one is small: calibration from a few short rows of the held-out text
 * (the built-in set takes minutes), two rows per partition so that forward passes have several tasks. Synthetic
 * models and the baseline conversion of one of them are made once per test JVM.
 */
final class Conversions {
    private static final Map<Integer, Path> EXAMPLES = new HashMap<>();
    private static Path baseline;

    private Conversions() {
    }

    /** Calibration and partitioning options of every conversion in these tests. */
    static List<String> smallCalibration() {
        return List.of("-c", SharedData.heldoutText().toString(), "-r", "4", "-l", "128", "-mr", "2", "-ml", "128",
                "--rows-per-partition", "2");
    }

    /** {@code exl2 args}, in this JVM; the time it took is printed for the test report. */
    static Cli.Result exl2(List<String> args) {
        long start = System.nanoTime();
        Cli.Result r = Cli.run(args.toArray(String[]::new));
        System.out.printf(Locale.ROOT, "exl2 %s: exit %d in %.1f s%n", String.join(" ", args), r.code(),
                (System.nanoTime() - start) / 1e9);
        return r;
    }

    /** {@code exl2 convert} of {@code model} at {@code bits} with the small calibration, plus {@code extra}. */
    static List<String> convertArgs(Path model, Path job, Path output, String bits, String... extra) {
        List<String> args = new ArrayList<>(List.of("convert", "-i", model.toString(), "-o", job.toString(), "-cf",
                output.toString(), "-b", bits));
        args.addAll(smallCalibration());
        args.addAll(List.of(extra));
        return args;
    }

    /** The tiny synthetic Llama ({@code exl2 example --preset tiny}) with {@code layers} layers, made once. */
    static synchronized Path exampleModel(int layers) {
        return EXAMPLES.computeIfAbsent(layers, n -> {
            try {
                Path dir = SharedData.scratch("example-" + n + "-layers");
                exl2(List.of("example", dir.toString(), "--preset", "tiny", "--layers", Integer.toString(n))).ok();
                return dir;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    /** Arguments of the conversion that resume and determinism compare against: the 2-layer example at 4.0 bpw. */
    static List<String> exampleArgs(Path job, Path output, String master) {
        return convertArgs(exampleModel(2), job, output, "4.0", "--master", master);
    }

    /** Output of {@link #exampleArgs} with {@code local[2]}, uninterrupted, made once. */
    static synchronized Path exampleBaseline() throws IOException {
        if (baseline == null) {
            Path dir = SharedData.scratch("example-baseline");
            Path out = dir.resolve("out");
            exl2(exampleArgs(dir.resolve("job"), out, "local[2]")).ok();
            assertTrue(Files.isRegularFile(out.resolve("output.safetensors")), "baseline output in " + out);
            baseline = out;
        }
        return baseline;
    }

    /** sha256 of every file under {@code dir} (hidden ones included), by path relative to it. */
    static Map<String, String> fileHashes(Path dir) throws IOException {
        Map<String, String> hashes = new TreeMap<>();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
                hashes.put(dir.relativize(p).toString(), sha256(p));
            }
        }
        return hashes;
    }

    static String sha256(Path file) throws IOException {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        byte[] buf = new byte[1 << 20];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** Asserts two output trees hold the same files with the same bytes, naming the files that differ. */
    static void assertSameFiles(Path expected, Path actual, String what) throws IOException {
        Map<String, String> a = fileHashes(expected);
        Map<String, String> b = fileHashes(actual);
        assertEquals(a.keySet(), b.keySet(), what + ": file names");
        List<String> differing = new ArrayList<>();
        a.forEach((name, hash) -> {
            if (!hash.equals(b.get(name))) {
                differing.add(name);
            }
        });
        assertEquals(List.of(), differing, what + ": files whose bytes differ between " + expected + " and " + actual);
    }
}
