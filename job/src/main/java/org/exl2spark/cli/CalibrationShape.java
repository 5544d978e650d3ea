package org.exl2spark.cli;

import picocli.CommandLine.Option;

/**
 * The calibration's row counts and lengths and the forward partitioning, with convert.py's flag names: shared by
 * {@code convert}/{@code measure} and {@code plan}, so a plan takes the same flags as the run it describes.
 */
public class CalibrationShape {
    @Option(names = {"-r", "--dataset_rows", "--dataset-rows"}, defaultValue = "100", paramLabel = "<n>",
            description = "Rows to quantize with, for -c (default ${DEFAULT-VALUE}).")
    int rows;

    @Option(names = {"-l", "--length"}, defaultValue = "2048", paramLabel = "<tokens>",
            description = "Tokens per quantization row (default ${DEFAULT-VALUE}).")
    int length;

    @Option(names = {"-mr", "--measurement_rows", "--measurement-rows"}, defaultValue = "16", paramLabel = "<n>",
            description = "Rows to measure with, for -c (default ${DEFAULT-VALUE}).")
    int measurementRows;

    @Option(names = {"-ml", "--measurement_length", "--measurement-length"}, defaultValue = "2048",
            paramLabel = "<tokens>", description = "Tokens per measurement row (default ${DEFAULT-VALUE}).")
    int measurementLength;

    @Option(names = "--rows-per-partition", defaultValue = "4", paramLabel = "<n>",
            description = "Calibration rows per state file and forward task (default ${DEFAULT-VALUE}).")
    int rowsPerPartition;
}
