package org.exl2spark.testing;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Locations of the project's shared test data (../shared beside the checkout) and of the test build folder. */
public final class SharedData {
    private SharedData() {
    }

    public static Path root() {
        Path p = Paths.get(System.getProperty("exl2.shared.dir", "../shared")).toAbsolutePath().normalize();
        if (!Files.isDirectory(p.resolve("models"))) {
            throw new IllegalStateException("shared test data not found at " + p + " (set -Dexl2.shared.dir)");
        }
        return p;
    }

    public static Path tinyModel() {
        return root().resolve("models/tiny-llama-16m");
    }

    public static Path goldenExl2() {
        return root().resolve("golden/exllamav2-0.2.7-tiny-4.0bpw");
    }

    public static Path goldenMeasurement() {
        return root().resolve("golden/exllamav2-0.2.7-tiny-measurement.json");
    }

    public static Path heldoutText() {
        return root().resolve("eval/heldout.txt");
    }

    /** The test module's build folder (tests/target), where all test files go. */
    public static Path targetDir() {
        return Paths.get(System.getProperty("exl2.target.dir", "target")).toAbsolutePath().normalize();
    }

    /** A fresh folder under the test build directory. */
    public static Path scratch(String name) throws java.io.IOException {
        Path base = targetDir().resolve("scratch");
        Files.createDirectories(base);
        return Files.createTempDirectory(base, name + "-");
    }
}
