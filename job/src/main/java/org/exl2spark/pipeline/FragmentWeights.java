package org.exl2spark.pipeline;

import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.model.Exl2Weights;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.model.WeightSource;
import org.exl2spark.quant.TensorSource;

/**
 * The model as quantized so far for one target: a linear whose EXL2 fragment exists in the job directory is
 * decoded from it (exactly the weights the compiled model will hold); everything else comes from the source model.
 */
final class FragmentWeights implements WeightSource {
    private final WeightSource source;
    private final JobDirectory job;
    private final double bpw;
    private final Configuration conf;

    FragmentWeights(WeightSource source, JobDirectory job, double bpw, Configuration conf) {
        this.source = source;
        this.job = job;
        this.bpw = bpw;
        this.conf = conf;
    }

    @Override
    public ModelArchitecture architecture() {
        return source.architecture();
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        Path fragment = job.fragment(bpw, linear.key());
        if (!job.exists(fragment)) {
            return source.linearWeight(linear);
        }
        try (SafetensorsFile f = SafetensorsFile.open(fragment, conf)) {
            return new Exl2Weights(architecture(), TensorSource.of(f), null).linearWeight(linear);
        }
    }

    @Override
    public float[] bias(LinearSpec linear) throws IOException {
        return source.bias(linear);
    }

    @Override
    public float[] norm(String tensorName) throws IOException {
        return source.norm(tensorName);
    }

    @Override
    public float[] embeddingRows(int[] ids) throws IOException {
        return source.embeddingRows(ids);
    }

    @Override
    public void close() {
        // the source model belongs to the executor, not to this view
    }
}
