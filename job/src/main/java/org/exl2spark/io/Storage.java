package org.exl2spark.io;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Paths;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Turns what a user typed (a URI or a plain local path) into a Hadoop path and its file system. */
public final class Storage {
    private Storage() {
    }

    /** {@code hdfs://…}, {@code s3a://…}, {@code file:…} are taken as they are; anything else is a local path. */
    public static Path path(String location) {
        if (location == null || location.isBlank()) {
            throw new IllegalArgumentException("empty path");
        }
        if (location.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*") && !location.matches("^[a-zA-Z]:\\\\.*")) {
            try {
                return new Path(new URI(location));
            } catch (URISyntaxException e) {
                throw new IllegalArgumentException("not a valid URI: " + location + " (" + e.getReason() + ")");
            }
        }
        return new Path(Paths.get(location).toAbsolutePath().normalize().toUri());
    }

    public static FileSystem fileSystem(Path path, Configuration conf) throws IOException {
        return path.getFileSystem(conf);
    }
}
