package org.exl2spark.pipeline;

import java.util.Arrays;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.serializer.KryoSerializer;

/**
 * Starts the Spark context a run uses, on whatever Spark it was launched on: the master spark-submit gave (with
 * everything else from spark-defaults.conf and {@code --conf}), else an embedded local Spark ({@link #DEFAULT_MASTER})
 * in this JVM. What every run gets unless told otherwise: Kryo with registration required and our registrator
 * ({@link KryoRegistration}); GPU tasks ({@code spark.task.resource.gpu.amount=1}) when executors have GPUs. Local
 * mode also binds to loopback ({@code $SPARK_LOCAL_IP} if set) and has no web UI; its tasks get GPUs only from
 * {@link GpuAssignment#LOCAL_GPUS}. The jobs are plain RDD jobs, so only spark-core is needed at run time (no
 * SparkSession: spark-sql and its catalyst and icu4j jars stay off a lean class path such as the GPU bundle's).
 */
public final class SparkSessions {
    public static final String DEFAULT_MASTER = "local[*]";
    static final String EXECUTOR_GPUS = "spark.executor.resource." + GpuAssignment.RESOURCE + ".amount";
    static final String TASK_GPUS = "spark.task.resource." + GpuAssignment.RESOURCE + ".amount";

    private SparkSessions() {
    }

    /**
     * The configuration {@link #start} uses. Precedence, strongest first: {@code settings} (a command's own
     * {@code --conf} entries; Hadoop keys as {@code spark.hadoop.*}), {@code master} if not null, what spark-submit
     * gave this JVM (spark.* system properties), the defaults above.
     */
    public static SparkConf conf(String appName, String master, Map<String, String> settings) {
        SparkConf conf = new SparkConf(true);
        if (master != null && !master.isBlank()) {
            conf.setMaster(master);
        }
        settings.forEach(conf::set);
        conf.setIfMissing("spark.master", DEFAULT_MASTER);
        conf.setIfMissing("spark.app.name", appName);
        conf.setIfMissing("spark.serializer", KryoSerializer.class.getName());
        conf.setIfMissing("spark.kryo.registrationRequired", "true");
        conf.set("spark.kryo.registrator", withOurRegistrator(conf.get("spark.kryo.registrator", "")));
        if (isLocal(conf)) {
            if (conf.contains(TASK_GPUS)) {
                // measured: Spark accepts it, then never schedules a task (local mode offers no GPU resources)
                throw new IllegalArgumentException(TASK_GPUS + " is set, but local mode (" + conf.get("spark.master")
                        + ") cannot give tasks GPUs, so no task would ever start; run on a cluster master, or drop the"
                        + " GPU settings to run on the CPU");
            }
            if (conf.contains(GpuAssignment.LOCAL_GPUS)) {
                GpuAssignment.localDevices(conf.get(GpuAssignment.LOCAL_GPUS));
            }
            String host = System.getenv().getOrDefault("SPARK_LOCAL_IP", "127.0.0.1");
            conf.setIfMissing("spark.driver.host", host);
            conf.setIfMissing("spark.driver.bindAddress", host);
            conf.setIfMissing("spark.ui.enabled", "false");
        } else {
            if (conf.contains(GpuAssignment.LOCAL_GPUS)) {
                throw new IllegalArgumentException(GpuAssignment.LOCAL_GPUS + " gives GPUs to local-mode tasks only;"
                        + " on a cluster (" + conf.get("spark.master") + ") executors get theirs from "
                        + EXECUTOR_GPUS + " and a discovery script (conf/spark-defaults.conf.template)");
            }
            if (conf.getDouble(EXECUTOR_GPUS, 0) > 0) {
                conf.setIfMissing(TASK_GPUS, "1");
            }
        }
        return conf;
    }

    /** The running Spark context with {@link #conf}'s settings, started if there is none; the caller stops it. */
    public static JavaSparkContext start(String appName, String master, Map<String, String> settings) {
        return JavaSparkContext.fromSparkContext(SparkContext.getOrCreate(conf(appName, master, settings)));
    }

    static boolean isLocal(SparkConf conf) {
        String master = conf.get("spark.master");
        return master.equals("local") || master.startsWith("local[");
    }

    private static String withOurRegistrator(String registrators) {
        String ours = KryoRegistration.class.getName();
        return Stream.concat(Arrays.stream(registrators.split(",")).map(String::strip).filter(r -> !r.isEmpty()),
                Stream.of(ours)).distinct().collect(Collectors.joining(","));
    }
}
