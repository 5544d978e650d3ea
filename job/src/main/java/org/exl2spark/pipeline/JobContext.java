package org.exl2spark.pipeline;

import java.io.Serializable;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;

/**
 * What every task needs to find its inputs: the model, the job directory, the Hadoop settings to reach them and how
 * many rows a forward processes at once. Small and serializable: it travels inside each Spark task's closure.
 */
public final class JobContext implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String modelUri;
    private final String jobDirUri;
    private final HashMap<String, String> hadoopSettings;
    private final int rowsPerChunk;
    private final int rowsPerPartition;

    public JobContext(String modelUri, String jobDirUri, Map<String, String> hadoopSettings, int rowsPerChunk,
            int rowsPerPartition) {
        this.modelUri = modelUri;
        this.jobDirUri = jobDirUri;
        this.hadoopSettings = new HashMap<>(hadoopSettings);
        this.rowsPerChunk = rowsPerChunk;
        this.rowsPerPartition = rowsPerPartition;
    }

    /** Calibration rows per state file (and per forward task). */
    public int rowsPerPartition() {
        return rowsPerPartition;
    }

    public String modelUri() {
        return modelUri;
    }

    public String jobDirUri() {
        return jobDirUri;
    }

    public int rowsPerChunk() {
        return rowsPerChunk;
    }

    /** A fresh Hadoop configuration with this job's settings applied. */
    public Configuration hadoopConf() {
        Configuration conf = new Configuration();
        hadoopSettings.forEach(conf::set);
        return conf;
    }
}
