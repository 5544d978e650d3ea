package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.Test;

/** exl2 cluster-check in an embedded local Spark (one executor: the driver); on a real cluster see StandaloneClusterTest. */
class ClusterCheckCommandTest {

    private record Result(int exit, String out, String err) {
    }

    private static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        String[] command = new String[args.length + 1];
        command[0] = "cluster-check";
        System.arraycopy(args, 0, command, 1, args.length);
        int exit = Exl2.run(new PrintWriter(out, true), new PrintWriter(err, true), command);
        return new Result(exit, out.toString(), err.toString());
    }

    @Test
    void checksALocalSparkOnTheCpu() throws Exception {
        Path dir = SharedData.scratch("cluster-check-local");
        // a stale check-in from an earlier run must not count
        Files.createDirectories(dir.resolve("cluster-check"));
        Files.writeString(dir.resolve("cluster-check/in-00099-0.json"), "{}");
        Result r = run("-o", dir.toString(), "--tasks", "3", "--master", "local[2]");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().startsWith("cluster check of local[2] (local-"), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.matches("driver +\\S+ +" + ProcessHandle.current().pid()
                + " +- +unset +3 +cpu \\(.*BLAS.*\\)")), r.out());
        assertTrue(r.out().contains("warning: no task was given a GPU"), r.out());
        assertTrue(r.out().contains("OK: 1 executor ran 3 tasks"), r.out());
        JsonNode report = new ObjectMapper().readTree(dir.resolve("cluster-check/report.json").toFile());
        assertEquals(3, report.get("checkIns").size());
        assertEquals(3, report.get("exchanges").size());
        assertEquals(0, report.get("crossExecutorReads").asInt(), "one executor reads its own files");
        assertTrue(!Files.exists(dir.resolve("cluster-check/in-00099-0.json")), "stale files removed");
    }

    @Test
    void missingExecutorsFailWithTheReason() {
        Result r = run("-o", SharedData.targetDir().resolve("scratch/never").toString(), "--executors", "2",
                "--wait", "1", "--master", "local[2]");
        assertEquals(ClusterCheckCommand.CHECK_FAILED, r.exit());
        assertEquals("exl2 cluster-check: only 1 of 2 executors registered within 1 s: does the cluster have free slots"
                + " (cores, memory, one GPU each) for that many?", r.err().strip());
    }

    @Test
    void fewerTasksThanExecutorsIsRefused() {
        Result r = run("-o", "/tmp/x", "--executors", "3", "--tasks", "2");
        assertEquals(ErrorReporting.INPUT_ERROR, r.exit());
        assertEquals("exl2 cluster-check: need at least one executor and at least as many tasks as executors (got 2"
                + " tasks for 3 executors)", r.err().strip());
    }
}
