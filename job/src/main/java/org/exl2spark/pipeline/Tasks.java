package org.exl2spark.pipeline;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import org.exl2spark.io.DType;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.ModelArchitecture;

/** The small descriptors Spark ships to tasks and back; each names the work, never carries tensors. */
public final class Tasks {
    private Tasks() {
    }

    /** Calibration rows [firstRow, firstRow + rows) of one state file. */
    public record Partition(int index, int firstRow, int rows) implements Serializable {
        /** Partitions of {@code total} rows, {@code perPartition} rows each (the last may be smaller). */
        public static List<Partition> of(int total, int perPartition) {
            List<Partition> out = new ArrayList<>();
            for (int first = 0, i = 0; first < total; first += perPartition, i++) {
                out.add(new Partition(i, first, Math.min(perPartition, total - first)));
            }
            return out;
        }
    }

    /** A forward of one layer or block over one partition. */
    public record PartitionWork(int layer, Partition partition) implements Serializable {
        @Override
        public String toString() {
            return "layer " + layer + " rows " + partition.firstRow() + ".." + (partition.firstRow() + partition.rows() - 1);
        }
    }

    /** One block of one layer: the unit of measurement and of quantization. */
    public record BlockWork(int layer, BlockSpec.Kind kind) implements Serializable {
        public BlockSpec block(ModelArchitecture arch) {
            var l = arch.layer(layer);
            return kind == BlockSpec.Kind.ATTENTION ? l.attention() : l.mlp();
        }

        @Override
        public String toString() {
            return "layer " + layer + " " + (kind == BlockSpec.Kind.ATTENTION ? "attention" : "mlp");
        }
    }

    /** What a quantized-path forward reports: ExLlamaV2's relative block error summed over its rows. */
    public record ForwardReport(double errorSum, int rows) implements Serializable {
    }

    /** What a measurement task reports: the block's best accuracy and how long it took. */
    public record MeasureReport(String block, double bestAccuracy, double seconds) implements Serializable {
    }

    /** A tensor of an output shard and where its bytes are: an EXL2 fragment file, or (null) the source model. */
    public record ShardTensor(String name, DType dtype, long[] shape, String fragment) implements Serializable {
        public TensorSpec spec() {
            return new TensorSpec(name, dtype, shape);
        }
    }

    /** One output shard, written as {@code file} into the output's staging folder. */
    public record CompileShard(String staging, String file, List<ShardTensor> tensors) implements Serializable {
        public CompileShard {
            tensors = new ArrayList<>(tensors);
        }

        @Override
        public String toString() {
            return file + " (" + tensors.size() + " tensors)";
        }
    }

    /** What a compile task reports: the shard it wrote, its length and its sha256 (for the manifest). */
    public record ShardReport(String file, long bytes, String sha256) implements Serializable {
    }

    /**
     * What to tokenize: {@code dataset} ({@code -c}; null for the built-in set) into {@code rows} × {@code length}
     * quantization rows and {@code measureRows} × {@code measureLength} measurement rows.
     */
    public record CalibrationWork(String dataset, int vocabSize, int rows, int length, int measureRows,
            int measureLength) implements Serializable {
        @Override
        public String toString() {
            return dataset == null ? "the built-in calibration set" : dataset;
        }
    }

    /** The shapes of the token rows a calibration task wrote. */
    public record CalibrationReport(int measureRows, int measureLength, int quantRows, int quantLength)
            implements Serializable {
    }

    /** Every class above, for Kryo registration. */
    public static final List<Class<?>> PAYLOADS = List.of(Partition.class, PartitionWork.class, BlockWork.class,
            ForwardReport.class, MeasureReport.class, BlockSpec.Kind.class, ShardTensor.class, CompileShard.class,
            ShardReport.class, DType.class, CalibrationWork.class, CalibrationReport.class);
}
