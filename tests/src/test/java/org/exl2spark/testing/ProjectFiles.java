package org.exl2spark.testing;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Files of this checkout that tests run: scripts, confs, and the jars the build packages before the tests run. */
public final class ProjectFiles {
    private ProjectFiles() {
    }

    /** The checkout's root (the parent pom's folder). */
    public static Path root() {
        return Paths.get(System.getProperty("exl2.repo.dir", "..")).toAbsolutePath().normalize();
    }

    public static Path resolve(String relative) {
        return root().resolve(relative);
    }

    /**
     * The application jar for spark-submit (job/target/exl2-spark-cluster.jar). {@code mvn verify} packages the job
     * module before the tests module runs; a bare {@code mvn test} does not, and then this fails, saying so.
     */
    public static Path clusterJar() {
        Path jar = resolve("job/target/exl2-spark-cluster.jar");
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException(jar + " is not built: run mvn verify (or mvn package -pl job -am) first");
        }
        return jar;
    }
}
