package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** {@code exl2 inspect} on an EXL2 model reports bits per weight instead of checking for unquantized weights. */
class InspectExl2CommandTest {

    @Test
    void goldenModelReportsItsBitrate() {
        Cli.Result r = Cli.run("inspect", SharedData.goldenExl2().toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("target 4.0 bpw, head bits 6"), r.out());
        // the optimizer's figure for this file (EXL2-SPEC E): 50,331,200 bits over 12,589,056 block weights
        assertTrue(r.out().contains("50,331,200 bits") && r.out().contains("3.9980 bits per block numel"), r.out());
        assertTrue(r.out().contains("model.layers.0.mlp.down_proj") && r.out().contains("lm_head"), r.out());
    }

    @Test
    void jsonIsRefusedForEXL2ModelsInOneLine() {
        Cli.Result r = Cli.run("inspect", "--json", SharedData.goldenExl2().toString());
        assertEquals(1, r.code());
        assertTrue(r.err().strip().startsWith("exl2 inspect: --json describes unquantized models"), r.err());
    }
}
