package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.hadoop.conf.Configuration;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

class ModelDirectoryLocalTest {

    @Test
    void tinyModelMatchesItsArchitecture() throws Exception {
        try (ModelDirectory m = ModelDirectory.open(SharedData.tinyModel().toString(), new Configuration())) {
            ModelArchitecture a = m.architecture();
            assertEquals(ModelArchitecture.Family.LLAMA, a.family());
            assertEquals(8, a.numLayers());
            assertEquals(15_735_168L, a.parameterCount());
            assertEquals(3, m.shards().size());
            assertEquals(a.expectedTensors().keySet(), m.tensorLocations().keySet());
            for (var e : a.expectedTensors().entrySet()) {
                assertArrayEquals(e.getValue(), m.tensor(e.getKey()).shape(), e.getKey());
                assertEquals(DType.F16, m.tensor(e.getKey()).dtype());
            }
            float[] norm = m.readFloats("model.norm.weight");
            assertEquals(384, norm.length);
        }
    }
}
