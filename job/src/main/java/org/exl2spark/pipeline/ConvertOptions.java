package org.exl2spark.pipeline;

import java.util.List;
import java.util.Map;

/**
 * What a conversion was asked to do; the flags of ExLlamaV2's convert.py, plus several targets in one run.
 *
 * @param input           the Hugging Face model directory (-i)
 * @param jobDirectory    where all intermediate state lives (-o)
 * @param output          compiled model directory (-cf); with several targets it holds one folder per target
 * @param targets         target bits per weight (-b), at least one
 * @param headBits        bits of the output head (-hb)
 * @param measurementIn   an existing measurement.json to use instead of measuring (-m), or null
 * @param measurementOut  where to copy the measurement (-om), or null
 * @param calibration     a parquet or text file (-c), or null for the built-in set
 * @param rows            quantization rows (-r) for a user file
 * @param length          tokens per quantization row (-l)
 * @param measureRows     measurement rows (-mr) for a user file
 * @param measureLength   tokens per measurement row (-ml)
 * @param shardSizeMb     output shard size in MB (-ss)
 * @param noResume        start over, discarding the job directory's previous work (-nr)
 * @param measureOnly     stop after measurement.json
 * @param rowsPerPartition calibration rows per state file and per forward task
 * @param hadoopConf      Hadoop settings (e.g. fs.s3a.*) passed to every task
 */
public record ConvertOptions(String input, String jobDirectory, String output, List<Double> targets, int headBits,
        String measurementIn, String measurementOut, String calibration, int rows, int length, int measureRows,
        int measureLength, int shardSizeMb, boolean noResume, boolean measureOnly, int rowsPerPartition,
        Map<String, String> hadoopConf) {

    public ConvertOptions {
        targets = List.copyOf(targets);
        hadoopConf = Map.copyOf(hadoopConf);
    }
}
