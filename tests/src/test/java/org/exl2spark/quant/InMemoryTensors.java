package org.exl2spark.quant;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import org.exl2spark.io.DType;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.io.TensorInfo;
import org.exl2spark.io.TensorSpec;

/**
 * Tensors held in memory, optionally layered over another source: entries put here hide the base's tensor of the same
 * name, removed names hide it entirely. The header entry (dtype, shape) and the bytes are independent, so a test can
 * declare a shape its bytes do not fill (a truncated tensor).
 */
final class InMemoryTensors implements TensorSource {
    private final TensorSource base;
    private final Map<String, TensorInfo> infos = new LinkedHashMap<>();
    private final Map<String, byte[]> bytes = new LinkedHashMap<>();
    private final Set<String> removed = new LinkedHashSet<>();

    InMemoryTensors(TensorSource base) {
        this.base = base;
    }

    InMemoryTensors() {
        this(null);
    }

    /** All tensors of an encoded linear, written by its own writer. */
    static InMemoryTensors of(Exl2Linear linear) throws IOException {
        InMemoryTensors t = new InMemoryTensors();
        for (TensorSpec spec : linear.tensorSpecs()) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            linear.writeTensor(spec, out);
            t.put(spec.name(), spec.dtype(), spec.shape(), out.toByteArray());
        }
        return t;
    }

    /** Declares {@code name} as dtype[shape] holding {@code data} (whatever its length). */
    InMemoryTensors put(String name, DType dtype, long[] shape, byte[] data) {
        removed.remove(name);
        infos.put(name, new TensorInfo(name, dtype, shape, 0, data.length, 0));
        bytes.put(name, data.clone());
        return this;
    }

    InMemoryTensors remove(String name) {
        infos.remove(name);
        bytes.remove(name);
        removed.add(name);
        return this;
    }

    /** The current bytes of {@code name} as a little-endian buffer (a copy). */
    ByteBuffer bytesOf(String name) throws IOException {
        byte[] b = bytes.get(name);
        ByteBuffer buf = b != null ? ByteBuffer.wrap(b.clone()) : readAll(tensor(name));
        return buf.order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public String location() {
        return base == null ? "memory" : "memory over " + base.location();
    }

    @Override
    public Set<String> names() {
        Set<String> all = new LinkedHashSet<>();
        if (base != null) {
            all.addAll(base.names());
        }
        all.removeAll(removed);
        all.addAll(infos.keySet());
        return Collections.unmodifiableSet(all);
    }

    @Override
    public TensorInfo tensor(String name) throws IOException {
        TensorInfo t = infos.get(name);
        if (t != null) {
            return t;
        }
        if (base == null || removed.contains(name)) {
            throw new ModelFormatException(location() + ": no tensor named '" + name + "'");
        }
        return base.tensor(name);
    }

    @Override
    public void readRange(TensorInfo t, long offsetInTensor, ByteBuffer dst) throws IOException {
        byte[] b = bytes.get(t.name());
        if (b == null) {
            base.readRange(t, offsetInTensor, dst);
            return;
        }
        if (offsetInTensor + dst.remaining() > b.length) {
            throw new ModelFormatException(location() + ": tensor '" + t.name() + "' ends at " + b.length + " bytes");
        }
        dst.put(b, (int) offsetInTensor, dst.remaining());
    }
}
