package org.exl2spark.pipeline;

import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * Starts the Spark session a command runs its job in: by default an embedded local Spark ({@code local[*]}) in the
 * command's own JVM, or the driver of a cluster given by a master URL. Defaults suit a tool run on one machine:
 * driver bound to loopback (or {@code $SPARK_LOCAL_IP}), no web UI, Kryo with registration required. Anything in
 * {@code settings} (e.g. a command's {@code --conf} entries, Hadoop keys as {@code spark.hadoop.*}) wins.
 */
public final class LocalSpark {
    public static final String DEFAULT_MASTER = "local[*]";

    private LocalSpark() {
    }

    /** The configuration {@link #start} uses: defaults first, then {@code settings}. */
    public static SparkConf conf(String appName, String master, Map<String, String> settings) {
        String host = System.getenv().getOrDefault("SPARK_LOCAL_IP", "127.0.0.1");
        Map<String, String> all = new LinkedHashMap<>();
        all.put("spark.app.name", appName);
        all.put("spark.master", master == null || master.isBlank() ? DEFAULT_MASTER : master);
        all.put("spark.driver.host", host);
        all.put("spark.driver.bindAddress", host);
        all.put("spark.ui.enabled", "false");
        all.put("spark.serializer", "org.apache.spark.serializer.KryoSerializer");
        // records and task descriptors are registered where they are defined; an unregistered class is a bug
        all.put("spark.kryo.registrationRequired", "true");
        all.putAll(settings);
        SparkConf conf = new SparkConf(false);
        all.forEach(conf::set);
        return conf;
    }

    public static SparkSession start(String appName, String master, Map<String, String> settings) {
        return SparkSession.builder().config(conf(appName, master, settings)).getOrCreate();
    }

    /** The Java RDD API of a session started here. */
    public static JavaSparkContext javaContext(SparkSession session) {
        return JavaSparkContext.fromSparkContext(session.sparkContext());
    }
}
