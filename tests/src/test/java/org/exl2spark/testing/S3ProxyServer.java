package org.exl2spark.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;

/**
 * A real S3 endpoint for tests: s3proxy (filesystem backend) in its own JVM on a free loopback port, with one bucket.
 * Its own process keeps s3proxy's Jetty and AWS SDK apart from Spark's classpath. Start one per test class; close
 * stops it and deletes everything it stored.
 */
public final class S3ProxyServer implements AutoCloseable {
    public static final String ACCESS_KEY = "exl2-test-access";
    public static final String SECRET_KEY = "exl2-test-secret";
    private static final long START_TIMEOUT_MS = 60_000;

    private final Path workDir;
    private final Path dataDir;
    private final Path log;
    private final String bucket;
    private final int port;
    private final Process process;
    private final Configuration conf;
    private final List<String> extraBuckets = new java.util.ArrayList<>();

    public S3ProxyServer() throws IOException {
        Path jar = Paths.get(System.getProperty("exl2.s3proxy.jar",
                SharedData.targetDir().resolve("s3proxy/s3proxy.jar").toString()));
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException("s3proxy jar not found at " + jar + " (mvn generate-test-resources copies it)");
        }
        Path base = SharedData.targetDir().resolve("s3proxy-run");
        Files.createDirectories(base);
        workDir = Files.createTempDirectory(base, "s3-");
        dataDir = workDir.resolve("data");
        // a bucket of the filesystem backend is a folder; a unique name keeps Hadoop's FileSystem cache (keyed by
        // scheme and bucket) from handing one test class the client of another class's server
        bucket = "bucket-" + UUID.randomUUID().toString().substring(0, 8).toLowerCase(Locale.ROOT);
        Files.createDirectories(dataDir.resolve(bucket));
        port = freePort();
        conf = s3aConfiguration();
        Properties p = new Properties();
        p.setProperty("s3proxy.endpoint", "http://127.0.0.1:" + port);
        p.setProperty("s3proxy.authorization", "aws-v2-or-v4");
        p.setProperty("s3proxy.identity", ACCESS_KEY);
        p.setProperty("s3proxy.credential", SECRET_KEY);
        p.setProperty("jclouds.provider", "filesystem");
        p.setProperty("jclouds.filesystem.basedir", dataDir.toString());
        Path props = workDir.resolve("s3proxy.properties");
        try (var w = Files.newBufferedWriter(props, StandardCharsets.UTF_8)) {
            p.store(w, "test s3proxy");
        }
        log = SharedData.targetDir().resolve("s3proxy-" + port + ".log");
        Path java = Paths.get(System.getProperty("java.home"), "bin", "java");
        process = new ProcessBuilder(List.of(java.toString(), "-Xmx512m", "-DLOG_LEVEL=warn",
                "-Djava.io.tmpdir=" + workDir, "-jar", jar.toString(), "--properties", props.toString()))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            awaitListening();
        } catch (IOException | RuntimeException e) {
            stop();
            throw e;
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private void awaitListening() throws IOException {
        long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
        while (true) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
                return;
            } catch (IOException notYet) {
                if (!process.isAlive()) {
                    throw new IOException("s3proxy exited with " + process.exitValue() + " before listening; see "
                            + log + ":\n" + Files.readString(log));
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new IOException("s3proxy did not listen on port " + port + " within " + START_TIMEOUT_MS
                            + " ms; see " + log);
                }
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted waiting for s3proxy", e);
                }
            }
        }
    }

    /** S3A settings for this server (docs/notes/storage-test-stack.md): loopback, path style, no retries. */
    private Configuration s3aConfiguration() throws IOException {
        Configuration c = new Configuration();
        s3aSettings().forEach(c::set);
        return c;
    }

    /**
     * The S3A keys and values that reach this server, e.g. to pass to a command as {@code --conf KEY=VALUE}: loopback,
     * path style, these credentials, no retries.
     */
    public Map<String, String> s3aSettings() throws IOException {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("fs.s3a.endpoint", "http://127.0.0.1:" + port);
        c.put("fs.s3a.endpoint.region", "us-east-1");
        c.put("fs.s3a.path.style.access", "true");
        c.put("fs.s3a.connection.ssl.enabled", "false");
        c.put("fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider");
        c.put("fs.s3a.access.key", ACCESS_KEY);
        c.put("fs.s3a.secret.key", SECRET_KEY);
        // a broken server must fail a test in seconds, not after minutes of retries
        c.put("fs.s3a.retry.limit", "1");
        c.put("fs.s3a.attempts.maximum", "1");
        Path buffers = workDir.resolve("s3a-buffer");
        Files.createDirectories(buffers);
        c.put("fs.s3a.buffer.dir", buffers.toString());
        c.put("fs.s3a.multipart.size", "5M");
        c.put("fs.s3a.multipart.threshold", "5M");
        // 0-byte and streaming PUTs with signed chunked payloads fail on some servers; unsigned payload works on all
        c.put("fs.s3a.signing-algorithm", "AWS4UnsignedPayloadSignerType");
        return c;
    }

    public String bucket() {
        return bucket;
    }

    /**
     * Adds a bucket (a folder, for the filesystem backend) named {@code bucket()-suffix} and returns its name. Each
     * bucket gets its own cached S3A client, so per-bucket options ({@code fs.s3a.bucket.NAME.*}) take effect.
     */
    public String createBucket(String suffix) throws IOException {
        String name = bucket + "-" + suffix;
        Files.createDirectories(dataDir.resolve(name));
        extraBuckets.add(name);
        return name;
    }

    /** {@code s3a://BUCKET/}. */
    public URI uri() {
        return URI.create("s3a://" + bucket + "/");
    }

    /** A path in this server's bucket, e.g. {@code path("models/tiny")}. */
    public org.apache.hadoop.fs.Path path(String key) {
        return new org.apache.hadoop.fs.Path("s3a://" + bucket + "/" + (key.startsWith("/") ? key.substring(1) : key));
    }

    /** A configuration whose S3A client talks to this server. */
    public Configuration configuration() {
        return new Configuration(conf);
    }

    public FileSystem fileSystem() throws IOException {
        return FileSystem.get(uri(), conf);
    }

    /** The folder where the filesystem backend keeps this bucket's objects. */
    public Path bucketDir() {
        return dataDir.resolve(bucket);
    }

    @Override
    public void close() throws IOException {
        try {
            // drop the cached S3A clients (and their threads) while the server still answers
            FileSystem.get(uri(), conf).close();
            for (String b : extraBuckets) {
                FileSystem.get(URI.create("s3a://" + b + "/"), conf).close();
            }
        } finally {
            stop();
        }
    }

    private void stop() throws IOException {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        deleteRecursively(workDir);
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            all.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }
    }
}
