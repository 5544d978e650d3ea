package org.exl2spark.pipeline;

import com.esotericsoftware.kryo.Kryo;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.spark.serializer.KryoRegistrator;

/**
 * Registers with Kryo every class our jobs send through Spark's serializer: task results, records in RDDs that are
 * shuffled, cached or collected, broadcast values. Jobs run with {@code spark.kryo.registrationRequired=true}
 * ({@link SparkSessions}), so a class missing here fails the job at once, naming the class, instead of silently
 * writing its name into every record. Kryo numbers classes in registration order, and the driver and every executor
 * run this same list, so the numbers agree.
 *
 * <p>Closures and the partitions of {@code parallelize} go through Java serialization instead: what a task captures
 * must be {@link java.io.Serializable}.
 */
public final class KryoRegistration implements KryoRegistrator {

    /**
     * Every payload class, in one place: the passes' task descriptors and reports ({@link Tasks#PAYLOADS}), the
     * cluster check's records, and the containers they travel in. Records get {@link RecordSerializer}.
     */
    static final List<Class<?>> PAYLOAD_CLASSES = Stream.of(
            Tasks.PAYLOADS,
            List.<Class<?>>of(ClusterSmokeJob.TaskReport.class, ClusterSmokeJob.Exchange.class),
            List.<Class<?>>of(Object[].class, ArrayList.class))
            .flatMap(List::stream).collect(Collectors.toUnmodifiableList());

    @Override
    public void registerClasses(Kryo kryo) {
        for (Class<?> c : PAYLOAD_CLASSES) {
            register(kryo, c);
        }
    }

    private static <T> void register(Kryo kryo, Class<T> c) {
        if (c.isRecord()) {
            kryo.register(c, new RecordSerializer<>(c));
        } else {
            kryo.register(c);
        }
    }
}
