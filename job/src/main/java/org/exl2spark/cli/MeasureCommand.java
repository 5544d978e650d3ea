package org.exl2spark.cli;

import picocli.CommandLine.Command;

/** {@code exl2 measure}: the conversion's first half, ending with measurement.json in the job directory (and -om). */
@Command(name = "measure", header = "Measures a model and writes measurement.json (ExLlamaV2's schema).",
        description = "Runs calibration, the reference forward and the measurement of every block; stops there."
                + " Use the result later with convert -m, as with ExLlamaV2.")
final class MeasureCommand extends ConvertCommand {
    @Override
    boolean measureOnly() {
        return true;
    }
}
