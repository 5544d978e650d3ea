package org.exl2spark.pipeline;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.serializers.JavaSerializer;
import org.apache.spark.serializer.KryoRegistrator;

/**
 * Registers every payload Spark serializes for us (spark.kryo.registrationRequired is on, so a forgotten class
 * fails loudly). Task descriptors are Java records, which Kryo's field serializer cannot rebuild, so they travel
 * through Java serialization inside Kryo; they are a few bytes each.
 */
public final class KryoRegistration implements KryoRegistrator {
    @Override
    public void registerClasses(Kryo kryo) {
        for (Class<?> c : Tasks.PAYLOADS) {
            kryo.register(c, new JavaSerializer());
        }
        kryo.register(Object[].class);
        kryo.register(java.util.ArrayList.class);
    }
}
