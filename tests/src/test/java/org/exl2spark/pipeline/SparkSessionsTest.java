package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkException;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.serializer.KryoSerializer;
import org.apache.spark.serializer.SerializerInstance;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

class SparkSessionsTest {
    /** What spark-submit passes to the driver JVM, as system properties; cleared after each test. */
    private static final List<String> SUBMIT_PROPERTIES = List.of("spark.master", "spark.kryo.registrator",
            "spark.executor.resource.gpu.amount", "spark.task.resource.gpu.amount", "spark.app.name");

    @AfterEach
    void clearSubmitProperties() {
        SUBMIT_PROPERTIES.forEach(System::clearProperty);
    }

    @Test
    void localByDefaultOnLoopbackWithoutUiWithRequiredKryo() {
        SparkConf c = SparkSessions.conf("t", null, Map.of());
        assertEquals(SparkSessions.DEFAULT_MASTER, c.get("spark.master"));
        assertEquals("t", c.get("spark.app.name"));
        assertEquals(System.getenv().getOrDefault("SPARK_LOCAL_IP", "127.0.0.1"), c.get("spark.driver.bindAddress"));
        assertEquals(c.get("spark.driver.bindAddress"), c.get("spark.driver.host"));
        assertEquals("false", c.get("spark.ui.enabled"));
        assertEquals(KryoSerializer.class.getName(), c.get("spark.serializer"));
        assertEquals("true", c.get("spark.kryo.registrationRequired"));
        assertEquals(KryoRegistration.class.getName(), c.get("spark.kryo.registrator"));
        assertFalse(c.contains(SparkSessions.TASK_GPUS));
    }

    @Test
    void whatSparkSubmitGaveIsKeptAndCommandSettingsWin() {
        System.setProperty("spark.master", "spark://submit-host:7077");
        System.setProperty("spark.kryo.registrator", "com.example.TheirRegistrator");
        SparkConf submitted = SparkSessions.conf("t", null, Map.of());
        assertEquals("spark://submit-host:7077", submitted.get("spark.master"));
        assertEquals("com.example.TheirRegistrator," + KryoRegistration.class.getName(),
                submitted.get("spark.kryo.registrator"), "their registrator kept, ours added");
        assertFalse(submitted.contains("spark.driver.host"), "a cluster driver binds where spark-submit says");
        assertFalse(submitted.contains("spark.ui.enabled"));

        assertEquals("local[3]", SparkSessions.conf("t", "local[3]", Map.of()).get("spark.master"),
                "a command's --master wins over spark-submit's");
        SparkConf overridden = SparkSessions.conf("t", "local[3]", Map.of("spark.master", "local[1]",
                "spark.kryo.registrationRequired", "false", "spark.ui.enabled", "true"));
        assertEquals("local[1]", overridden.get("spark.master"));
        assertEquals("false", overridden.get("spark.kryo.registrationRequired"));
        assertEquals("true", overridden.get("spark.ui.enabled"));
    }

    @Test
    void gpuTasksWhenExecutorsHaveGpus() {
        System.setProperty("spark.master", "spark://h:7077");
        assertFalse(SparkSessions.conf("t", null, Map.of()).contains(SparkSessions.TASK_GPUS), "no GPUs, no GPU tasks");
        System.setProperty("spark.executor.resource.gpu.amount", "1");
        assertEquals("1", SparkSessions.conf("t", null, Map.of()).get(SparkSessions.TASK_GPUS));
        System.setProperty("spark.task.resource.gpu.amount", "0.5");
        assertEquals("0.5", SparkSessions.conf("t", null, Map.of()).get(SparkSessions.TASK_GPUS), "given, kept");
    }

    @Test
    void localModeRefusesGpuTasksItWouldNeverSchedule() {
        System.setProperty("spark.task.resource.gpu.amount", "1");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SparkSessions.conf("t", "local[2]", Map.of()));
        assertTrue(e.getMessage().contains("local mode (local[2]) cannot give tasks GPUs"), e.getMessage());
    }

    @Test
    void localGpusAreALocalModeSettingAndCheckedAtStart() {
        assertEquals("0,1", SparkSessions.conf("t", "local[4]", Map.of(GpuAssignment.LOCAL_GPUS, "0,1"))
                .get(GpuAssignment.LOCAL_GPUS));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
                () -> SparkSessions.conf("t", null, Map.of(GpuAssignment.LOCAL_GPUS, "gpu0")));
        assertTrue(bad.getMessage().contains("spark.exl2.localGpus=gpu0") && bad.getMessage().contains("'gpu0'"),
                bad.getMessage());
        IllegalArgumentException cluster = assertThrows(IllegalArgumentException.class,
                () -> SparkSessions.conf("t", "spark://h:7077", Map.of(GpuAssignment.LOCAL_GPUS, "0")));
        assertTrue(cluster.getMessage().contains("local-mode tasks only")
                && cluster.getMessage().contains("spark.executor.resource.gpu.amount"), cluster.getMessage());
    }

    /** A record like the payloads: every kind of component, a null among them. */
    record Probe(String name, int i, long l, double d, boolean b, float[] values, String missing) {
    }

    record Unregistered(String name) {
    }

    @Test
    void recordsRoundTripThroughKryoWithRegistrationRequired() {
        SparkConf c = SparkSessions.conf("t", null, Map.of());
        SerializerInstance kryo = new KryoSerializer(c).newInstance();
        ClusterSmokeJob.TaskReport report = new ClusterSmokeJob.TaskReport(3, 1, "gpu-host-7", "12", 4242L, 5,
                "cuda:5", "PCI_BUS_ID", "unset", "KryoSerializer", true, 1000L, 2000L);
        assertEquals(report, roundTrip(kryo, report, ClusterSmokeJob.TaskReport.class));

        RecordSerializer<Probe> probeSerializer = new RecordSerializer<>(Probe.class);
        com.esotericsoftware.kryo.Kryo k = new com.esotericsoftware.kryo.Kryo();
        k.setRegistrationRequired(true);
        k.register(float[].class);
        k.register(Probe.class, probeSerializer);
        Probe p = new Probe("x", -7, Long.MAX_VALUE, 0.25, true, new float[] {1f, Float.NaN}, null);
        com.esotericsoftware.kryo.io.Output out = new com.esotericsoftware.kryo.io.Output(256, -1);
        k.writeClassAndObject(out, p);
        Probe back = (Probe) k.readClassAndObject(new com.esotericsoftware.kryo.io.Input(out.toBytes()));
        assertEquals(p.name(), back.name());
        assertEquals(p.i(), back.i());
        assertEquals(p.l(), back.l());
        assertEquals(p.d(), back.d());
        assertEquals(p.b(), back.b());
        assertTrue(Arrays.equals(p.values(), back.values()));
        assertEquals(null, back.missing());
    }

    private static <T> T roundTrip(SerializerInstance s, T value, Class<T> type) {
        ClassTag<T> tag = ClassTag$.MODULE$.apply(type);
        ByteBuffer bytes = s.serialize(value, tag);
        return s.deserialize(bytes, tag);
    }

    @Test
    void aLocalJobMovesRegisteredRecordsAndRefusesOthers() {
        JavaSparkContext sc = SparkSessions.start("spark-sessions-test", "local[2]",
                Map.of("spark.hadoop.exl2.test.key", "from-conf"));
        try {
            assertTrue(sc.sc().uiWebUrl().isEmpty(), "no web UI by default");
            assertEquals("from-conf", sc.hadoopConfiguration().get("exl2.test.key"));
            List<Integer> values = IntStream.range(0, 8).boxed().collect(Collectors.toList());
            // a shuffle moves records through Kryo too
            assertEquals(4, sc.parallelize(values, 4).mapToPair(v -> new scala.Tuple2<>(v % 4, v))
                    .reduceByKey(Integer::sum).count());
            // task results travel through Kryo: registered records pass
            List<ClusterSmokeJob.Exchange> ok = sc.parallelize(values, 4)
                    .map(i -> new ClusterSmokeJob.Exchange(i, "driver", i + 1, "driver", 1L, (long) i)).collect();
            assertEquals(8, ok.size());
            assertEquals(5L, ok.get(5).crc32());
            // an unregistered class fails the job, naming the class
            SparkException e = assertThrows(SparkException.class,
                    () -> sc.parallelize(values, 2).map(i -> new Unregistered("r" + i)).collect());
            assertTrue(e.getMessage().contains("Class is not registered")
                    && e.getMessage().contains(Unregistered.class.getName()), e.getMessage());
        } finally {
            sc.stop();
        }
    }
}
