package org.exl2spark.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.Storage;

/** Opens the weights of a model directory for a forward pass, picking the reader its config.json calls for. */
public final class WeightSources {
    private WeightSources() {
    }

    public static WeightSource open(String location, Configuration conf) throws IOException {
        Path dir = Storage.path(location);
        FileSystem fs = Storage.fileSystem(dir, conf);
        Path config = new Path(dir, ModelDirectory.CONFIG);
        if (fs.exists(config)) {
            JsonNode quantization = ModelDirectory.readJson(fs, config).get("quantization_config");
            if (quantization != null && !quantization.isNull()) {
                // EXL2 tensors need the EXL2 decoder behind a WeightSource; until it is wired in, say so plainly
                throw new ModelFormatException(config + ": a quantized model (quantization_config, method '"
                        + quantization.path("quant_method").asText("?") + "'); this build evaluates unquantized "
                        + "fp16/bf16/fp32 checkpoints only");
            }
        }
        ModelDirectory model = ModelDirectory.open(dir, conf);
        try {
            return new CheckpointWeights(model);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }
}
