package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.Backend;
import org.exl2spark.model.LinearInputObserver;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.Transformer;
import org.exl2spark.model.Transformer.LayerWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.pipeline.JobDirectory.CalibrationSet;

/**
 * Pass 2, reference forward: reads the measurement rows' states entering layer L (layer 0: their embeddings),
 * maps one task per row partition running the unquantized layer, writes {@code ref/layer-(L+1)/part-P}. Layers run
 * in order; the states of the last layer's output are not needed by measurement and are not computed.
 */
final class ReferencePass {
    private ReferencePass() {
    }

    static void run(Stages stages, JobContext ctx, JobDirectory job, ModelArchitecture arch, int rows, PrintStream log)
            throws IOException {
        List<Tasks.Partition> parts = Tasks.Partition.of(rows, ctx.rowsPerPartition());
        for (int layer = 0; layer + 1 < arch.numLayers(); layer++) {
            List<Tasks.PartitionWork> todo = new ArrayList<>();
            for (Tasks.Partition p : parts) {
                if (!job.exists(job.referenceStates(layer + 1, p.index()))) {
                    todo.add(new Tasks.PartitionWork(layer, p));
                }
            }
            if (todo.size() < parts.size()) {
                log.printf("reference forward layer %d: %d of %d partitions already done, skipped%n", layer,
                        parts.size() - todo.size(), parts.size());
            }
            stages.run("reference", "reference forward layer " + layer, todo, w -> forward(ctx, w));
        }
    }

    static Integer forward(JobContext ctx, Tasks.PartitionWork w) throws IOException {
        JobDirectory job = TaskResources.jobDirectory(ctx);
        Configuration conf = ctx.hadoopConf();
        WeightSource weights = TaskResources.sourceWeights(ctx);
        try (Backend backend = TaskResources.backend()) {
            Transformer t = new Transformer(weights.architecture(), backend);
            BlockRunner runner = new BlockRunner(t, ctx.rowsPerChunk());
            HiddenStates in = StateStore.input(t, weights, job.calibration(CalibrationSet.MEASURE),
                    job.referenceStates(w.layer(), w.partition().index()), w.layer(), w.partition(), conf);
            try (LayerWeights layer = t.loadLayer(weights, w.layer())) {
                HiddenStates mid = runner.forward(in, layer.attention(), LinearInputObserver.NONE);
                runner.forward(mid, layer.mlp(), LinearInputObserver.NONE)
                        .write(job.fileSystem(), job.referenceStates(w.layer() + 1, w.partition().index()));
            }
        }
        return w.partition().rows();
    }
}
