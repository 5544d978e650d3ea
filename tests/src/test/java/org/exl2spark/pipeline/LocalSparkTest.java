package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

class LocalSparkTest {

    @Test
    void defaultsAndOverrides() {
        SparkConf c = LocalSpark.conf("t", null, Map.of("spark.ui.enabled", "true", "spark.hadoop.fs.x", "y"));
        assertEquals("local[*]", c.get("spark.master"));
        assertEquals("true", c.get("spark.ui.enabled"), "settings win over defaults");
        assertEquals("org.apache.spark.serializer.KryoSerializer", c.get("spark.serializer"));
        assertEquals("true", c.get("spark.kryo.registrationRequired"));
        assertEquals(System.getenv().getOrDefault("SPARK_LOCAL_IP", "127.0.0.1"), c.get("spark.driver.bindAddress"));
        assertEquals("spark://h:7077", LocalSpark.conf("t", "spark://h:7077", Map.of()).get("spark.master"));
    }

    @Test
    void runsAJobWithKryoAndPassesHadoopSettings() {
        SparkSession spark = LocalSpark.start("exl2-local-spark-test", "local[2]",
                Map.of("spark.hadoop.exl2.test.key", "from-conf"));
        try {
            assertTrue(spark.sparkContext().uiWebUrl().isEmpty(), "no web UI by default");
            assertEquals("from-conf", spark.sparkContext().hadoopConfiguration().get("exl2.test.key"));
            JavaSparkContext jsc = LocalSpark.javaContext(spark);
            List<Integer> values = IntStream.rangeClosed(1, 1000).boxed().collect(Collectors.toList());
            long sumOfSquares = jsc.parallelize(values, 4).map(v -> (long) v * v).reduce(Long::sum);
            assertEquals(1000L * 1001 * 2001 / 6, sumOfSquares);
            // a shuffle moves records through Kryo, with registration required
            assertEquals(500, jsc.parallelize(values, 4).mapToPair(v -> new scala.Tuple2<>(v % 500, v))
                    .reduceByKey(Integer::sum).count());
        } finally {
            spark.stop();
        }
    }
}
