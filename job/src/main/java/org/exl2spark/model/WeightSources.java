package org.exl2spark.model;

import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.quant.Exl2ModelInfo;
import org.exl2spark.quant.TensorSource;

/** Opens the weights of a model directory for a forward pass: EXL2 tensors decoded, anything else read as stored. */
public final class WeightSources {
    private WeightSources() {
    }

    public static WeightSource open(String location, Configuration conf) throws IOException {
        ModelDirectory model = ModelDirectory.open(location, conf);
        try {
            TensorSource tensors = TensorSource.of(model);
            if (Exl2ModelInfo.isExl2(model.config(), tensors)) {
                return new Exl2Weights(model.architecture(), tensors, model);
            }
            return new CheckpointWeights(model);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }
}
