package org.exl2spark.model;

import java.io.IOException;
import java.util.Arrays;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.quant.TensorSource;

/**
 * The weights of an unquantized Hugging Face checkpoint (fp16, bf16 or fp32 safetensors), widened to fp32. Each tensor
 * is checked against the shape the architecture expects before it is read.
 */
public final class CheckpointWeights implements WeightSource {
    private final ModelDirectory model;
    private final ModelArchitecture architecture;

    public CheckpointWeights(ModelDirectory model) throws IOException {
        this.model = model;
        this.architecture = model.architecture();
    }

    @Override
    public ModelArchitecture architecture() {
        return architecture;
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        return read(weightName(linear), linear.outFeatures(), linear.inFeatures());
    }

    /** fp16 and bf16 weights as stored, read by range from their shard. */
    @Override
    public StoredWeight storedLinearWeight(LinearSpec linear) throws IOException {
        String name = weightName(linear);
        TensorInfo t = checked(name, linear.outFeatures(), linear.inFeatures());
        return switch (t.dtype()) {
            case F16, BF16 -> new StoredWeight(t.dtype() == DType.BF16,
                    (offset, dst) -> model.readRange(name, offset, dst));
            default -> null;
        };
    }

    private String weightName(LinearSpec linear) {
        return linear.equals(architecture.lmHead()) ? architecture.lmHeadWeightName() : linear.weightName();
    }

    @Override
    public float[] bias(LinearSpec linear) throws IOException {
        return linear.hasBias() ? read(linear.biasName(), linear.outFeatures()) : null;
    }

    @Override
    public float[] norm(String tensorName) throws IOException {
        return read(tensorName, architecture.hiddenSize());
    }

    @Override
    public float[] embeddingRows(int[] ids) throws IOException {
        return TensorSource.of(model).readRowsAsFloats(ModelArchitecture.EMBED, architecture.vocabSize(),
                architecture.hiddenSize(), ids);
    }

    private float[] read(String name, long... expectedShape) throws IOException {
        checked(name, expectedShape);
        return model.readFloats(name);
    }

    private TensorInfo checked(String name, long... expectedShape) throws IOException {
        TensorInfo t = model.tensor(name);
        if (!Arrays.equals(t.shape(), expectedShape)) {
            throw new ModelFormatException(model.path() + ": tensor '" + name + "' has shape " + t.shapeString()
                    + ", expected " + Arrays.toString(expectedShape) + " from config.json");
        }
        return t;
    }

    /** Closes the model directory this reads from. */
    @Override
    public void close() throws IOException {
        model.close();
    }
}
