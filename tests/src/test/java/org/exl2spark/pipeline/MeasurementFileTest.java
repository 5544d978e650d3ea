package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.exl2spark.cli.Cli;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.Exl2ModelInfo;
import org.exl2spark.quant.Measurement;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** {@code -m} (ExLlamaV2's measurement.json drives the conversion), {@code -om}, and {@code exl2 measure}. */
class MeasurementFileTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void exllamaV2sMeasurementDrivesAConversionWithoutMeasuring() throws IOException {
        Path dir = SharedData.scratch("given-measurement");
        Path job = dir.resolve("job");
        Path cf = dir.resolve("out");
        Path copy = dir.resolve("copy/measurement.json");
        Cli.Result r = Conversions.exl2(Conversions.convertArgs(SharedData.tinyModel(), job, cf, "4.0", "-m",
                SharedData.goldenMeasurement().toString(), "-om", copy.toString())).ok();
        assertEquals(List.of(), files(job.resolve("meas")), "no block was measured");
        assertFalse(Files.exists(job.resolve("ref")), "no reference forward for a measurement");
        assertFalse(Files.exists(job.resolve("measurement.json")), "the job measured nothing");
        assertFalse(r.out().contains("measured layer"), r.out());
        try (ModelDirectory out = ModelDirectory.open(cf.toString(), new org.apache.hadoop.conf.Configuration())) {
            double achieved = Exl2ModelInfo.of(out).budgetBitsPerWeight();
            assertTrue(achieved <= 4.0 && achieved > 3.9, "achieved " + achieved + " bpw");
        }

        // -om: ExLlamaV2's file again, in its own schema and layout (byte for byte), and it parses back
        assertEquals(JSON.readTree(SharedData.goldenMeasurement().toFile()), JSON.readTree(copy.toFile()),
                "-om of ExLlamaV2's measurement");
        assertArrayEquals(Files.readAllBytes(SharedData.goldenMeasurement()), Files.readAllBytes(copy),
                "-om writes ExLlamaV2's layout");
        Measurement m = Measurement.parse(Files.readAllBytes(copy), copy.toString());
        m.checkMatches(architecture(SharedData.tinyModel()), copy.toString());
        assertTrue(r.out().contains("measurement written to"), r.out());
    }

    @Test
    void measureAloneStopsAfterTheMeasurement() throws IOException {
        Path model = Conversions.exampleModel(1);
        Path dir = SharedData.scratch("measure-only");
        Path job = dir.resolve("job");
        Path cf = dir.resolve("out");
        Path copy = dir.resolve("measurement-copy.json");
        List<String> args = new ArrayList<>(Conversions.convertArgs(model, job, cf, "4.0", "-om", copy.toString()));
        args.set(0, "measure");
        Cli.Result r = Conversions.exl2(args).ok();
        Path file = job.resolve("measurement.json");
        Measurement m = Measurement.parse(Files.readAllBytes(file), file.toString());
        m.checkMatches(architecture(model), file.toString());
        assertEquals(2, files(job.resolve("meas")).size(), "one record per block");
        assertArrayEquals(Files.readAllBytes(file), Files.readAllBytes(copy), "-om is the job's measurement.json");
        assertFalse(Files.exists(cf), "measure publishes no model");
        assertFalse(Files.exists(job.resolve("q")), "measure quantizes nothing");
        assertFalse(r.out().contains("model written"), r.out());
    }

    private static ModelArchitecture architecture(Path model) throws IOException {
        return ModelArchitecture.fromConfig(Files.readAllBytes(model.resolve("config.json")), "config.json");
    }

    private static List<String> files(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
