package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** inspect and example on a real HDFS (MiniDFSCluster), with the cluster named by URI, --conf or HADOOP_CONF_DIR. */
class InspectHdfsTest {
    private static MiniDFSCluster cluster;
    private static String hdfs;

    @BeforeAll
    static void startHdfs() throws Exception {
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, SharedData.scratch("minidfs").toString());
        cluster = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        cluster.waitActive();
        hdfs = cluster.getURI().toString();
        cluster.getFileSystem().copyFromLocalFile(new org.apache.hadoop.fs.Path(SharedData.tinyModel().toUri()),
                new org.apache.hadoop.fs.Path("/models/tiny"));
    }

    @AfterAll
    static void stopHdfs() {
        if (cluster != null) {
            cluster.shutdown(true);
        }
    }

    @Test
    void inspectsByFullUri() {
        String out = Cli.run("inspect", hdfs + "/models/tiny").ok().out();
        assertTrue(out.contains("Model                  " + hdfs + "/models/tiny\n"), out);
        assertTrue(out.contains("15,735,168 from config.json; the tensors hold 15,735,168 (equal)"), out);
    }

    @Test
    void confNamesTheDefaultFileSystem() {
        String line = Cli.run("inspect", "hdfs:///models/tiny").oneLineError(1, "exl2 inspect");
        assertTrue(line.contains("hdfs:/models/tiny"), line);
        String out = Cli.run("inspect", "--conf", "fs.defaultFS=" + hdfs, "hdfs:///models/tiny").ok().out();
        assertTrue(out.contains("15,735,168 from config.json"), out);
    }

    @Test
    void exampleWritesToHdfsAndOnlyTheFinishedModelAppears() throws Exception {
        Cli.run("example", "--layers", "1", "--shard-size", "1", hdfs + "/out/tiny").ok();
        String out = Cli.run("inspect", hdfs + "/out/tiny").ok().out();
        assertTrue(out.contains("Problems               none"), out);
        FileSystem fs = cluster.getFileSystem();
        FileStatus[] parent = fs.listStatus(new org.apache.hadoop.fs.Path("/out"));
        assertEquals(1, parent.length, Arrays.toString(parent));
        Path local = SharedData.scratch("example-local").resolve("tiny");
        Cli.run("example", "--layers", "1", "--shard-size", "1", local.toString()).ok();
        for (FileStatus f : fs.listStatus(new org.apache.hadoop.fs.Path("/out/tiny"))) {
            byte[] onHdfs;
            try (var in = fs.open(f.getPath())) {
                onHdfs = in.readAllBytes();
            }
            assertTrue(Arrays.equals(Files.readAllBytes(local.resolve(f.getPath().getName())), onHdfs),
                    f.getPath().getName() + " is the same on HDFS as on local disk");
        }
    }

    @Test
    void launcherReadsHadoopConfDir() throws Exception {
        Launcher.assumeJarBuilt();
        Path conf = SharedData.scratch("hadoop-conf-dir");
        Files.writeString(conf.resolve("core-site.xml"), "<configuration><property><name>fs.defaultFS</name><value>"
                + hdfs + "</value></property></configuration>");
        Cli.Result r = Launcher.run(Map.of("HADOOP_CONF_DIR", conf.toString()), "inspect", "hdfs:///models/tiny").ok();
        assertTrue(r.out().contains("15,735,168 from config.json"), r.out());
    }
}
