package org.exl2spark.model;

import java.io.Closeable;
import java.io.IOException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.quant.Exl2Layout;
import org.exl2spark.quant.Exl2Linear;
import org.exl2spark.quant.HalfMatrix;
import org.exl2spark.quant.TensorSource;

/**
 * Weights of an EXL2 model for a forward pass: a linear with {@code .q_weight} is decoded to the exact fp16 weight
 * ExLlamaV2 reconstructs; everything else (embeddings, norms, unquantized linears) is read as stored.
 */
public final class Exl2Weights implements WeightSource {
    private final ModelArchitecture arch;
    private final TensorSource tensors;
    private final Closeable owner;

    public Exl2Weights(ModelArchitecture arch, TensorSource tensors, Closeable owner) {
        this.arch = arch;
        this.tensors = tensors;
        this.owner = owner;
    }

    @Override
    public ModelArchitecture architecture() {
        return arch;
    }

    public boolean isQuantized(LinearSpec linear) {
        return tensors.contains(linear.key() + Exl2Layout.Q_WEIGHT);
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        if (!isQuantized(linear)) {
            String name = linear == arch.lmHead() ? arch.lmHeadWeightName() : linear.weightName();
            return dense(name, linear.outFeatures() * linear.inFeatures());
        }
        Exl2Linear q = Exl2Linear.read(tensors, linear.key());
        if (q.inFeatures() != linear.inFeatures() || q.outFeatures() < linear.outFeatures()) {
            throw new ModelFormatException(tensors.location() + ": EXL2 linear '" + linear.key() + "' is "
                    + q.inFeatures() + "→" + q.outFeatures() + ", the architecture needs " + linear.inFeatures() + "→"
                    + linear.outFeatures());
        }
        HalfMatrix hf = q.hfWeight();
        int in = (int) linear.inFeatures();
        float[] out = new float[Math.multiplyExact((int) linear.outFeatures(), in)];
        // padded output columns (odd vocab sizes) are cut off here
        for (int r = 0; r < linear.outFeatures(); r++) {
            System.arraycopy(hf.rowAsFloats(r), 0, out, r * in, in);
        }
        return out;
    }

    @Override
    public float[] bias(LinearSpec linear) throws IOException {
        String name = linear.biasName();
        if (!tensors.contains(name)) {
            return null;
        }
        float[] b = dense(name, -1);
        return b.length > linear.outFeatures() ? java.util.Arrays.copyOf(b, (int) linear.outFeatures()) : b;
    }

    @Override
    public float[] norm(String tensorName) throws IOException {
        return dense(tensorName, arch.hiddenSize());
    }

    @Override
    public float[] embeddingRows(int[] ids) throws IOException {
        return tensors.readRowsAsFloats(ModelArchitecture.EMBED, arch.vocabSize(), arch.hiddenSize(), ids);
    }

    private float[] dense(String name, long expected) throws IOException {
        if (!tensors.contains(name)) {
            throw new ModelFormatException(tensors.location() + ": missing tensor '" + name + "'");
        }
        TensorInfo t = tensors.tensor(name);
        if (expected >= 0 && t.numElements() != expected) {
            throw new ModelFormatException(tensors.location() + ": tensor '" + name + "' has " + t.numElements()
                    + " elements, expected " + expected);
        }
        SafetensorsFile.checkFloating(t, tensors.location());
        return SafetensorsFile.toFloats(tensors.readAll(t), t.dtype(), (int) t.numElements());
    }

    @Override
    public void close() throws IOException {
        if (owner != null) {
            owner.close();
        }
    }
}
