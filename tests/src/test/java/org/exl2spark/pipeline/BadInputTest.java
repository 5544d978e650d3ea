package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.cli.Cli;
import org.exl2spark.io.DType;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Bad input fails before expensive work with one line on stderr naming the file, tensor or option, exit code 1,
 * and nothing published at {@code -cf}.
 */
class BadInputTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String NAN_TENSOR = "model.layers.0.mlp.down_proj.weight";

    /** Runs a conversion expected to fail and returns its one error line, checking -cf did not appear. */
    private static String fails(List<String> args, Path cf) {
        Cli.Result r = Conversions.exl2(args);
        String line = r.oneLineError(1, "exl2 convert");
        System.out.println("error: " + line);
        assertFalse(Files.exists(cf), "nothing may be published at " + cf + "; error was: " + line);
        return line;
    }

    private static List<String> withOption(List<String> args, String option, String value) {
        List<String> out = new ArrayList<>(args);
        out.set(out.indexOf(option) + 1, value);
        return out;
    }

    @Test
    void tooFewCalibrationTokensNamesTheFile() throws IOException {
        Path dir = SharedData.scratch("few-tokens");
        Path text = dir.resolve("three-words.txt");
        Files.writeString(text, "Only three words.\n");
        Path cf = dir.resolve("out");
        List<String> args = Conversions.convertArgs(Conversions.exampleModel(1), dir.resolve("job"), cf, "4.0");
        args = withOption(withOption(args, "-c", text.toString()), "-r", "100");
        String line = fails(args, cf);
        assertTrue(line.contains("three-words.txt") && line.contains("100 rows") && line.contains("tokens"), line);
    }

    @Test
    void nanWeightNamesTheTensor() throws IOException {
        Path dir = SharedData.scratch("nan-weight");
        Path model = copyModel(Conversions.exampleModel(1), dir.resolve("model"));
        Path shard = null;
        TensorInfo tensor = null;
        try (Stream<Path> files = Files.list(model)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".safetensors"))::iterator) {
                try (SafetensorsFile s = SafetensorsFile.open(f.toString(), new Configuration())) {
                    if (s.contains(NAN_TENSOR)) {
                        shard = f;
                        tensor = s.tensor(NAN_TENSOR);
                    }
                }
            }
        }
        assertEquals(DType.F16, tensor.dtype());
        long element = 1000;
        try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.WRITE)) {
            ByteBuffer nan = ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort((short) 0x7e00).flip();
            ch.write(nan, tensor.fileOffset() + 2 * element);
        }
        try (SafetensorsFile s = SafetensorsFile.open(shard.toString(), new Configuration())) {
            assertTrue(Float.isNaN(s.readFloats(NAN_TENSOR)[(int) element]), "the NaN is where the test put it");
        }
        Path cf = dir.resolve("out");
        String line = fails(Conversions.convertArgs(model, dir.resolve("job"), cf, "4.0"), cf);
        assertTrue(line.contains(NAN_TENSOR) && line.contains("NaN"), line);
    }

    @ParameterizedTest
    @ValueSource(strings = {"1.0", "9.5"})
    void unreachableTargetSaysTheReachableRange(String bpw) throws IOException {
        Path dir = SharedData.scratch("unreachable-" + bpw);
        Path cf = dir.resolve("out");
        String line = fails(Conversions.convertArgs(SharedData.tinyModel(), dir.resolve("job"), cf, bpw, "-m",
                SharedData.goldenMeasurement().toString()), cf);
        assertTrue(line.contains(bpw + " bpw"), line);
        assertTrue(Pattern.compile("\\d+\\.\\d+ to \\d+\\.\\d+ bpw").matcher(line).find(), "a range: " + line);
    }

    @Test
    void unsupportedArchitectureNamesItAndTheConfig() throws IOException {
        Path dir = SharedData.scratch("gpt2");
        Path model = copyModel(Conversions.exampleModel(1), dir.resolve("model"));
        ObjectNode config = (ObjectNode) JSON.readTree(model.resolve("config.json").toFile());
        config.putArray("architectures").add("GPT2LMHeadModel");
        Files.write(model.resolve("config.json"), JSON.writeValueAsBytes(config));
        Path cf = dir.resolve("out");
        String line = fails(Conversions.convertArgs(model, dir.resolve("job"), cf, "4.0"), cf);
        assertTrue(line.contains("GPT2LMHeadModel") && line.contains("config.json"), line);
    }

    @Test
    void measurementOfAnotherModelNamesTheFile() throws IOException {
        Path dir = SharedData.scratch("other-measurement");
        Path cf = dir.resolve("out");
        String line = fails(Conversions.convertArgs(Conversions.exampleModel(1), dir.resolve("job"), cf, "4.0", "-m",
                SharedData.goldenMeasurement().toString()), cf);
        assertTrue(line.contains(SharedData.goldenMeasurement().getFileName().toString()), line);
        assertTrue(line.contains("another model"), line);
    }

    @Test
    void outputHoldingAnotherModelIsLeftAlone() throws IOException {
        Path dir = SharedData.scratch("occupied-output");
        Path cf = copyModel(SharedData.goldenExl2(), dir.resolve("out"));
        Map<String, String> before = Conversions.fileHashes(cf);
        Cli.Result r = Conversions.exl2(Conversions.convertArgs(SharedData.tinyModel(), dir.resolve("job"), cf, "4.0",
                "-m", SharedData.goldenMeasurement().toString()));
        String line = r.oneLineError(1, "exl2 convert");
        System.out.println("error: " + line);
        assertTrue(line.contains(cf.toString()) && line.contains("already holds"), line);
        assertEquals(before, Conversions.fileHashes(cf), "the occupied output directory is unchanged");
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(List.of("job", "out"), siblings.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no staging folder left beside the output");
        }
    }

    /** A copy of a model's visible files (a Hadoop .crc would no longer match an edited file). */
    private static Path copyModel(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(f) && !f.getFileName().toString().startsWith(".")) {
                    Files.copy(f, to.resolve(f.getFileName()));
                }
            }
        }
        return to;
    }
}
