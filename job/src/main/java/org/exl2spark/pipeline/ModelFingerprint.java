package org.exl2spark.pipeline;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.exl2spark.io.ModelDirectory;
import org.exl2spark.io.SafetensorsFile;

/**
 * Identifies a model's weights without reading them all: per shard its name, length, safetensors header and 16
 * samples of 64 KiB spread over its data, plus config.json. A new checkpoint of the same architecture (identical
 * headers) still changes the sampled bytes, so a job directory can tell it holds another model's work.
 */
public final class ModelFingerprint {
    static final int SAMPLES = 16;
    static final int SAMPLE_BYTES = 64 << 10;

    private ModelFingerprint() {
    }

    public static String of(ModelDirectory model) throws IOException {
        MessageDigest sha = sha256();
        FileSystem fs = model.fileSystem();
        sha.update(ModelDirectory.readSmallFile(fs, new Path(model.path(), ModelDirectory.CONFIG)));
        for (Map.Entry<String, SafetensorsFile> e : model.shards().entrySet()) {
            SafetensorsFile f = e.getValue();
            sha.update(e.getKey().getBytes(java.nio.charset.StandardCharsets.UTF_8));
            sha.update(ByteBuffer.allocate(8).putLong(f.fileLength()).array());
            try (FSDataInputStream in = fs.open(f.path())) {
                byte[] header = new byte[(int) f.dataStart()];
                in.readFully(0, header);
                sha.update(header);
                long data = f.fileLength() - f.dataStart();
                byte[] sample = new byte[(int) Math.min(SAMPLE_BYTES, data)];
                for (int i = 0; i < SAMPLES && sample.length > 0; i++) {
                    long pos = f.dataStart() + (data - sample.length) * i / (SAMPLES - 1);
                    in.readFully(pos, sample);
                    sha.update(sample);
                }
            }
        }
        return HexFormat.of().formatHex(sha.digest());
    }

    static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
