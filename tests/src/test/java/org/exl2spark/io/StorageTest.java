package org.exl2spark.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.IOException;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a user types becomes the Hadoop path they meant. */
class StorageTest {

    @Test
    void urisAreTakenLiterally() {
        Path p = Storage.path("s3a://bucket/models/Llama 3 #1/model.safetensors");
        assertEquals("s3a", p.toUri().getScheme());
        assertEquals("bucket", p.toUri().getAuthority());
        assertEquals("/models/Llama 3 #1/model.safetensors", p.toUri().getPath());
        assertEquals("/a%20b", Storage.path("s3a://b/a%20b").toUri().getPath(), "no percent-decoding");
        assertEquals("hdfs://nn:8020/m", Storage.path("hdfs://nn:8020/m").toString());
        assertEquals("file:/tmp/x y", Storage.path("file:/tmp/x y").toString());
    }

    @Test
    void plainPathsAreLocalAndAbsolute() {
        Path p = Storage.path("some/dir/../model");
        assertEquals("file", p.toUri().getScheme());
        assertEquals(Paths.get("some/model").toAbsolutePath().toString(), p.toUri().getPath());
        assertEquals("/tmp/a b", Storage.path("/tmp/x/../a b").toUri().getPath());
    }

    @Test
    void emptyIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> Storage.path(""));
        assertThrows(IllegalArgumentException.class, () -> Storage.path("  "));
        assertThrows(IllegalArgumentException.class, () -> Storage.path(null));
    }

    @Test
    void aModelInAFolderWithSpacesOpensByPathAndByUri(@TempDir java.nio.file.Path tmp) throws IOException {
        java.nio.file.Path dir = tmp.resolve("my model #2");
        Configuration conf = new Configuration();
        FileSystem fs = FileSystem.getLocal(conf);
        SafetensorsWriter.writeSharded(fs, Storage.path(dir.toString()), "model",
                List.of(new TensorSpec("w", DType.F32, new long[] {2})), 1 << 20, Map.of(),
                (t, out) -> out.write(new byte[] {0, 0, (byte) 0x80, 0x3f, 0, 0, 0, 0x40}));
        for (String location : List.of(dir.toString(), "file:" + dir)) {
            try (ModelDirectory m = ModelDirectory.open(location, conf)) {
                assertEquals(2.0f, m.readFloats("w")[1], location);
            }
        }
    }
}
