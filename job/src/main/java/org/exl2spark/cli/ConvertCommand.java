package org.exl2spark.cli;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.spark.api.java.JavaSparkContext;
import org.exl2spark.pipeline.ConvertJob;
import org.exl2spark.pipeline.ConvertOptions;
import org.exl2spark.pipeline.SparkSessions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code exl2 convert}: a whole conversion with ExLlamaV2 convert.py's flags (short and long names), several target
 * bitrates in one run, in an embedded local Spark or on the cluster spark-submit gives.
 */
@Command(name = "convert", header = "Converts a Hugging Face model to EXL2 at one or more bitrates.",
        description = {"Measures the model (or takes -m), picks a setting per block for each target bitrate, quantizes"
                + " layer by layer with GPTQ and writes an EXL2 model ExLlamaV2 loads. All state lives in the job"
                + " directory (-o); rerunning the same command resumes where it stopped."})
public class ConvertCommand implements Callable<Integer> {
    @Option(names = {"-i", "--in_dir", "--in-dir"}, required = true, paramLabel = "<model-uri>",
            description = "Input: a Hugging Face model directory (local path, file:, hdfs://, s3a://).")
    String input;

    @Option(names = {"-o", "--out_dir", "--out-dir"}, required = true, paramLabel = "<job-dir>",
            description = "Job directory for all intermediate work (resumable).")
    String jobDirectory;

    @Option(names = {"-cf", "--compile_full", "--compile-full"}, paramLabel = "<output-dir>",
            description = "Output model directory; with several bitrates it holds one <bpw>bpw folder each.")
    String output;

    @Option(names = {"-b", "--bits"}, split = ",", paramLabel = "<bpw>",
            description = "Target bits per weight, e.g. 4.0 or 4.0,3.0,2.5.")
    List<Double> targets = new ArrayList<>();

    @Option(names = {"-hb", "--head_bits", "--head-bits"}, defaultValue = "6", paramLabel = "<bits>",
            description = "Bits of the output head: 2, 3, 4, 5, 6 or 8 (default ${DEFAULT-VALUE}).")
    int headBits;

    @Option(names = {"-m", "--measurement"}, paramLabel = "<measurement.json>",
            description = "Use this measurement (ours or ExLlamaV2's) instead of measuring.")
    String measurementIn;

    @Option(names = {"-om", "--output_measurement", "--output-measurement"}, paramLabel = "<measurement.json>",
            description = "Also write the measurement here.")
    String measurementOut;

    @Option(names = {"-c", "--cal_dataset", "--cal-dataset"}, paramLabel = "<file>",
            description = "Calibration data: a .parquet file (ExLlamaV2's semantics) or a UTF-8 text file."
                    + " Default: the built-in set (19 rows to measure, 115 to quantize).")
    String calibration;

    @Option(names = {"-ss", "--shard_size", "--shard-size"}, defaultValue = "8192", paramLabel = "<MB>",
            description = "Output shard size in MB (default ${DEFAULT-VALUE}).")
    int shardSizeMb;

    @Option(names = {"-nr", "--no_resume", "--no-resume"},
            description = "Start over: delete the job directory's earlier work first.")
    boolean noResume;

    @Option(names = "--master", paramLabel = "<url>",
            description = "Spark master (default: local[*], or what spark-submit gives).")
    String master;

    @Mixin
    CalibrationShape shape;

    @Mixin
    StorageOptions storage;

    /** Whether this run stops after the measurement. */
    boolean measureOnly() {
        return false;
    }

    @Override
    public Integer call() throws Exception {
        PrintStream log = System.out;
        ConvertOptions options = new ConvertOptions(input, jobDirectory, output, targets, headBits, measurementIn,
                measurementOut, calibration, shape.rows, shape.length, shape.measurementRows,
                shape.measurementLength, shardSizeMb, noResume, measureOnly(), shape.rowsPerPartition,
                StorageOptions.hadoopSettings(storage.conf));
        ConvertJob job = new ConvertJob(options, log);
        Map<String, String> spark = new LinkedHashMap<>();
        storage.conf.forEach((k, v) -> {
            if (k.startsWith("spark.")) {
                spark.put(k, v);
            } else {
                spark.put("spark.hadoop." + k, v);
            }
        });
        JavaSparkContext sc = SparkSessions.start("exl2 " + (measureOnly() ? "measure" : "convert"), master, spark);
        try {
            job.run(sc);
        } finally {
            sc.stop();
        }
        return 0;
    }
}
