package org.exl2spark.pipeline;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;

/** Token rows in the job directory: one I32 tensor {@code input_ids [rows, length]}. */
final class CalibrationRows {
    static final String TENSOR = "input_ids";

    private CalibrationRows() {
    }

    static void write(JobDirectory job, Path target, TokenRows rows) throws IOException {
        TensorSpec spec = new TensorSpec(TENSOR, DType.I32, new long[] {rows.rows(), rows.length()});
        SafetensorsWriter.writeFile(job.fileSystem(), target, List.of(spec), Map.of(), (t, out) -> {
            ByteBuffer b = ByteBuffer.allocate(rows.ids().length * 4).order(ByteOrder.LITTLE_ENDIAN);
            b.asIntBuffer().put(rows.ids());
            out.write(b.array());
        });
    }

    static TokenRows read(Path file, Configuration conf) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file, conf)) {
            TensorInfo t = f.tensor(TENSOR);
            if (t.dtype() != DType.I32 || t.rank() != 2) {
                throw new ModelFormatException(file + ": input_ids must be I32 [rows, length]");
            }
            int[] ids = new int[(int) t.numElements()];
            f.readTensor(t).asIntBuffer().get(ids);
            return new TokenRows((int) t.dim(0), (int) t.dim(1), ids);
        }
    }
}
