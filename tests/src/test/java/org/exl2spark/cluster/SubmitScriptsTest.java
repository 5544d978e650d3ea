package org.exl2spark.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.exl2spark.testing.ProjectFiles;
import org.junit.jupiter.api.Test;

/**
 * The spark-submit wrappers (submit/spark-submit-*.sh) through their --dry-run, which prints the command they would
 * run, and the other cluster files: conf template, Kubernetes pod template, Databricks job. No cluster manager runs
 * here; StandaloneClusterTest runs the application itself.
 */
class SubmitScriptsTest {
    private static final String MAIN = "org.exl2spark.cli.Exl2";
    private static final List<String> USER_ARGS = List.of("convert", "-i", "hdfs:///models/my model", "-o",
            "hdfs:///jobs/m", "-b", "4.0");

    private record Run(int exit, List<String> words, String err) {
        /** The value after option {@code name}, or null. */
        String option(String name) {
            int i = words.indexOf(name);
            return i < 0 ? null : words.get(i + 1);
        }

        /** Every --conf KEY=VALUE; a key given twice fails the test. */
        Map<String, String> confs() {
            Map<String, String> m = new LinkedHashMap<>();
            for (int i = 0; i < words.size() - 1; i++) {
                if (words.get(i).equals("--conf")) {
                    String kv = words.get(i + 1);
                    String key = kv.substring(0, kv.indexOf('='));
                    assertNull(m.put(key, kv.substring(kv.indexOf('=') + 1)), key + " given twice");
                }
            }
            return m;
        }

        /** What follows the application jar: the exl2 command line. */
        List<String> afterJar(String jar) {
            return words.subList(words.indexOf(jar) + 1, words.size());
        }
    }

    /** Runs a wrapper with --dry-run and reads the command line it prints back into words, as bash would. */
    private static Run dryRun(String script, Map<String, String> env, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of("/bin/bash", "-c",
                "line=$(\"$@\") || exit $?; eval \"words=($line)\"; printf '%s\\n' \"${words[@]}\"", "_",
                ProjectFiles.resolve("submit/" + script).toString(), "--dry-run"));
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command);
        pb.environment().keySet().removeIf(k -> k.startsWith("SPARK_") || k.startsWith("EXL2_"));
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        return new Run(p.waitFor(), out.lines().collect(Collectors.toList()), err);
    }

    private static String[] withUserArgs(String... wrapperArgs) {
        List<String> all = new ArrayList<>(List.of(wrapperArgs));
        all.addAll(USER_ARGS);
        return all.toArray(String[]::new);
    }

    /** conf/spark-defaults.conf.template as key → value, /opt/exl2-spark replaced by {@code home}. */
    private static Map<String, String> template(String home) throws IOException {
        Map<String, String> m = new LinkedHashMap<>();
        for (String line : Files.readAllLines(ProjectFiles.resolve("conf/spark-defaults.conf.template"))) {
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("#")) {
                continue;
            }
            String[] kv = l.split("\\s+", 2);
            m.put(kv[0], kv[1].replace("/opt/exl2-spark", home));
        }
        return m;
    }

    private static void assertCarriesTemplate(Map<String, String> confs, Map<String, String> template,
            String... replacedKeys) {
        List<String> replaced = List.of(replacedKeys);
        template.forEach((k, v) -> {
            if (!replaced.contains(k)) {
                assertEquals(v, confs.get(k), k);
            }
        });
    }

    @Test
    void standalone() throws Exception {
        Run r = dryRun("spark-submit-standalone.sh", Map.of("SPARK_HOME", "/opt/spark", "EXL2_CLUSTER_HOME",
                "/srv/exl2"), withUserArgs("--master", "spark://head:7077", "--conf", "spark.executor.memory=8g"));
        assertEquals(0, r.exit(), r.err());
        assertEquals("/opt/spark/bin/spark-submit", r.words().get(0));
        assertEquals("spark://head:7077", r.option("--master"));
        assertEquals("client", r.option("--deploy-mode"));
        assertEquals(MAIN, r.option("--class"));
        assertEquals("exl2-spark", r.option("--name"));
        Map<String, String> confs = r.confs();
        assertCarriesTemplate(confs, template("/srv/exl2"));
        assertEquals("/srv/exl2/conf/getGpusResources.sh", confs.get("spark.executor.resource.gpu.discoveryScript"));
        assertEquals("8g", confs.get("spark.executor.memory"), "the user's --conf wins");
        assertEquals("4", confs.get("spark.executor.cores"));
        String jar = ProjectFiles.resolve("job/target/exl2-spark-cluster.jar").toString();
        assertEquals(USER_ARGS, r.afterJar(jar));
    }

    @Test
    void yarnShipsTheDiscoveryScript() throws Exception {
        Run r = dryRun("spark-submit-yarn.sh", Map.of(), withUserArgs("--num-executors", "6", "--queue", "gpu",
                "--name", "llama-70b"));
        assertEquals(0, r.exit(), r.err());
        assertEquals("spark-submit", r.words().get(0));
        assertEquals("yarn", r.option("--master"));
        assertEquals("cluster", r.option("--deploy-mode"));
        assertEquals("gpu", r.option("--queue"));
        assertEquals("llama-70b", r.option("--name"));
        assertEquals(ProjectFiles.resolve("conf/getGpusResources.sh").toString(), r.option("--files"));
        Map<String, String> confs = r.confs();
        assertCarriesTemplate(confs, template(ProjectFiles.root().toString()),
                "spark.executor.resource.gpu.discoveryScript");
        assertEquals("./getGpusResources.sh", confs.get("spark.executor.resource.gpu.discoveryScript"));
        assertEquals("6", confs.get("spark.executor.instances"));
        assertEquals(USER_ARGS, r.afterJar(ProjectFiles.resolve("job/target/exl2-spark-cluster.jar").toString()));
    }

    @Test
    void kubernetesRunsTheImageWithNvidiaGpus() throws Exception {
        Run r = dryRun("spark-submit-k8s.sh", Map.of("SPARK_MASTER", "k8s://https://api:6443"),
                withUserArgs("--image", "registry.example/exl2-spark:0.1", "--namespace", "ml", "--", "--"));
        assertEquals(0, r.exit(), r.err());
        assertEquals("k8s://https://api:6443", r.option("--master"));
        assertEquals("cluster", r.option("--deploy-mode"));
        Map<String, String> confs = r.confs();
        assertCarriesTemplate(confs, template("/opt/exl2-spark"));
        assertEquals("registry.example/exl2-spark:0.1", confs.get("spark.kubernetes.container.image"));
        assertEquals("nvidia.com", confs.get("spark.executor.resource.gpu.vendor"));
        assertEquals("ml", confs.get("spark.kubernetes.namespace"));
        Path podTemplate = Path.of(confs.get("spark.kubernetes.executor.podTemplateFile"));
        assertEquals(ProjectFiles.resolve("conf/k8s-executor-pod-template.yaml"), podTemplate);
        List<String> expected = new ArrayList<>(List.of("--"));
        expected.addAll(USER_ARGS);
        assertEquals(expected, r.afterJar("local:///opt/exl2-spark/exl2-spark-cluster.jar"),
                "after the wrapper's --, everything goes to exl2");
    }

    @Test
    void missingSettingsAreRefusedWithAMessage() throws Exception {
        Run noMaster = dryRun("spark-submit-standalone.sh", Map.of(), withUserArgs());
        assertEquals(2, noMaster.exit());
        assertTrue(noMaster.err().contains("--master spark://HOST:PORT"), noMaster.err());
        Run noImage = dryRun("spark-submit-k8s.sh", Map.of(), withUserArgs("--master", "k8s://https://api:6443"));
        assertEquals(2, noImage.exit());
        assertTrue(noImage.err().contains("--image IMAGE is required"), noImage.err());
        Run noCommand = dryRun("spark-submit-yarn.sh", Map.of());
        assertEquals(2, noCommand.exit());
        assertTrue(noCommand.err().contains("no exl2 command given"), noCommand.err());
        Run badConf = dryRun("spark-submit-yarn.sh", Map.of(), "--conf", "novalue", "convert");
        assertEquals(2, badConf.exit());
        assertTrue(badConf.err().contains("--conf needs KEY=VALUE"), badConf.err());
    }

    @Test
    void scriptsParse() throws Exception {
        for (String f : List.of("submit/spark-submit-common.sh", "submit/spark-submit-standalone.sh",
                "submit/spark-submit-yarn.sh", "submit/spark-submit-k8s.sh", "conf/getGpusResources.sh")) {
            Process p = new ProcessBuilder("/bin/bash", "-n", ProjectFiles.resolve(f).toString()).start();
            String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor(), f + ": " + err);
        }
        for (String f : List.of("submit/spark-submit-standalone.sh", "submit/spark-submit-yarn.sh",
                "submit/spark-submit-k8s.sh", "conf/getGpusResources.sh")) {
            assertTrue(Files.isExecutable(ProjectFiles.resolve(f)), f + " is executable");
        }
    }

    @Test
    void templateJvmFlagsAreTheProjectsFlags() throws IOException {
        String flags = Files.readAllLines(ProjectFiles.resolve("conf/jvm-flags.txt")).stream().map(String::strip)
                .filter(l -> !l.isEmpty()).collect(Collectors.joining(" "));
        Map<String, String> t = template("/opt/exl2-spark");
        assertEquals(flags, t.get("spark.driver.extraJavaOptions"));
        assertEquals(flags, t.get("spark.executor.extraJavaOptions"));
        assertTrue(flags.contains("-Dai.djl.offline=true"));
    }

    @Test
    void kubernetesPodTemplateIsAnExecutorPod() throws IOException {
        JsonNode pod = new ObjectMapper(new YAMLFactory()).readTree(
                ProjectFiles.resolve("conf/k8s-executor-pod-template.yaml").toFile());
        assertEquals("Pod", pod.get("kind").asText());
        JsonNode container = pod.at("/spec/containers/0");
        assertEquals("spark-kubernetes-executor", container.get("name").asText());
        assertEquals("CUDA_DEVICE_ORDER", container.at("/env/0/name").asText());
        assertEquals("PCI_BUS_ID", container.at("/env/0/value").asText());
        assertEquals("nvidia.com/gpu", pod.at("/spec/tolerations/0/key").asText());
    }

    @Test
    void databricksJobRunsTheClusterJarWithTheTemplatesSettings() throws IOException {
        JsonNode job = new ObjectMapper().readTree(ProjectFiles.resolve("submit/databricks-job.json").toFile());
        Map<String, String> t = template("/opt/exl2-spark");
        JsonNode conf = job.at("/job_clusters/0/new_cluster/spark_conf");
        for (String key : List.of("spark.serializer", "spark.kryo.registrationRequired", "spark.kryo.registrator",
                "spark.task.resource.gpu.amount", "spark.executorEnv.CUDA_DEVICE_ORDER")) {
            assertEquals(t.get(key), conf.get(key).asText(), key);
        }
        assertTrue(conf.get("spark.executor.extraJavaOptions").asText().contains("-Dai.djl.offline=true"));
        assertTrue(job.at("/job_clusters/0/new_cluster/spark_version").asText().contains("scala2.13"),
                "Scala 2.13, as the jar is built");
        List<String> parameters = new ArrayList<>();
        job.get("parameters").forEach(p -> parameters.add(p.get("name").asText()));
        for (JsonNode task : job.get("tasks")) {
            assertEquals(MAIN, task.at("/spark_jar_task/main_class_name").asText());
            assertTrue(task.at("/libraries/0/jar").asText().endsWith("/exl2-spark-cluster.jar"));
            assertEquals("gpu", task.get("job_cluster_key").asText());
            for (JsonNode arg : task.at("/spark_jar_task/parameters")) {
                String a = arg.asText();
                if (a.startsWith("{{job.parameters.")) {
                    assertTrue(parameters.contains(a.substring(17, a.length() - 2)), a + " is a job parameter");
                }
            }
        }
        assertFalse(job.get("tasks").isEmpty());
    }
}
