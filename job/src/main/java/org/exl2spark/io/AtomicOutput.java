package org.exl2spark.io;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.util.UUID;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A file that appears at its target only once {@link #commit()} is called: bytes go to a hidden temporary sibling,
 * which commit renames into place (on S3A the object is uploaded whole on close, then copied). Closing without
 * committing deletes the temporary file, so a failed writer leaves nothing behind at the target.
 */
public final class AtomicOutput extends FilterOutputStream {
    private final FileSystem fs;
    private final Path target;
    private final Path temporary;
    private final FSDataOutputStream stream;
    private boolean committed;
    private boolean closed;

    private AtomicOutput(FileSystem fs, Path target, Path temporary, FSDataOutputStream stream) {
        super(stream);
        this.fs = fs;
        this.target = target;
        this.temporary = temporary;
        this.stream = stream;
    }

    public static AtomicOutput create(FileSystem fs, Path target) throws IOException {
        Path tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
        return new AtomicOutput(fs, target, tmp, fs.create(tmp, false));
    }

    public Path target() {
        return target;
    }

    /** Bytes written so far. */
    public long position() throws IOException {
        return stream.getPos();
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        stream.write(b, off, len);
    }

    /** Finishes the file and moves it to its target, replacing what was there. */
    public void commit() throws IOException {
        stream.close();
        closed = true;
        if (fs.exists(target)) {
            fs.delete(target, false);
        }
        if (!fs.rename(temporary, target)) {
            fs.delete(temporary, false);
            throw new IOException("could not rename " + temporary + " to " + target);
        }
        committed = true;
    }

    @Override
    public void close() throws IOException {
        if (committed) {
            return;
        }
        try {
            if (!closed) {
                stream.close();
                closed = true;
            }
        } finally {
            fs.delete(temporary, false);
        }
    }

    /** Writes a whole small file atomically. */
    public static void write(FileSystem fs, Path target, byte[] content) throws IOException {
        try (AtomicOutput out = create(fs, target)) {
            out.write(content);
            out.commit();
        }
    }
}
