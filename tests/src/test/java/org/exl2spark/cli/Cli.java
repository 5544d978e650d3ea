package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Runs {@code exl2} in this JVM with captured output, as {@link Exl2#main} would, minus the exit. Like main, what a
 * command prints on {@code System.out} (convert's progress log) is part of its standard output.
 */
public final class Cli {
    public record Result(int code, String out, String err) {
        public List<String> errLines() {
            return err.lines().toList();
        }

        /** The failure contract: exit code, one line on stderr, naming the command ("exl2 inspect"). */
        public String oneLineError(int expectedCode, String command) {
            assertEquals(expectedCode, code, () -> "exit code; stderr: " + err);
            assertEquals(1, errLines().size(), () -> "stderr must be one line, was:\n" + err);
            String line = errLines().get(0);
            assertTrue(line.startsWith(command + ": "), line);
            return line;
        }

        public Result ok() {
            assertEquals(0, code, () -> "exit code; stderr: " + err);
            assertEquals("", err, "stderr of a successful run");
            return this;
        }
    }

    private Cli() {
    }

    public static synchronized Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        PrintWriter outWriter = new PrintWriter(out, true);
        PrintStream systemOut = System.out;
        System.setOut(new PrintStream(new WriterOutputStream(outWriter), true, StandardCharsets.UTF_8));
        int code;
        try {
            code = Exl2.run(outWriter, new PrintWriter(err, true), args);
        } finally {
            System.out.flush();
            System.setOut(systemOut);
        }
        return new Result(code, out.toString(), err.toString());
    }

    /** Bytes printed on System.out, decoded as UTF-8 into the command's captured standard output. */
    private static final class WriterOutputStream extends OutputStream {
        private final Writer writer;
        private final java.io.ByteArrayOutputStream pending = new java.io.ByteArrayOutputStream();

        WriterOutputStream(Writer writer) {
            this.writer = writer;
        }

        @Override
        public synchronized void write(int b) {
            pending.write(b);
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            pending.write(b, off, len);
        }

        @Override
        public synchronized void flush() throws java.io.IOException {
            writer.write(pending.toString(StandardCharsets.UTF_8));
            writer.flush();
            pending.reset();
        }
    }
}
