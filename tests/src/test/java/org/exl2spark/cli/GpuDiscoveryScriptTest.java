package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import org.exl2spark.testing.ProjectFiles;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** conf/getGpusResources.sh against a stand-in nvidia-smi (CI has no GPU). */
class GpuDiscoveryScriptTest {
    private static final String THREE_GPUS = "0, GPU-aaaa-1111\\n1, GPU-bbbb-2222\\n2, GPU-cccc-3333\\n";

    private record Run(int exit, String out, String err) {
    }

    /** Runs the script with an nvidia-smi that prints {@code smiOutput} and exits {@code smiExit}; null: none. */
    private static Run run(String smiOutput, int smiExit, Map<String, String> env) throws Exception {
        Path bin = SharedData.scratch("fake-smi");
        if (smiOutput != null) {
            Path smi = bin.resolve("nvidia-smi");
            Files.writeString(smi, "#!/bin/sh\n[ \"$1 $2\" = \"--query-gpu=index,uuid --format=csv,noheader\" ] || exit 9\n"
                    + "printf '" + smiOutput + "'\nexit " + smiExit + "\n");
            Files.setPosixFilePermissions(smi, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        ProcessBuilder pb = new ProcessBuilder("/bin/bash", ProjectFiles.resolve("conf/getGpusResources.sh").toString());
        pb.environment().remove("CUDA_VISIBLE_DEVICES");
        pb.environment().put("PATH", bin + ":/usr/bin:/bin");
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Run(p.waitFor(), out, err);
    }

    private static String addresses(String... ordinals) {
        StringBuilder s = new StringBuilder("{\"name\":\"gpu\",\"addresses\":[");
        for (int i = 0; i < ordinals.length; i++) {
            s.append(i > 0 ? "," : "").append('"').append(ordinals[i]).append('"');
        }
        return s.append("]}\n").toString();
    }

    private static void assertFinds(String expected, String smiOutput, Map<String, String> env) throws Exception {
        Run r = run(smiOutput, 0, env);
        assertEquals(0, r.exit(), r.err());
        assertEquals(expected, r.out(), "with " + env);
    }

    @Test
    void listsEveryGpu() throws Exception {
        assertFinds(addresses("0", "1", "2"), THREE_GPUS, Map.of());
    }

    @Test
    void noGpusIsAnEmptyList() throws Exception {
        assertFinds(addresses(), "", Map.of());
        // what nvidia-smi does on a host whose driver finds no GPU
        Run r = run("No devices were found\\n", 6, Map.of());
        assertEquals(0, r.exit(), r.err());
        assertEquals(addresses(), r.out());
    }

    @Test
    void cudaVisibleDevicesNumbersTheListedGpusFromZero() throws Exception {
        assertFinds(addresses("0"), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "2"));
        assertFinds(addresses("0", "1"), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "2,0"));
        assertFinds(addresses("0", "1"), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "GPU-bbbb, 0"));
        assertFinds(addresses("0"), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "MIG-3f1e9a2c-0000-0000-0000-000000000000"));
        // CUDA stops at the first entry that names no GPU
        assertFinds(addresses("0"), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "1,7,2"));
        assertFinds(addresses(), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", ""));
        assertFinds(addresses(), THREE_GPUS, Map.of("CUDA_VISIBLE_DEVICES", "-1"));
    }

    @Test
    void noDriverOrABrokenOneFailsWithAMessage() throws Exception {
        Run none = run(null, 0, Map.of());
        assertEquals(1, none.exit());
        assertTrue(none.err().contains("nvidia-smi not found"), none.err());
        Run broken = run("Failed to initialize NVML: Driver/library version mismatch\\n", 18, Map.of());
        assertEquals(1, broken.exit());
        assertTrue(broken.err().contains("nvidia-smi failed") && broken.err().contains("version mismatch"),
                broken.err());
        assertEquals("", broken.out());
    }
}
