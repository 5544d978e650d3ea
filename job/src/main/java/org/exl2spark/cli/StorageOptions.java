package org.exl2spark.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import picocli.CommandLine.Option;

/**
 * The settings that reach the Hadoop file systems (and, for commands that start Spark, the Spark session):
 * {@code $HADOOP_CONF_DIR}'s site files, then {@code --conf key=value} options, later ones winning. Keys under
 * {@code spark.hadoop.} are Hadoop keys with Spark's prefix; other {@code spark.*} keys are Spark settings.
 */
public final class StorageOptions {
    static final String HADOOP_CONF_DIR = "HADOOP_CONF_DIR";
    /** The site files a FileSystem client reads; the others (yarn, mapred) do not concern storage. */
    private static final String[] SITE_FILES = {"core-site.xml", "hdfs-site.xml"};

    @Option(names = "--conf", paramLabel = "KEY=VALUE",
            description = {"A Hadoop setting such as fs.s3a.endpoint=http://host:9000 (spark.hadoop.* and spark.*"
                    + " keys are accepted too). Repeatable; overrides $HADOOP_CONF_DIR."})
    Map<String, String> conf = new LinkedHashMap<>();

    /** The Hadoop configuration for this command, reading {@code $HADOOP_CONF_DIR} from the environment. */
    public Configuration hadoopConfiguration() {
        return hadoopConfiguration(System.getenv(HADOOP_CONF_DIR), conf);
    }

    static Configuration hadoopConfiguration(String hadoopConfDir, Map<String, String> settings) {
        Configuration c = new Configuration();
        if (hadoopConfDir != null && !hadoopConfDir.isBlank()) {
            Path dir = Paths.get(hadoopConfDir);
            if (!Files.isDirectory(dir)) {
                throw new IllegalArgumentException(HADOOP_CONF_DIR + "=" + hadoopConfDir + " is not a directory");
            }
            for (String name : SITE_FILES) {
                Path site = dir.resolve(name);
                if (Files.isRegularFile(site)) {
                    c.addResource(new org.apache.hadoop.fs.Path(site.toUri()));
                }
            }
        }
        hadoopSettings(settings).forEach(c::set);
        return c;
    }

    /** The {@code --conf} entries meant for Hadoop, {@code spark.hadoop.} prefix removed. */
    static Map<String, String> hadoopSettings(Map<String, String> settings) {
        Map<String, String> out = new LinkedHashMap<>();
        settings.forEach((key, value) -> {
            checkKey(key, value);
            if (key.startsWith("spark.hadoop.")) {
                out.put(key.substring("spark.hadoop.".length()), value);
            } else if (!key.startsWith("spark.")) {
                out.put(key, value);
            }
        });
        return out;
    }

    /** The {@code --conf} entries as Spark settings: Hadoop keys get Spark's {@code spark.hadoop.} prefix. */
    public Map<String, String> sparkSettings() {
        Map<String, String> out = new LinkedHashMap<>();
        conf.forEach((key, value) -> {
            checkKey(key, value);
            out.put(key.startsWith("spark.") ? key : "spark.hadoop." + key, value);
        });
        return out;
    }

    private static void checkKey(String key, String value) {
        if (key.isBlank()) {
            throw new IllegalArgumentException("--conf " + key + "=" + value + ": empty key");
        }
    }
}
