package org.exl2spark.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.spark.SparkException;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The task's own message out of Spark's stage-failure exception, from real failures of a local Spark that retries a
 * task 4 times as a cluster does ({@code local[2,4]}). On a real cluster: StandaloneClusterTest.
 */
class SparkErrorsTest {
    private static JavaSparkContext sc;

    @BeforeAll
    static void start() {
        sc = SparkSessions.start("spark-errors-test", "local[2,4]", Map.of());
    }

    @AfterAll
    static void stop() {
        sc.stop();
    }

    private static SparkException failingJob(RuntimeException thrownByTask) {
        return assertThrows(SparkException.class, () -> sc.parallelize(List.of(1, 2), 2).map(i -> {
            if (i == 2) {
                throw thrownByTask;
            }
            return i;
        }).collect());
    }

    @Test
    void theTasksMessageComesFirst() {
        SparkException e = failingJob(new IllegalStateException("layer 3 mlp: no tensor model.layers.3.mlp.up_proj"));
        assertTrue(e.getMessage().startsWith("Job aborted due to stage failure: Task 1 in stage"), e.getMessage());
        assertTrue(e.getMessage().contains("failed 4 times"), e.getMessage());
        assertEquals("layer 3 mlp: no tensor model.layers.3.mlp.up_proj", SparkErrors.rootMessage(e));
        assertEquals(IllegalStateException.class, SparkErrors.taskError(e).getClass(), "the task's own exception");
    }

    @Test
    void fromSparksTextWhenTheDriverHasNoExceptionObject() {
        // a task error whose class the driver cannot load reaches it as text only
        SparkException real = failingJob(new UncheckedIOException("hdfs://nn/m/model-00001.safetensors: truncated",
                new IOException("EOF")));
        SparkException textOnly = new SparkException(real.getMessage());
        assertEquals("hdfs://nn/m/model-00001.safetensors: truncated", SparkErrors.rootMessage(textOnly));
        assertEquals(textOnly, SparkErrors.taskError(textOnly), "no exception object: the error itself");
    }

    @Test
    void multiLineMessagesStayWholeAndMessagelessOnesAreNamed() {
        SparkException lines = failingJob(new IllegalArgumentException("first line\nsecond line"));
        assertEquals("first line\nsecond line", SparkErrors.rootMessage(lines));
        assertEquals("first line\nsecond line", SparkErrors.rootMessage(new SparkException(lines.getMessage())));
        SparkException none = failingJob(new NullPointerException());
        assertEquals("NullPointerException", SparkErrors.rootMessage(none));
        assertEquals("NullPointerException", SparkErrors.rootMessage(new SparkException(none.getMessage())));
    }

    @Test
    void aLostExecutorGivesSparksReason() {
        String lost = "Job aborted due to stage failure: Task 1 in stage 0.0 failed 4 times, most recent failure: Lost"
                + " task 1.3 in stage 0.0 (TID 7) (10.0.0.5 executor 3): ExecutorLostFailure (executor 3 exited caused"
                + " by one of the running tasks) Reason: Command exited with code 137\nDriver stacktrace:\n\tat x.y(Z)";
        assertEquals("ExecutorLostFailure (executor 3 exited caused by one of the running tasks) Reason: Command"
                + " exited with code 137", SparkErrors.rootMessage(new SparkException(lost)));
    }

    @Test
    void wrappersAndOtherErrorsGiveTheirOwnMessage() {
        SparkException e = failingJob(new IllegalStateException("bad block"));
        assertEquals("bad block", SparkErrors.rootMessage(new ExecutionException(e)));
        assertEquals("bad block", SparkErrors.rootMessage(new RuntimeException("while measuring", e)));
        assertEquals("Master removed our application: FAILED",
                SparkErrors.rootMessage(new SparkException("Master removed our application: FAILED")));
        assertEquals("no such file", SparkErrors.rootMessage(new IOException("no such file")));
        IOException plain = new IOException("no such file");
        assertEquals(plain, SparkErrors.taskError(plain));
        assertEquals(IllegalStateException.class, SparkErrors.taskError(new ExecutionException(e)).getClass());
    }
}
