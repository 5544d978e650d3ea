package org.exl2spark.pipeline;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.DType;
import org.exl2spark.io.Half;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.SafetensorsFile;
import org.exl2spark.io.SafetensorsWriter;
import org.exl2spark.io.Storage;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LayerSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;
import org.exl2spark.quant.Exl2QuantizationConfig;

/**
 * Pass 6, compile: streams the source's unquantized tensors (embeddings, norms; fp16) and the EXL2 fragments, in
 * module order, into {@code output[-NNNNN-of-NNNNN].safetensors} shards of {@code -ss} MB (one GPU-free task per
 * shard, so no tensor passes through the driver), and from the driver writes the index, config.json with
 * {@code quantization_config}, copies the tokenizer and other small files, and last a manifest with checksums. All
 * of it goes to a hidden sibling folder renamed to the output directory at the very end, so the output directory
 * holds a complete model or nothing.
 */
final class CompilePass {
    static final String MANIFEST = "exl2-spark-manifest.json";
    /** Shards are output.safetensors or output-0000i-of-0000n.safetensors, as ExLlamaV2 names them. */
    private static final String OUTPUT_BASE = "output";
    private static final ObjectMapper JSON = new ObjectMapper();

    private CompilePass() {
    }

    /** Fails early if {@code output} holds something that is not an earlier output of this same conversion. */
    static void checkOutput(FileSystem fs, Path output, String jobFingerprint) throws IOException {
        if (!fs.exists(output)) {
            return;
        }
        FileStatus[] entries = fs.listStatus(output);
        if (entries.length == 0) {
            return;
        }
        Path manifest = new Path(output, MANIFEST);
        if (fs.exists(manifest) && jobFingerprint.equals(
                ModelDirectory.readJson(fs, manifest).path("job").asText())) {
            return;
        }
        throw new ModelFormatException(output + ": output directory already holds something else (another model or"
                + " files); choose an empty or new directory");
    }

    /**
     * Compiles target {@code bpw} into {@code output}: the driver plans the shards (from the fragments' headers) and
     * writes the small files; one GPU-free task per shard streams its tensors into the staging folder.
     */
    static void run(Stages stages, JobContext ctx, JobDirectory job, ModelDirectory source, ModelArchitecture arch,
            double bpw, Path output, long shardBytes, Exl2QuantizationConfig quantization, String jobFingerprint,
            Configuration conf) throws IOException {
        FileSystem fs = Storage.outputFileSystem(output, conf);
        checkOutput(fs, output, jobFingerprint);
        Path staging = new Path(output.getParent(), "." + output.getName() + ".tmp-" + UUID.randomUUID());
        fs.mkdirs(staging);
        try {
            List<List<Tasks.ShardTensor>> shards = planShards(job, source, arch, bpw, shardBytes, conf);
            List<Tasks.CompileShard> work = new ArrayList<>();
            for (int i = 0; i < shards.size(); i++) {
                work.add(new Tasks.CompileShard(staging.toString(),
                        SafetensorsWriter.shardName(OUTPUT_BASE, i, shards.size()), shards.get(i)));
            }
            String label = JobDirectory.bitrateLabel(bpw);
            List<Tasks.ShardReport> written = stages.runOnCpu("compile " + label, "compile " + label + " ("
                    + work.size() + " shard" + (work.size() == 1 ? "" : "s") + ")", work, w -> writeShard(ctx, w));
            SafetensorsWriter.writeIndex(fs, staging, OUTPUT_BASE, shards.stream()
                    .map(s -> s.stream().map(Tasks.ShardTensor::spec).toList()).toList());
            writeConfig(source, fs, staging, quantization);
            copyOtherFiles(source, fs, staging);
            writeManifest(fs, staging, jobFingerprint, written);
            if (fs.exists(output)) {
                fs.delete(output, true);
            }
            if (!fs.rename(staging, output)) {
                throw new IOException("could not rename " + staging + " to " + output);
            }
        } catch (IOException | RuntimeException e) {
            fs.delete(staging, true);
            throw e;
        }
    }

    /** The output's tensors in module order, grouped into shards of at most {@code shardBytes} of tensor data. */
    private static List<List<Tasks.ShardTensor>> planShards(JobDirectory job, ModelDirectory source,
            ModelArchitecture arch, double bpw, long shardBytes, Configuration conf) throws IOException {
        List<TensorSpec> specs = new ArrayList<>();
        Map<String, Path> fragmentOf = new HashMap<>();
        addSource(source, ModelArchitecture.EMBED, specs);
        for (LayerSpec layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                addSource(source, b.normName(), specs);
                for (LinearSpec l : b.linears()) {
                    addFragment(job.fragment(bpw, l.key()), conf, specs, fragmentOf);
                }
            }
        }
        addSource(source, ModelArchitecture.FINAL_NORM, specs);
        addFragment(job.fragment(bpw, arch.lmHead().key()), conf, specs, fragmentOf);
        List<List<Tasks.ShardTensor>> shards = new ArrayList<>();
        for (List<TensorSpec> shard : SafetensorsWriter.planShards(specs, shardBytes)) {
            shards.add(shard.stream().map(t -> new Tasks.ShardTensor(t.name(), t.dtype(), t.shape(),
                    fragmentOf.containsKey(t.name()) ? fragmentOf.get(t.name()).toString() : null)).toList());
        }
        return shards;
    }

    /**
     * Task: writes one shard, copying fragments' tensors and converting the source's to fp16; reports its length and
     * sha256 (read back from where it landed).
     */
    static Tasks.ShardReport writeShard(JobContext ctx, Tasks.CompileShard w) throws IOException {
        Configuration conf = ctx.hadoopConf();
        Path target = new Path(w.staging(), w.file());
        FileSystem fs = Storage.outputFileSystem(target, conf);
        Map<String, Tasks.ShardTensor> byName = new HashMap<>();
        List<TensorSpec> specs = new ArrayList<>();
        for (Tasks.ShardTensor t : w.tensors()) {
            byName.put(t.name(), t);
            specs.add(t.spec());
        }
        Map<String, SafetensorsFile> open = new LinkedHashMap<>();
        try (ModelDirectory source = ModelDirectory.open(ctx.modelUri(), conf)) {
            SafetensorsWriter.writeFile(fs, target, specs, Map.of(), (t, out) -> {
                String fragment = byName.get(t.name()).fragment();
                if (fragment == null) {
                    copyAsHalf(source.shardOf(t.name()), source.tensor(t.name()), out);
                } else {
                    SafetensorsFile f = open.get(fragment);
                    if (f == null) {
                        for (SafetensorsFile done : open.values()) {
                            done.close();
                        }
                        open.clear();
                        f = SafetensorsFile.open(new Path(fragment), conf);
                        open.put(fragment, f);
                    }
                    copy(f, f.tensor(t.name()), out);
                }
            });
        } finally {
            for (SafetensorsFile f : open.values()) {
                f.close();
            }
        }
        return new Tasks.ShardReport(w.file(), fs.getFileStatus(target).getLen(), sha256(fs, target));
    }

    private static void addSource(ModelDirectory source, String name, List<TensorSpec> specs) throws IOException {
        specs.add(new TensorSpec(name, DType.F16, source.tensor(name).shape()));
    }

    private static void addFragment(Path fragment, Configuration conf, List<TensorSpec> specs,
            Map<String, Path> fragmentOf) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(fragment, conf)) {
            for (TensorInfo t : f.tensors().values()) {
                specs.add(new TensorSpec(t.name(), t.dtype(), t.shape()));
                fragmentOf.put(t.name(), fragment);
            }
        }
    }

    private static void copy(SafetensorsFile f, TensorInfo t, OutputStream out) throws IOException {
        byte[] buf = new byte[1 << 20];
        for (long at = 0; at < t.byteSize(); ) {
            int n = (int) Math.min(buf.length, t.byteSize() - at);
            f.readRange(t, at, ByteBuffer.wrap(buf, 0, n));
            out.write(buf, 0, n);
            at += n;
        }
    }

    /** Unquantized tensors are stored in fp16, as ExLlamaV2 stores them, whatever the source dtype. */
    private static void copyAsHalf(SafetensorsFile f, TensorInfo t, OutputStream out) throws IOException {
        if (t.dtype() == DType.F16) {
            copy(f, t, out);
            return;
        }
        float[] values = f.readFloats(t);
        ByteBuffer b = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putShort(Half.fromFloat(v));
        }
        out.write(b.array());
    }

    private static void writeConfig(ModelDirectory source, FileSystem fs, Path staging, Exl2QuantizationConfig q)
            throws IOException {
        ObjectNode config = (ObjectNode) source.config().deepCopy();
        config.set(Exl2QuantizationConfig.KEY, q.toJson());
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter().withObjectIndenter(new DefaultIndenter("    ", "\n"))
                .withArrayIndenter(new DefaultIndenter("    ", "\n"));
        SafetensorsWriter.writeSmallFile(fs, new Path(staging, ModelDirectory.CONFIG),
                JSON.writer(pp).writeValueAsBytes(config));
    }

    /**
     * Tokenizer, generation config and other small files travel with the model. Weights (*.safetensors, *.bin),
     * the source's index (it would describe shards that are not here) and config.json (rewritten) do not.
     */
    private static void copyOtherFiles(ModelDirectory source, FileSystem out, Path staging) throws IOException {
        FileSystem in = source.fileSystem();
        for (FileStatus s : in.listStatus(source.path())) {
            String name = s.getPath().getName();
            if (!s.isFile() || name.endsWith(".safetensors") || name.endsWith(".bin") || name.equals(ModelDirectory.INDEX)
                    || name.equals(ModelDirectory.CONFIG) || name.startsWith(".")) {
                continue;
            }
            SafetensorsWriter.writeSmallFile(out, new Path(staging, name), ModelDirectory.readSmallFile(in, s.getPath()));
        }
    }

    /** Lists every file with its length and sha256: the shards' as their tasks reported them, the rest read here. */
    private static void writeManifest(FileSystem fs, Path staging, String jobFingerprint,
            List<Tasks.ShardReport> shards) throws IOException {
        Map<String, String> reported = new HashMap<>();
        for (Tasks.ShardReport r : shards) {
            reported.put(r.file(), r.sha256());
        }
        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("job", jobFingerprint);
        ObjectNode files = manifest.putObject("files");
        List<FileStatus> entries = new ArrayList<>(List.of(fs.listStatus(staging)));
        entries.sort((a, b) -> a.getPath().getName().compareTo(b.getPath().getName()));
        for (FileStatus s : entries) {
            String name = s.getPath().getName();
            ObjectNode f = files.putObject(name);
            f.put("bytes", s.getLen());
            f.put("sha256", reported.containsKey(name) ? reported.get(name) : sha256(fs, s.getPath()));
        }
        SafetensorsWriter.writeSmallFile(fs, new Path(staging, MANIFEST),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifest));
    }

    static String sha256(FileSystem fs, Path p) throws IOException {
        MessageDigest md = ModelFingerprint.sha256();
        byte[] buf = new byte[1 << 20];
        try (InputStream in = fs.open(p)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }
}
