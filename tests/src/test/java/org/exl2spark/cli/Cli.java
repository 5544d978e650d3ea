package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;

/** Runs {@code exl2} in this JVM with captured output, as {@link Exl2#main} would, minus the exit. */
final class Cli {
    record Result(int code, String out, String err) {
        List<String> errLines() {
            return err.lines().toList();
        }

        /** The failure contract: exit code, one line on stderr, naming the command ("exl2 inspect"). */
        String oneLineError(int expectedCode, String command) {
            assertEquals(expectedCode, code, () -> "exit code; stderr: " + err);
            assertEquals(1, errLines().size(), () -> "stderr must be one line, was:\n" + err);
            String line = errLines().get(0);
            assertTrue(line.startsWith(command + ": "), line);
            return line;
        }

        Result ok() {
            assertEquals(0, code, () -> "exit code; stderr: " + err);
            assertEquals("", err, "stderr of a successful run");
            return this;
        }
    }

    private Cli() {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Exl2.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(code, out.toString(), err.toString());
    }
}
