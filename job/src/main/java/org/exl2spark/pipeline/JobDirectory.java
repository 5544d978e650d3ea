package org.exl2spark.pipeline;

import java.io.IOException;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.Storage;
import org.exl2spark.model.BlockSpec;

/**
 * The job directory ({@code -o}): all state of a conversion, on any Hadoop file system. Every file in it is written
 * atomically, so a file that exists is complete and resume is "skip what exists". Layout:
 * <pre>
 * job.json                                parameters + model fingerprint
 * calib/measure.safetensors               measurement token rows  input_ids [rows, length] I32
 * calib/quant.safetensors                 quantization token rows
 * ref/layer-LLL/part-PPPPP.safetensors    reference-path states entering layer LLL (measurement rows), F16
 * meas/layer-LLL.&lt;block&gt;.json             measured candidates of one block
 * measurement.json                        all blocks, ExLlamaV2's schema
 * q/&lt;bpw&gt;/strategy.json                   chosen candidate per block
 * q/&lt;bpw&gt;/layer-LLL/&lt;stage&gt;-PPPPP.safetensors   quantized-path states (stage "in" enters the layer, "mid" the MLP)
 * q/&lt;bpw&gt;/frag/&lt;module&gt;.safetensors      EXL2 tensors of one quantized module
 * q/&lt;bpw&gt;/layer-LLL.&lt;block&gt;.json         per-block quantization report
 * </pre>
 * Layer 0's states are the token embeddings and are recomputed, not stored.
 */
public final class JobDirectory {
    private final Path root;
    private final FileSystem fs;

    public JobDirectory(Path root, Configuration conf) throws IOException {
        this.root = root;
        this.fs = Storage.outputFileSystem(root, conf);
    }

    public static JobDirectory open(String location, Configuration conf) throws IOException {
        return new JobDirectory(Storage.path(location), conf);
    }

    public Path root() {
        return root;
    }

    public FileSystem fileSystem() {
        return fs;
    }

    /** "4.0bpw", "2.5bpw", "3.25bpw": the folder name of one target bitrate, as ExLlamaV2 users name them. */
    public static String bitrateLabel(double bpw) {
        BigDecimal d = new BigDecimal(Double.toString(bpw)).stripTrailingZeros();
        if (d.scale() <= 0) {
            d = d.setScale(1);
        }
        return d.toPlainString() + "bpw";
    }

    public Path jobJson() {
        return new Path(root, "job.json");
    }

    /** Exists once every weight of the model was checked finite. */
    public Path validated() {
        return new Path(root, "validated");
    }

    public Path calibration(CalibrationSet which) {
        return new Path(root, "calib/" + which.fileName());
    }

    public Path referenceStates(int layer, int part) {
        return new Path(root, String.format("ref/layer-%03d/part-%05d.safetensors", layer, part));
    }

    public Path measurementRecord(BlockSpec block) {
        return new Path(root, String.format("meas/layer-%03d.%s.json", block.layer(), block.kind().hfName()));
    }

    public Path measurementJson() {
        return new Path(root, "measurement.json");
    }

    public Path target(double bpw) {
        return new Path(root, "q/" + bitrateLabel(bpw));
    }

    public Path strategy(double bpw) {
        return new Path(target(bpw), "strategy.json");
    }

    public Path quantizedStates(double bpw, int layer, StateStage stage, int part) {
        return new Path(target(bpw), String.format("layer-%03d/%s-%05d.safetensors", layer, stage.fileTag(), part));
    }

    public Path fragment(double bpw, String moduleKey) {
        return new Path(target(bpw), "frag/" + moduleKey + ".safetensors");
    }

    public Path blockReport(double bpw, BlockSpec block) {
        return new Path(target(bpw), String.format("layer-%03d.%s.json", block.layer(), block.kind().hfName()));
    }

    /** Which token rows: the measurement pass's or the quantization pass's. */
    public enum CalibrationSet {
        MEASURE("measure.safetensors"), QUANTIZE("quant.safetensors");

        private final String fileName;

        CalibrationSet(String fileName) {
            this.fileName = fileName;
        }

        public String fileName() {
            return fileName;
        }
    }

    /** Where in a layer quantized-path states sit: entering the attention block, or entering the MLP block. */
    public enum StateStage {
        LAYER_INPUT("in"), MLP_INPUT("mid");

        private final String fileTag;

        StateStage(String fileTag) {
            this.fileTag = fileTag;
        }

        public String fileTag() {
            return fileTag;
        }
    }

    public boolean exists(Path p) throws IOException {
        return fs.exists(p);
    }

    public byte[] read(Path p) throws IOException {
        return ModelDirectory.readSmallFile(fs, p);
    }

    public void write(Path p, byte[] content) throws IOException {
        SafetensorsWriter.writeSmallFile(fs, p, content);
    }

    /** Files (not folders) directly under {@code dir} whose names start with {@code prefix}; empty if none. */
    public List<Path> list(Path dir, String prefix) throws IOException {
        List<Path> out = new ArrayList<>();
        if (!fs.exists(dir)) {
            return out;
        }
        for (FileStatus s : fs.listStatus(dir)) {
            if (s.isFile() && s.getPath().getName().startsWith(prefix)) {
                out.add(s.getPath());
            }
        }
        out.sort(null);
        return out;
    }
}
