package org.exl2spark.io;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Paths;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
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
            URI uri;
            try {
                // Path(String) keeps spaces and percent signs literal, as users type them
                uri = new Path(location).toUri();
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("not a valid path: " + location + " (" + e.getMessage() + ")", e);
            }
            if (uri.getPath() == null || uri.getPath().isEmpty()) {
                throw new IllegalArgumentException("not a file system URI: " + location);
            }
            return fromParts(uri.getScheme(), uri.getAuthority(), uri.getPath());
        }
        return fromParts("file", null, Paths.get(location).toAbsolutePath().normalize().toString());
    }

    /**
     * Built from its parts so that Hadoop normalises the path: {@code new Path(URI)} keeps a trailing slash
     * ({@code file:/models/x/}, as {@code java.nio}'s URI of an existing directory has), and then {@code getName()}
     * is empty and {@code getParent()} is the directory itself.
     */
    private static Path fromParts(String scheme, String authority, String path) {
        return new Path(scheme, authority, path.isEmpty() ? "/" : path);
    }

    public static FileSystem fileSystem(Path path, Configuration conf) throws IOException {
        return path.getFileSystem(conf);
    }

    /**
     * The file system to write outputs with. Hadoop's local file system would put a hidden {@code .crc} file beside
     * every file it writes; outputs are plain files, so local paths get the raw local file system.
     */
    public static FileSystem outputFileSystem(Path path, Configuration conf) throws IOException {
        FileSystem fs = fileSystem(path, conf);
        return fs instanceof LocalFileSystem local ? local.getRawFileSystem() : fs;
    }
}
