package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.model.ModelArchitecture;

/**
 * Pass 1a: before any expensive work, every expected tensor is present with the architecture's shape and every
 * weight is finite (one task per shard, reading each tensor once). A NaN or Inf is an error naming the tensor.
 */
final class ValidatePass {
    private ValidatePass() {
    }

    static void checkShapes(ModelDirectory model, ModelArchitecture arch) throws IOException {
        for (Map.Entry<String, long[]> e : arch.expectedTensors().entrySet()) {
            if (!model.contains(e.getKey())) {
                throw new ModelFormatException(model.path() + ": missing tensor '" + e.getKey() + "'");
            }
            TensorInfo t = model.tensor(e.getKey());
            if (!java.util.Arrays.equals(t.shape(), e.getValue())) {
                throw new ModelFormatException(model.path() + ": tensor '" + e.getKey() + "' is " + t.shapeString()
                        + ", the architecture needs " + java.util.Arrays.toString(e.getValue()));
            }
        }
    }

    static void checkFinite(Stages stages, JobContext ctx, ModelDirectory model, PrintStream log) throws IOException {
        List<String> shards = new ArrayList<>(model.shards().keySet());
        List<String> problems = stages.runOnCpu("validate", "check weights are finite (" + shards.size() + " shards)",
                shards, shard -> firstNonFinite(ctx, shard));
        for (String p : problems) {
            if (!p.isEmpty()) {
                throw new ModelFormatException(p);
            }
        }
    }

    /** The first non-finite value of a shard, as a message naming file and tensor; empty if all are finite. */
    static String firstNonFinite(JobContext ctx, String shard) throws IOException {
        try (ModelDirectory model = ModelDirectory.open(ctx.modelUri(), ctx.hadoopConf())) {
            SafetensorsFile f = model.shards().get(shard);
            for (TensorInfo t : f.tensors().values()) {
                switch (t.dtype()) {
                    case F16, BF16, F32, F64 -> {
                    }
                    default -> {
                        continue;
                    }
                }
                float[] v = f.readFloats(t);
                for (int i = 0; i < v.length; i++) {
                    if (!Float.isFinite(v[i])) {
                        return f.path() + ": tensor '" + t.name() + "' holds " + v[i] + " at element " + i
                                + "; a model with NaN or Inf weights cannot be quantized";
                    }
                }
            }
        }
        return "";
    }
}
