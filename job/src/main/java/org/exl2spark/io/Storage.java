package org.exl2spark.io;

import java.io.IOException;
import java.nio.file.Paths;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Turns what a user typed (a URI or a plain local path) into a Hadoop path and its file system. */
public final class Storage {
    private Storage() {
    }

    /**
     * {@code hdfs://…}, {@code s3a://…}, {@code file:…} are taken as they are, literally, as Hadoop's shell and
     * Spark take them ({@code s3a://b/my model} is the key "my model", {@code %20} is not decoded); anything else is
     * a local path, made absolute.
     */
    public static Path path(String location) {
        if (location == null || location.isBlank()) {
            throw new IllegalArgumentException("empty path");
        }
        if (location.matches("^[a-zA-Z][a-zA-Z0-9+.-]*:.*") && !location.matches("^[a-zA-Z]:\\\\.*")) {
            try {
                return new Path(location);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("not a valid path: " + location + " (" + e.getMessage() + ")", e);
            }
        }
        return new Path(Paths.get(location).toAbsolutePath().normalize().toUri());
    }

    public static FileSystem fileSystem(Path path, Configuration conf) throws IOException {
        return path.getFileSystem(conf);
    }
}
