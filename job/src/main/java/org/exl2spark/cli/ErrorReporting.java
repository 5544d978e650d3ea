package org.exl2spark.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import org.exl2spark.pipeline.SparkErrors;
import picocli.CommandLine;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.ParseResult;

/**
 * How a command's failure reaches the user: one line on stderr, {@code <command>: <message>}, and a non-zero exit.
 * Stack traces only with {@code --verbose}.
 */
final class ErrorReporting {
    /** Bad input: a missing or malformed file, an invalid argument value, an unreachable file system. */
    static final int INPUT_ERROR = 1;
    /** A bug or an unexpected failure in the tool itself (sysexits' EX_SOFTWARE). */
    static final int INTERNAL_ERROR = 70;

    private ErrorReporting() {
    }

    static int executionError(Exception e, CommandLine cl, ParseResult parsed) {
        PrintWriter err = cl.getErr();
        String command = cl.getCommandSpec().qualifiedName();
        // a failed Spark job is judged, and reported, by what its task threw
        Throwable cause = SparkErrors.taskError(e);
        boolean userError = isInputError(cause);
        String message = oneLine(e);
        if (userError) {
            err.println(command + ": " + message);
        } else {
            err.println(command + ": internal error: " + cause.getClass().getName() + ": " + message
                    + (isVerbose(parsed) ? "" : " (rerun with --verbose for the stack trace)"));
        }
        if (isVerbose(parsed)) {
            e.printStackTrace(err);
        }
        err.flush();
        return userError ? INPUT_ERROR : INTERNAL_ERROR;
    }

    static int parameterError(ParameterException e, String[] args) {
        CommandLine cl = e.getCommandLine();
        String command = cl.getCommandSpec().qualifiedName();
        PrintWriter err = cl.getErr();
        err.println(command + ": " + oneLine(e) + " (see '" + command + " --help')");
        err.flush();
        return CommandLine.ExitCode.USAGE;
    }

    static boolean isInputError(Throwable e) {
        return e instanceof IOException || e instanceof UncheckedIOException || e instanceof IllegalArgumentException;
    }

    /**
     * The message on one line (a failed Spark job's: the failed task's); exceptions without one are named by their
     * class.
     */
    static String oneLine(Throwable e) {
        Throwable shown = e instanceof UncheckedIOException && e.getCause() != null ? e.getCause() : e;
        return SparkErrors.rootMessage(shown).replaceAll("\\s*\\R\\s*", " ");
    }

    /** --verbose is inherited, so it may have been given to the top command or to the subcommand. */
    static boolean isVerbose(ParseResult parsed) {
        for (ParseResult p = parsed; p != null; p = p.subcommand()) {
            if (p.hasMatchedOption("--verbose")) {
                return true;
            }
        }
        return false;
    }
}
