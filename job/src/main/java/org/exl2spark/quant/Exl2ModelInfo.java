package org.exl2spark.quant;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;

/**
 * What an EXL2 model holds, for {@code inspect}: each linear's group layout and bits per weight, per-block and
 * whole-model totals, the lm_head's bits and the quantization_config. Only headers and the small q_groups tables are
 * read, so this is cheap for any model size.
 *
 * <p>Two bit counts are kept. "EXL2 bits" is ExLlamaV2's own accounting (spec C.3, what its measurement and optimizer
 * charge); "file bits" is the size of the tensors actually stored, 8 bits per byte. Per block, ExLlamaV2's optimizer
 * divides by the block's numel including its norm (spec E), which is the figure the -b target refers to.
 */
public final class Exl2ModelInfo {

    /**
     * One linear.
     *
     * @param outFeatures the stored output width (ExLlamaV2 pads it to a multiple of 32 where needed)
     * @param layout   the EXL2 layout, or null for a linear stored unquantized (fp16 {@code .weight})
     * @param bits     EXL2 bits (spec C.3); 16 per weight and bias element for an unquantized linear
     * @param fileBits 8 × the bytes of the module's stored tensors
     */
    public record Module(String key, long inFeatures, long outFeatures, Exl2Layout layout, long bits, long fileBits) {
        public boolean quantized() {
            return layout != null;
        }

        public long weights() {
            return inFeatures * outFeatures;
        }

        public double bitsPerWeight() {
            return (double) bits / weights();
        }

        public double fileBitsPerWeight() {
            return (double) fileBits / weights();
        }
    }

    /**
     * One attention or MLP block.
     *
     * @param numel weights of its linears plus its norm's size, the denominator of ExLlamaV2's budget (spec E)
     */
    public record Block(String key, List<Module> modules, long numel) {
        public Block {
            modules = List.copyOf(modules);
        }

        public long bits() {
            return modules.stream().mapToLong(Module::bits).sum();
        }

        public long weights() {
            return modules.stream().mapToLong(Module::weights).sum();
        }

        /** bits / numel, as ExLlamaV2's optimizer charges a block against the -b target. */
        public double budgetBitsPerWeight() {
            return (double) bits() / numel;
        }
    }

    private final String source;
    private final Exl2QuantizationConfig config;
    private final ModelArchitecture architecture;
    private final List<Block> blocks;
    private final Module lmHead;
    private final List<Module> others;
    private final long tensorBits;

    private Exl2ModelInfo(String source, Exl2QuantizationConfig config, ModelArchitecture architecture,
            List<Block> blocks, Module lmHead, List<Module> others, long tensorBits) {
        this.source = source;
        this.config = config;
        this.architecture = architecture;
        this.blocks = List.copyOf(blocks);
        this.lmHead = lmHead;
        this.others = List.copyOf(others);
        this.tensorBits = tensorBits;
    }

    public static Exl2ModelInfo of(ModelDirectory dir) throws IOException {
        return of(dir.config(), TensorSource.of(dir), dir.path().toString());
    }

    /** From a config.json and the model's tensors; {@code source} names the model in messages. */
    public static Exl2ModelInfo of(JsonNode config, TensorSource tensors, String source) throws IOException {
        String configName = source + "/" + ModelDirectory.CONFIG;
        ModelArchitecture arch = ModelArchitecture.fromConfig(config, configName);
        Optional<Exl2QuantizationConfig> qc = Exl2QuantizationConfig.fromConfig(config, configName);
        Set<String> quantizedKeys = quantizedKeys(tensors);
        if (quantizedKeys.isEmpty()) {
            throw new ModelFormatException(source + ": not an EXL2 model: no tensor ends in " + Exl2Layout.Q_WEIGHT
                    + (qc.isPresent() ? " although config.json has an exl2 " + Exl2QuantizationConfig.KEY : ""));
        }
        List<Block> blocks = new ArrayList<>();
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                List<Module> modules = new ArrayList<>();
                for (LinearSpec l : b.linears()) {
                    modules.add(module(tensors, l));
                    quantizedKeys.remove(l.key());
                }
                long norm = tensors.contains(b.normName()) ? tensors.tensor(b.normName()).numElements()
                        : arch.hiddenSize();
                blocks.add(new Block(b.key(), modules, modules.stream().mapToLong(Module::weights).sum() + norm));
            }
        }
        LinearSpec head = arch.lmHead();
        Module lmHead = null;
        if (tensors.contains(head.key() + Exl2Layout.Q_WEIGHT) || tensors.contains(head.weightName())
                || !arch.tieWordEmbeddings()) {
            lmHead = module(tensors, head);
            quantizedKeys.remove(head.key());
        }
        List<Module> others = new ArrayList<>();
        for (String key : quantizedKeys) {
            Exl2Layout layout = Exl2Layout.read(tensors, key);
            others.add(new Module(key, layout.height(), layout.width(), layout, layout.exl2Bits(),
                    fileBits(tensors, key)));
        }
        long tensorBits = 0;
        for (String name : tensors.names()) {
            tensorBits += 8 * tensors.tensor(name).byteSize();
        }
        return new Exl2ModelInfo(source, qc.orElse(null), arch, blocks, lmHead, others, tensorBits);
    }

    /** True when the tensors hold any EXL2 linear (the test ExLlamaV2 itself applies) or config.json declares exl2. */
    public static boolean isExl2(JsonNode config, TensorSource tensors) {
        return Exl2QuantizationConfig.declaresExl2(config) || !quantizedKeys(tensors).isEmpty();
    }

    private static Set<String> quantizedKeys(TensorSource tensors) {
        Set<String> keys = new TreeSet<>();
        for (String name : tensors.names()) {
            if (name.endsWith(Exl2Layout.Q_WEIGHT)) {
                keys.add(name.substring(0, name.length() - Exl2Layout.Q_WEIGHT.length()));
            }
        }
        return keys;
    }

    private static Module module(TensorSource tensors, LinearSpec l) throws IOException {
        String key = l.key();
        if (tensors.contains(key + Exl2Layout.Q_WEIGHT)) {
            Exl2Layout layout = Exl2Layout.read(tensors, key);
            // the stored width may exceed out_features by ExLlamaV2's padding to a multiple of 32
            if (layout.height() != l.inFeatures() || layout.width() < l.outFeatures()
                    || layout.width() >= l.outFeatures() + 32) {
                throw new Exl2FormatException(tensors.location(), key, "stored as [" + layout.height() + " in, "
                        + layout.width() + " out] but config.json implies [" + l.inFeatures() + " in, "
                        + l.outFeatures() + " out]");
            }
            return new Module(key, layout.height(), layout.width(), layout, layout.exl2Bits(),
                    fileBits(tensors, key));
        }
        if (tensors.contains(l.weightName())) {
            long bits = 16 * (l.inFeatures() * l.outFeatures() + (tensors.contains(l.biasName()) ? l.outFeatures() : 0));
            return new Module(key, l.inFeatures(), l.outFeatures(), null, bits, fileBits(tensors, key));
        }
        throw new ModelFormatException(tensors.location() + ": linear '" + key + "' has neither " + key
                + Exl2Layout.Q_WEIGHT + " nor " + l.weightName());
    }

    private static long fileBits(TensorSource tensors, String key) throws IOException {
        long bits = 0;
        for (String suffix : List.of(Exl2Layout.Q_WEIGHT, Exl2Layout.Q_SCALE, Exl2Layout.Q_SCALE_MAX,
                Exl2Layout.Q_GROUPS, Exl2Layout.Q_INVPERM, Exl2Layout.Q_PERM, ".weight", Exl2Layout.BIAS)) {
            if (tensors.contains(key + suffix)) {
                bits += 8 * tensors.tensor(key + suffix).byteSize();
            }
        }
        return bits;
    }

    public String source() {
        return source;
    }

    /** config.json's quantization_config, if it has one. */
    public Optional<Exl2QuantizationConfig> quantizationConfig() {
        return Optional.ofNullable(config);
    }

    public ModelArchitecture architecture() {
        return architecture;
    }

    /** Attention and MLP blocks of every layer, in model order. */
    public List<Block> blocks() {
        return blocks;
    }

    /** The lm_head, or empty when the model ties it to the embeddings and stores none. */
    public Optional<Module> lmHead() {
        return Optional.ofNullable(lmHead);
    }

    /** EXL2 linears whose keys the architecture does not name. */
    public List<Module> otherModules() {
        return others;
    }

    /** Every linear: the blocks' in order, then lm_head, then any others. */
    public List<Module> modules() {
        List<Module> all = new ArrayList<>();
        blocks.forEach(b -> all.addAll(b.modules()));
        if (lmHead != null) {
            all.add(lmHead);
        }
        all.addAll(others);
        return all;
    }

    /** EXL2 bits of the decoder layers' linears, what the optimizer spends (lm_head is outside the budget). */
    public long layerBits() {
        return blocks.stream().mapToLong(Block::bits).sum();
    }

    public long layerWeights() {
        return blocks.stream().mapToLong(Block::weights).sum();
    }

    /** Σ block numel (linears + norms), the optimizer's budget denominator. */
    public long layerNumel() {
        return blocks.stream().mapToLong(Block::numel).sum();
    }

    /** Decoder-layer bits per linear weight. */
    public double layerBitsPerWeight() {
        return (double) layerBits() / layerWeights();
    }

    /** Decoder-layer bits per block numel: the figure comparable with the -b target (quantization_config.bits). */
    public double budgetBitsPerWeight() {
        return (double) layerBits() / layerNumel();
    }

    /** EXL2 bits per weight over every linear, lm_head included. */
    public double linearBitsPerWeight() {
        List<Module> all = modules();
        return (double) all.stream().mapToLong(Module::bits).sum() / all.stream().mapToLong(Module::weights).sum();
    }

    /** File bits per weight over every linear, lm_head included. */
    public double linearFileBitsPerWeight() {
        List<Module> all = modules();
        return (double) all.stream().mapToLong(Module::fileBits).sum()
                / all.stream().mapToLong(Module::weights).sum();
    }

    /** Bits of all stored tensors (embeddings and norms included), 8 per byte. */
    public long tensorBits() {
        return tensorBits;
    }

    /** All stored tensor bits over all parameters of the architecture. */
    public double fileBitsPerParameter() {
        return (double) tensorBits / architecture.parameterCount();
    }

    /** A human-readable report: config, one line per linear, totals. */
    public String render() {
        StringBuilder sb = new StringBuilder();
        sb.append("EXL2 model ").append(source).append('\n');
        if (config != null) {
            sb.append(String.format(Locale.ROOT,
                    "  quantization_config: ExLlamaV2 %s, target %s bpw, head bits %d, calibration %d rows x %d tokens"
                            + " (%s)%n", config.version(), formatTarget(config.bits()), config.headBits(),
                    config.calibration().rows(), config.calibration().length(), config.calibration().dataset()));
        } else {
            sb.append("  quantization_config: none (ExLlamaV2 writes one from version 0.0.16 on)\n");
        }
        sb.append(String.format(Locale.ROOT, "  %s, %d layers, hidden %d, intermediate %d, vocab %d%n",
                architecture.family().architecture(), architecture.numLayers(), architecture.hiddenSize(),
                architecture.intermediateSize(), architecture.vocabSize()));
        int keyWidth = Math.max(6, modules().stream().mapToInt(m -> m.key().length()).max().orElse(6));
        sb.append(String.format(Locale.ROOT, "%n%-" + keyWidth + "s %7s %7s %7s %9s  %s%n", "module", "in", "out",
                "bpw", "file bpw", "groups (bits, count x rows)"));
        for (Module m : modules()) {
            sb.append(String.format(Locale.ROOT, "%-" + keyWidth + "s %7d %7d %7.4f %9.4f  %s%n", m.key(),
                    m.inFeatures(), m.outFeatures(), m.bitsPerWeight(), m.fileBitsPerWeight(),
                    m.quantized() ? m.layout().groupSummary() : "unquantized fp16"));
        }
        sb.append('\n');
        sb.append(String.format(Locale.ROOT,
                "decoder layers: %,d bits for %,d weights = %.4f bpw; %.4f bits per block numel (%,d incl. norms,"
                        + " the figure the target refers to)%n",
                layerBits(), layerWeights(), layerBitsPerWeight(), budgetBitsPerWeight(), layerNumel()));
        if (lmHead != null) {
            sb.append(String.format(Locale.ROOT, "lm_head: %,d bits for %,d weights = %.4f bpw%s%s%n", lmHead.bits(),
                    lmHead.weights(), lmHead.bitsPerWeight(),
                    lmHead.quantized() ? ", groups " + lmHead.layout().groupSummary() : ", unquantized",
                    config != null ? " (head bits " + config.headBits() + ")" : ""));
        }
        sb.append(String.format(Locale.ROOT, "all linears: %.4f bpw (EXL2 accounting), %.4f bpw (stored tensors)%n",
                linearBitsPerWeight(), linearFileBitsPerWeight()));
        sb.append(String.format(Locale.ROOT,
                "whole model: %,d bytes of tensors for %,d parameters = %.4f bits per parameter (fp16 embeddings"
                        + " and norms included)%n", tensorBits / 8, architecture.parameterCount(),
                fileBitsPerParameter()));
        return sb.toString();
    }

    private static String formatTarget(double bits) {
        return bits == Math.rint(bits) ? String.format(Locale.ROOT, "%.1f", bits) : Double.toString(bits);
    }

    @Override
    public String toString() {
        return render();
    }
}
