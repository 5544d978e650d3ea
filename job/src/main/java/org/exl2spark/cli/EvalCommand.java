package org.exl2spark.cli;

import java.io.PrintStream;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import org.exl2spark.backend.Backend;
import org.exl2spark.backend.CpuBackend;
import org.exl2spark.backend.CudaBackend;
import org.exl2spark.calib.EvalTokens;
import org.exl2spark.calib.TokenRows;
import org.exl2spark.calib.Tokenizer;
import org.exl2spark.eval.PerplexityEval;
import org.exl2spark.kernels.TensorCoreGemm.Precision;
import org.exl2spark.model.WeightSource;
import org.exl2spark.model.WeightSources;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code eval}: perplexity of a model on a text, prepared and scored like ExLlamaV2's test_inference
 * (EXL2-SPEC.md H.3), optionally compared with a reference model. Progress goes to stderr; results to stdout, the
 * last line being {@code perplexity: <value>}.
 */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Perplexity of a model on a UTF-8 text (ExLlamaV2 test_inference semantics).")
public final class EvalCommand implements Callable<Integer> {

    @Option(names = {"-m", "--model"}, required = true, paramLabel = "<model-uri>",
            description = "Model directory (local path, file:, hdfs:, s3a:); its tokenizer.json tokenizes the text.")
    String model;

    @Option(names = "--text", required = true, paramLabel = "<file>",
            description = "UTF-8 text; read as consecutive 8000-code-point pieces, each tokenized on its own.")
    String text;

    @Option(names = "--rows", defaultValue = "40", paramLabel = "<n>", description = "Rows (sequences), default ${DEFAULT-VALUE}.")
    int rows;

    @Option(names = "--length", defaultValue = "2048", paramLabel = "<tokens>",
            description = "Tokens per row, default ${DEFAULT-VALUE}.")
    int length;

    @Option(names = "--compare", paramLabel = "<fp16-model-uri>",
            description = "Reference model: also report the mean KL divergence of next-token distributions "
                    + "KL(reference ‖ model) and top-1 agreement.")
    String compare;

    @Option(names = "--device", paramLabel = "<ordinal>",
            description = "Run on this CUDA device (our kernels; linears on the TF32 tensor cores, perplexity within"
                    + " 1e-4 of the CPU's on the tiny model) instead of the CPU.")
    Integer device;

    PrintStream out = System.out;
    PrintStream err = System.err;

    @Override
    public Integer call() throws Exception {
        if (rows < 1 || length < 2) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--rows must be at least 1 and --length at least 2 (got " + rows + ", " + length + ")");
        }
        Configuration conf = new Configuration();
        try (WeightSource weights = WeightSources.open(model, conf);
                WeightSource reference = compare == null ? null : WeightSources.open(compare, conf);
                Backend backend = device == null ? new CpuBackend() : CudaBackend.open(device, Precision.TF32)) {
            TokenRows tokens;
            try (Tokenizer tokenizer = Tokenizer.open(model, conf)) {
                tokens = EvalTokens.fromFile(text, conf, tokenizer, rows, length);
            }
            err.println("tokens: " + rows + " × " + length + ", sha256 " + tokens.sha256());
            PerplexityEval.Result r = new PerplexityEval(backend, err::println).evaluate(weights, reference, tokens);
            out.printf(Locale.ROOT, "predicted tokens: %d%n", r.predictedTokens());
            out.printf(Locale.ROOT, "seconds: %.1f%n", r.seconds());
            if (r.compared()) {
                out.printf(Locale.ROOT, "mean KL divergence vs reference: %.6f%n", r.meanKlDivergence());
                out.printf(Locale.ROOT, "top-1 agreement with reference: %.4f%n", r.top1Agreement());
            }
            out.printf(Locale.ROOT, "perplexity: %.4f%n", r.perplexity());
        }
        return 0;
    }
}
