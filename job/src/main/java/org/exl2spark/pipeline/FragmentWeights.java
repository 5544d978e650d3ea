package org.exl2spark.pipeline;

import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.model.Exl2Weights;
import org.exl2spark.model.ForwardingWeightSource;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.WeightSource;
import org.exl2spark.quant.TensorSource;

/**
 * The model as quantized so far for one target: a linear whose EXL2 fragment exists in the job directory is
 * decoded from it (exactly the weights the compiled model will hold); everything else comes from the source model.
 */
final class FragmentWeights extends ForwardingWeightSource {
    private final JobDirectory job;
    private final double bpw;
    private final Configuration conf;

    FragmentWeights(WeightSource source, JobDirectory job, double bpw, Configuration conf) {
        super(source);
        this.job = job;
        this.bpw = bpw;
        this.conf = conf;
    }

    @Override
    public float[] linearWeight(LinearSpec linear) throws IOException {
        Path fragment = job.fragment(bpw, linear.key());
        if (!job.exists(fragment)) {
            return base.linearWeight(linear);
        }
        try (SafetensorsFile f = SafetensorsFile.open(fragment, conf)) {
            return new Exl2Weights(architecture(), TensorSource.of(f), null).linearWeight(linear);
        }
    }
}
