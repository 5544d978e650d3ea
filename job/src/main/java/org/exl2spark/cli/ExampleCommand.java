package org.exl2spark.cli;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Iterator;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.exl2spark.example.ExampleModel;
import org.exl2spark.example.ExamplePreset;
import org.exl2spark.io.Storage;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.TypeConversionException;

/** {@code exl2 example}: writes a deterministic synthetic model in Hugging Face layout. */
@Command(name = "example", header = "Writes a deterministic synthetic model in Hugging Face layout.",
        description = "Writes a model with seeded random fp16 weights: config.json, generation_config.json, sharded"
                + " safetensors with their index, tokenizer.json (byte-level BPE) and tokenizer_config.json. The same"
                + " options give byte-identical files. DIR must not exist or be empty; the model appears there only"
                + " once complete. The big presets have the real layer shapes of Llama 3.1 70B and Qwen1.5 110B;"
                + " their tokenizer has 4,096 tokens, fewer than their embeddings' rows.")
final class ExampleCommand implements Callable<Integer> {
    /** ExLlamaV2's -ss counts shard sizes in units of 2^20 bytes; so do we. */
    static final long MEGABYTE = 1L << 20;

    @Parameters(paramLabel = "DIR", description = "Output directory: a local path or a file:, hdfs:// or s3a:// URI.")
    String dir;

    @Option(names = "--preset", paramLabel = "NAME", defaultValue = "tiny", converter = PresetConverter.class,
            completionCandidates = PresetNames.class,
            description = "Model shape: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    ExamplePreset preset;

    @Option(names = "--layers", paramLabel = "N",
            description = "Decoder layers (default: 4 for tiny, 1 for the big presets).")
    Integer layers;

    @Option(names = "--seed", paramLabel = "S", defaultValue = "0",
            description = "Seed of the weights (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--shard-size", paramLabel = "MB",
            description = "Largest shard in MB of 2^20 bytes (default: 4 for tiny, 2048 for the big presets).")
    Integer shardMegabytes;

    @Mixin
    StorageOptions storage;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        ExampleModel model = ExampleModel.of(preset, layers, seed);
        write(model, dir, shardMegabytes, storage.hadoopConfiguration(), spec.commandLine().getOut());
        return 0;
    }

    /** Writes the model and says what was written. Shared with {@code demo}. */
    static ExampleModel.Written write(ExampleModel model, String location, Integer shardMegabytes, Configuration conf,
            PrintWriter out) throws Exception {
        int mb = shardMegabytes == null ? model.preset().defaultShardMegabytes() : shardMegabytes;
        if (mb < 1) {
            throw new IllegalArgumentException("--shard-size must be at least 1 MB, got " + mb);
        }
        Path path = Storage.path(location);
        long start = System.nanoTime();
        ExampleModel.Written w = model.write(Storage.outputFileSystem(path, conf), path, mb * MEGABYTE);
        double seconds = (System.nanoTime() - start) / 1e9;
        out.printf(Locale.ROOT, "Wrote the %s example (%s, %d layer%s, %s parameters, seed %d) to %s:%n",
                model.preset(), model.architecture().family().architecture(), model.layers(),
                model.layers() == 1 ? "" : "s",
                ModelReport.count(model.architecture().parameterCount()), model.seed(), w.dir());
        out.printf(Locale.ROOT, "  %d shard%s, %s in %.1f s (%.0f MiB/s)%n", w.shards(), w.shards() == 1 ? "" : "s",
                ModelReport.bytes(w.bytes()), seconds, w.bytes() / seconds / MEGABYTE);
        if (model.tokenizerVocabSize() < model.architecture().vocabSize()) {
            out.printf(Locale.ROOT, "  tokenizer.json has %s tokens, fewer than the embedding's %s rows: ids from %s"
                    + " up are never produced by the tokenizer%n", ModelReport.count(model.tokenizerVocabSize()),
                    ModelReport.count(model.architecture().vocabSize()), ModelReport.count(model.tokenizerVocabSize()));
        }
        out.flush();
        return w;
    }

    static final class PresetConverter implements ITypeConverter<ExamplePreset> {
        @Override
        public ExamplePreset convert(String value) {
            try {
                return ExamplePreset.byName(value);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    static final class PresetNames implements Iterable<String> {
        @Override
        public Iterator<String> iterator() {
            return Arrays.stream(ExamplePreset.values()).map(ExamplePreset::presetName).iterator();
        }
    }
}
