package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** conf/getGpusResources.sh against a stand-in nvidia-smi (CI has no GPU). */
class GpuDiscoveryScriptTest {

    private static String[] run(String fakeSmiOutput) throws Exception {
        Path bin = SharedData.scratch("fake-smi");
        if (fakeSmiOutput != null) {
            Path smi = bin.resolve("nvidia-smi");
            Files.writeString(smi, "#!/bin/sh\n[ \"$1 $2\" = \"--query-gpu=index --format=csv,noheader\" ] || exit 9\n"
                    + "printf '" + fakeSmiOutput + "'\n");
            Files.setPosixFilePermissions(smi, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        ProcessBuilder pb = new ProcessBuilder("/bin/bash", Launcher.ROOT.resolve("conf/getGpusResources.sh").toString());
        pb.environment().put("PATH", bin.toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        return new String[] {String.valueOf(p.waitFor()), out, err};
    }

    @Test
    void listsEveryGpu() throws Exception {
        String[] r = run("0\\n1\\n2\\n3\\n");
        assertEquals("0", r[0], r[2]);
        assertEquals("{\"name\":\"gpu\",\"addresses\":[\"0\",\"1\",\"2\",\"3\"]}\n", r[1]);
    }

    @Test
    void noGpusIsAnEmptyList() throws Exception {
        String[] r = run("");
        assertEquals("0", r[0], r[2]);
        assertEquals("{\"name\":\"gpu\",\"addresses\":[]}\n", r[1]);
    }

    @Test
    void noDriverFailsWithAMessage() throws Exception {
        String[] r = run(null);
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("nvidia-smi not found"), r[2]);
    }
}
