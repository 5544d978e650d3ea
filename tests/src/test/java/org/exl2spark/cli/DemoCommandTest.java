package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The README's first command: a real conversion of an example model, end to end, with no input files. */
class DemoCommandTest {

    @Test
    void demoConvertsTheExampleModelToExl2() {
        long start = System.nanoTime();
        Cli.Result r = Cli.run("demo");
        System.out.printf("demo: %.1f s%n", (System.nanoTime() - start) / 1e9);
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("4.0bpw: model written to"), r.out());
        assertTrue(r.out().contains("EXL2 model") && r.out().contains("target 4.0 bpw, head bits 6"), r.out());
        assertTrue(r.out().contains("achieved"), r.out());
    }
}
