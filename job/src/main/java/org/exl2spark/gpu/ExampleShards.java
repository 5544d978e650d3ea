package org.exl2spark.gpu;

import java.io.IOException;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.Storage;
import org.exl2spark.model.CheckpointWeights;
import org.exl2spark.model.WeightSource;

/** An example model's safetensors for the GPU benchmarks, read as tasks read a checkpoint. */
final class ExampleShards {
    private ExampleShards() {
    }

    /**
     * {@link CheckpointWeights} of the model in {@code location}; when nothing is there, the example is written there
     * first as {@code exl2 example} writes it (the preset's shard size), and the time that took printed.
     */
    static WeightSource open(ExampleModel example, String location) throws IOException {
        Configuration conf = new Configuration();
        Path dir = Storage.path(location);
        FileSystem fs = Storage.outputFileSystem(dir, conf);
        if (!fs.exists(dir)) {
            long t0 = System.nanoTime();
            ExampleModel.Written w = example.write(fs, dir, (long) example.preset().defaultShardMegabytes() << 20);
            System.out.printf(Locale.ROOT, "wrote the %s example (%d layers) to %s: %d shards, %.2f GB in %.1f s%n",
                    example.preset(), example.layers(), w.dir(), w.shards(), w.bytes() / 1e9,
                    (System.nanoTime() - t0) / 1e9);
        }
        return new CheckpointWeights(ModelDirectory.open(location, conf));
    }
}
