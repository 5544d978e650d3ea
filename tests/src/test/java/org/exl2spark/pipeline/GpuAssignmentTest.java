package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.OptionalInt;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

/** How a task's GPU is read from its resources (on a real cluster: StandaloneClusterTest). */
class GpuAssignmentTest {

    private static Map<String, ResourceInformation> gpus(String... addresses) {
        return Map.of("gpu", new ResourceInformation("gpu", addresses));
    }

    @Test
    void theFirstAddressIsTheDevice() {
        assertEquals(OptionalInt.of(3), GpuAssignment.device(gpus("3")));
        assertEquals(OptionalInt.of(1), GpuAssignment.device(gpus("1", "2")));
    }

    @Test
    void noGpuResourceIsNoDevice() {
        assertEquals(OptionalInt.empty(), GpuAssignment.device(Map.of()));
        assertEquals(OptionalInt.empty(), GpuAssignment.device(gpus()));
        assertEquals(OptionalInt.empty(), GpuAssignment.device(
                Map.of("fpga", new ResourceInformation("fpga", new String[] {"0"}))));
    }

    @Test
    void outsideATaskThereIsNoDevice() {
        assertEquals(OptionalInt.empty(), GpuAssignment.currentDevice());
    }

    @Test
    void anAddressThatIsNotAnOrdinalIsAnError() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> GpuAssignment.device(gpus("GPU-8f3c2a")));
        assertTrue(e.getMessage().contains("'GPU-8f3c2a'") && e.getMessage().contains("getGpusResources.sh"),
                e.getMessage());
        assertThrows(IllegalStateException.class, () -> GpuAssignment.device(gpus("-1")));
    }
}
