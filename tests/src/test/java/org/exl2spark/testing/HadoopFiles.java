package org.exl2spark.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** Small file-system chores for tests: copy a local folder up, list names, hash a file. */
public final class HadoopFiles {
    private HadoopFiles() {
    }

    /**
     * Copies the files of a local folder (not recursive) into {@code dst} on {@code fs} through
     * {@code FileSystem.create}. Not {@code copyFromLocalFile}: on S3A that goes through the SDK's async transfer
     * manager, whose multipart uploads s3proxy 4.1.0 refuses (400 XAmzContentSHA256Mismatch).
     */
    public static void copyDirectory(java.nio.file.Path src, FileSystem fs, Path dst) throws IOException {
        fs.mkdirs(dst);
        try (Stream<java.nio.file.Path> files = java.nio.file.Files.list(src)) {
            for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) files::iterator) {
                try (InputStream in = java.nio.file.Files.newInputStream(f);
                        OutputStream out = fs.create(new Path(dst, f.getFileName().toString()), true)) {
                    in.transferTo(out);
                }
            }
        }
    }

    /** Names of the entries of {@code dir}, sorted (Hadoop's local file system hides its .crc files). */
    public static Set<String> names(FileSystem fs, Path dir) throws IOException {
        Set<String> names = new TreeSet<>();
        for (FileStatus s : fs.listStatus(dir)) {
            names.add(s.getPath().getName());
        }
        return names;
    }

    public static String sha256(FileSystem fs, Path file) throws IOException {
        MessageDigest md = sha256();
        byte[] buf = new byte[1 << 20];
        try (InputStream in = fs.open(file)) {
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    public static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
