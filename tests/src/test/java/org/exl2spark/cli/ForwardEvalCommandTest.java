package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class ForwardEvalCommandTest {

    private static String[] run(int expectedExit, String... args) {
        EvalCommand cmd = new EvalCommand();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream progress = new ByteArrayOutputStream();
        cmd.out = new PrintStream(out, true, StandardCharsets.UTF_8);
        cmd.err = new PrintStream(progress, true, StandardCharsets.UTF_8);
        StringWriter errors = new StringWriter();
        int exit = new CommandLine(cmd).setErr(new PrintWriter(errors)).execute(args);
        assertEquals(expectedExit, exit, errors.toString());
        return new String[] {out.toString(StandardCharsets.UTF_8), progress.toString(StandardCharsets.UTF_8),
                errors.toString()};
    }

    @Test
    void printsPerplexityLastAndComparison() {
        String model = SharedData.tinyModel().toString();
        String[] r = run(0, "-m", model, "--text", SharedData.heldoutText().toString(), "--rows", "2", "--length", "64",
                "--compare", model);
        String[] lines = r[0].strip().split("\n");
        assertTrue(lines[lines.length - 1].matches("perplexity: \\d+\\.\\d{4}"), r[0]);
        assertTrue(r[0].contains("mean KL divergence vs reference: 0.000000"), r[0]);
        assertTrue(r[0].contains("top-1 agreement with reference: 1.0000"), r[0]);
        assertTrue(r[1].contains("layer 8/8") && r[1].contains("sha256"), r[1]);
    }

    @Test
    void withoutACudaDriverTheDeviceOptionFailsSayingWhy() {
        assumeFalse(Stream.of("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64",
                "/usr/local/nvidia/lib64").anyMatch(dir -> Files.exists(Path.of(dir, "libcuda.so.1"))),
                "this host has a CUDA driver");
        String[] r = run(1, "-m", SharedData.tinyModel().toString(), "--text", SharedData.heldoutText().toString(),
                "--rows", "1", "--length", "64", "--device", "0");
        assertTrue(r[2].contains("CUDA is not usable") && r[2].contains("libcuda.so.1"), r[2]);
    }

    @Test
    void shortTextIsAnErrorNamingTheFile() throws Exception {
        Path text = SharedData.scratch("eval-short").resolve("tiny-text.txt");
        Files.writeString(text, "Too short.");
        String[] r = run(1, "-m", SharedData.tinyModel().toString(), "--text", text.toString());
        assertTrue(r[2].contains("tiny-text.txt") && r[2].contains("too short"), r[2]);
    }
}
