package org.exl2spark.testing;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * A real HDFS (one NameNode, one DataNode) in this JVM, with its data under the test build folder and 64 MB blocks so
 * that reads of big tensors cross block boundaries. Start one per test class; close deletes its data.
 */
public final class MiniHdfs implements AutoCloseable {
    public static final long BLOCK_SIZE = 64L << 20;

    private final MiniDFSCluster cluster;
    private final Configuration conf;

    public MiniHdfs() throws IOException {
        java.nio.file.Path base = SharedData.targetDir().resolve("minidfs");
        Files.createDirectories(base);
        Configuration c = new Configuration();
        c.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, Files.createTempDirectory(base, "hdfs-").toString());
        // client-side settings too: the writer's blocks follow the client's configuration
        c.setLong("dfs.blocksize", BLOCK_SIZE);
        c.setInt("dfs.replication", 1);
        cluster = new MiniDFSCluster.Builder(c).numDataNodes(1).build();
        cluster.waitActive();
        conf = new Configuration(c);
    }

    /** {@code hdfs://localhost:PORT}. */
    public URI uri() {
        return cluster.getURI();
    }

    /** A path on this HDFS, e.g. {@code path("/models/tiny")}. */
    public Path path(String absolute) {
        return new Path(uri().toString() + (absolute.startsWith("/") ? "" : "/") + absolute);
    }

    /** A configuration for clients of this cluster (64 MB blocks, replication 1). */
    public Configuration configuration() {
        return new Configuration(conf);
    }

    public FileSystem fileSystem() throws IOException {
        return FileSystem.get(uri(), conf);
    }

    @Override
    public void close() {
        cluster.shutdown(true, true);
    }
}
