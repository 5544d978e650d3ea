package org.exl2spark.pipeline;

import java.lang.reflect.InvocationTargetException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkException;

/**
 * What a user should read first when a Spark job fails. Spark reports a failed task as
 * {@code SparkException: Job aborted due to stage failure: Task 3 in stage 1.0 failed 4 times, most recent failure:
 * Lost task 3.3 in stage 1.0 (TID 9) (host executor 1): java.io.IOException: <the task's message>} followed by the
 * executor's and then the driver's stack trace; the task's own message is buried in the middle.
 */
public final class SparkErrors {
    private static final String STAGE_FAILURE = "Job aborted due to stage failure";
    /** "...most recent failure: Lost task 0.3 in stage 0.0 (TID 3) (host executor 1): " then the failure, then stack. */
    private static final Pattern LAST_FAILURE = Pattern.compile(
            "most recent failure: Lost task \\S+ in stage \\S+ \\(TID \\d+\\) \\([^)]*\\): (.*?)"
                    + "(?:\\R\\s+at |\\R\\s*Driver stacktrace:|\\z)", Pattern.DOTALL);
    /** The "java.io.IOException: " in front of a message, as Throwable.toString() writes it. */
    private static final Pattern EXCEPTION_CLASS = Pattern.compile("^[\\w$]+(?:\\.[\\w$]+)+(?:: |$)");

    private SparkErrors() {
    }

    /**
     * The message of the exception the failed task threw (taken from the exception itself when Spark could send it to
     * the driver, else from Spark's text), e.g. {@code "model.layers.3.mlp: no such tensor"}; a task that died without
     * an exception (its executor was lost) gives Spark's reason. Any other error gives its own message. An exception
     * without a message is named by its class.
     */
    public static String rootMessage(Throwable error) {
        Throwable t = unwrap(error);
        SparkException stageFailure = stageFailure(t);
        if (stageFailure == null) {
            return messageOf(t);
        }
        Throwable task = thrownByTask(stageFailure);
        return task != null ? messageOf(task) : messageFromText(stageFailure);
    }

    /**
     * The exception a failed task threw, when the job failed because of it and Spark could send it to the driver;
     * otherwise {@code error} itself. For judging an error by its kind, as {@link #rootMessage} reports it.
     */
    public static Throwable taskError(Throwable error) {
        SparkException stageFailure = stageFailure(unwrap(error));
        Throwable task = stageFailure == null ? null : thrownByTask(stageFailure);
        return task != null ? task : error;
    }

    private static SparkException stageFailure(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof SparkException && c.getMessage() != null && c.getMessage().startsWith(STAGE_FAILURE)) {
                return (SparkException) c;
            }
        }
        return null;
    }

    private static Throwable thrownByTask(SparkException stageFailure) {
        Throwable taskError = stageFailure.getCause();
        // a task error Spark wrapped on the executor (e.g. while writing rows) carries the task's own as its cause
        while (taskError instanceof SparkException && taskError.getCause() != null) {
            taskError = taskError.getCause();
        }
        return taskError;
    }

    private static String messageFromText(SparkException stageFailure) {
        Matcher m = LAST_FAILURE.matcher(stageFailure.getMessage());
        if (!m.find()) {
            return stageFailure.getMessage().strip();
        }
        String failure = m.group(1).strip();
        Matcher cls = EXCEPTION_CLASS.matcher(failure);
        if (!cls.find()) {
            return failure;
        }
        String message = failure.substring(cls.end()).strip();
        if (message.isEmpty()) {
            String className = failure.strip();
            return className.substring(className.lastIndexOf('.') + 1);
        }
        return message;
    }

    private static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException
                || t instanceof InvocationTargetException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private static String messageOf(Throwable t) {
        String m = t.getMessage();
        return m == null || m.isBlank() ? t.getClass().getSimpleName() : m.strip();
    }
}
