package org.exl2spark.gpu;

import java.io.IOException;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.example.ExampleWeights;
import org.exl2spark.model.WeightSource;
import org.exl2spark.kernels.CudaRuntime;
import org.exl2spark.kernels.CudaStatus;
import org.exl2spark.kernels.GpuContext;

/**
 * The options of the one-layer GPU benchmarks ({@link LayerBenchmark}, {@link GptqStepsBenchmark}): the example
 * preset, the task's device-memory budget, ExLlamaV2's default calibration (16 × 2048 tokens measured, 100 × 2048
 * quantized), rows per forward partition, the layer, and where the weights come from: the preset's safetensors in
 * {@code --model DIR} (written there first when DIR does not exist), or drawn in memory without it.
 */
record LayerOptions(String preset, long budget, int measurementRows, int rows, int length, int rowsPerPartition,
        int layer, String model) {

    static LayerOptions parse(String[] args) {
        String preset = "qwen1.5-110b";
        long budget = 24_000_000_000L;
        int measurementRows = 16;
        int rows = 100;
        int length = 2048;
        int rowsPerPartition = 4;
        int layer = 0;
        String model = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--preset" -> preset = args[++i];
                case "--budget" -> budget = Long.parseLong(args[++i]);
                case "--measurement-rows" -> measurementRows = Integer.parseInt(args[++i]);
                case "--rows" -> rows = Integer.parseInt(args[++i]);
                case "--length" -> length = Integer.parseInt(args[++i]);
                case "--rows-per-partition" -> rowsPerPartition = Integer.parseInt(args[++i]);
                case "--layer" -> layer = Integer.parseInt(args[++i]);
                case "--model" -> model = args[++i];
                default -> throw new IllegalArgumentException("unknown option " + args[i] + " (--preset P --budget"
                        + " BYTES --measurement-rows N --rows N --length T --rows-per-partition N --layer L"
                        + " --model DIR)");
            }
        }
        return new LayerOptions(preset, budget, measurementRows, rows, length, rowsPerPartition, layer, model);
    }

    /** Device 0, or exit status 2 with the reason when this machine has no usable CUDA. */
    static GpuContext deviceOrExit() {
        CudaStatus status = CudaRuntime.status();
        if (!status.available()) {
            System.out.println("no CUDA: " + status.reason());
            System.exit(2);
        }
        return GpuContext.forDevice(0);
    }

    /**
     * The preset's weights up to the benchmarked layer (seed 0): with {@code --model DIR}, its safetensors read by the
     * tasks' {@code CheckpointWeights}, DIR first written as {@code exl2 example} writes it when it does not exist;
     * without, the same values drawn in memory ({@link ExampleWeights}).
     */
    WeightSource weights() throws IOException {
        ExampleModel example = ExampleModel.of(ExamplePreset.byName(preset), layer + 1, 0);
        // Hadoop (the tasks' file access) is needed, and loaded, only with --model
        return model == null ? new ExampleWeights(example) : ExampleShards.open(example, model);
    }
}
