package org.exl2spark.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.exl2spark.testing.SharedData;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** submit/exl2 end to end: JVM flags, classpath and logging set up so output is the command's alone. */
class LauncherTest {

    @BeforeAll
    static void needsTheJar() {
        Launcher.assumeJarBuilt();
    }

    @Test
    void helpListsTheCommandsAndNothingElseIsPrinted() throws Exception {
        Cli.Result r = Launcher.run(Map.of(), "--help").ok();
        assertTrue(r.out().startsWith("Usage: exl2 "), r.out());
        assertTrue(r.out().contains("inspect") && r.out().contains("example"), r.out());
    }

    @Test
    void missingModelIsOneLineOnStderr() throws Exception {
        Cli.Result r = Launcher.run(Map.of(), "inspect", "/no/such/model");
        assertEquals("exl2 inspect: file:/no/such/model: model directory not found\n", r.err());
        assertEquals(1, r.code());
        assertEquals("", r.out());
    }

    @Test
    void inspectsTheSharedModelWithoutLogNoise() throws Exception {
        Cli.Result r = Launcher.run(Map.of(), "inspect", SharedData.tinyModel().toString()).ok();
        assertTrue(r.out().contains("15,735,168 from config.json"), r.out());
    }

    @Test
    void javaOptsReachTheJvm() throws Exception {
        Cli.Result r = Launcher.run(Map.of("JAVA_OPTS", "-Xmx64m -XX:+PrintCommandLineFlags"), "--version").ok();
        assertTrue(r.out().contains("-XX:MaxHeapSize=67108864"), r.out());
        assertTrue(r.out().contains("exl2-spark 0.1.0"), r.out());
    }
}
