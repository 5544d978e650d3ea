package org.exl2spark.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.calib.Calibration;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.pipeline.JobDirectory.CalibrationSet;

/**
 * Pass 1, calibrate: one GPU-free task tokenizes the calibration data (the built-in set, or {@code -c}, which the
 * executors read like the model) with the model's tokenizer and writes {@code calib/measure} and {@code calib/quant}.
 * Skipped when both exist. The driver reads back only their row counts.
 */
final class CalibratePass {
    private CalibratePass() {
    }

    /** Returns {measurement rows, quantization rows}. */
    static int[] run(Stages stages, JobContext ctx, JobDirectory job, Tasks.CalibrationWork work, PrintStream log)
            throws IOException {
        Configuration conf = ctx.hadoopConf();
        if (!job.exists(job.calibration(CalibrationSet.MEASURE))
                || !job.exists(job.calibration(CalibrationSet.QUANTIZE))) {
            Tasks.CalibrationReport r = stages.runOnCpu("calibrate", "tokenize calibration data", List.of(work),
                    w -> tokenize(ctx, w)).get(0);
            log.printf(Locale.ROOT, "calibration: %d × %d tokens to measure, %d × %d to quantize%n", r.measureRows(),
                    r.measureLength(), r.quantRows(), r.quantLength());
        }
        return new int[] {CalibrationRows.read(job.calibration(CalibrationSet.MEASURE), conf).rows(),
                CalibrationRows.read(job.calibration(CalibrationSet.QUANTIZE), conf).rows()};
    }

    static Tasks.CalibrationReport tokenize(JobContext ctx, Tasks.CalibrationWork w) throws IOException {
        Configuration conf = ctx.hadoopConf();
        JobDirectory job = TaskResources.jobDirectory(ctx);
        try (Tokenizer tokenizer = Tokenizer.open(ctx.modelUri(), conf)) {
            TokenRows q;
            TokenRows m;
            if (w.dataset() == null) {
                q = Calibration.defaultRows(tokenizer, w.vocabSize(), w.rows(), w.length());
                m = Calibration.defaultRows(tokenizer, w.vocabSize(), w.measureRows(), w.measureLength());
            } else {
                q = Calibration.fromFile(w.dataset(), conf, tokenizer, w.rows(), w.length());
                m = Calibration.fromFile(w.dataset(), conf, tokenizer, w.measureRows(), w.measureLength());
            }
            CalibrationRows.write(job, job.calibration(CalibrationSet.MEASURE), m);
            CalibrationRows.write(job, job.calibration(CalibrationSet.QUANTIZE), q);
            return new Tasks.CalibrationReport(m.rows(), m.length(), q.rows(), q.length());
        }
    }
}
