package org.exl2spark.pipeline;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.lang.invoke.MethodType;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.RecordComponent;

/**
 * Kryo serializer for a Java record: its components in declaration order, rebuilt through the canonical constructor.
 * Spark's Kryo (4.x) cannot serialize records with its default field serializer (it cannot set their final fields),
 * so {@link KryoRegistration} registers every record with this one. Components of a non-primitive type are written
 * with their class, so their classes must be registered too (String, boxed primitives and primitive arrays are).
 */
final class RecordSerializer<T> extends Serializer<T> {
    private final Class<T> type;
    private final Method[] accessors;
    /** The boxed class of a primitive component (written without its class), null for any other component. */
    private final Class<?>[] primitiveBoxes;
    private final Constructor<T> canonical;

    RecordSerializer(Class<T> type) {
        if (!type.isRecord()) {
            throw new IllegalArgumentException(type.getName() + " is not a record");
        }
        this.type = type;
        RecordComponent[] components = type.getRecordComponents();
        accessors = new Method[components.length];
        Class<?>[] componentTypes = new Class<?>[components.length];
        primitiveBoxes = new Class<?>[components.length];
        for (int i = 0; i < components.length; i++) {
            accessors[i] = components[i].getAccessor();
            accessors[i].setAccessible(true);
            componentTypes[i] = components[i].getType();
            if (componentTypes[i].isPrimitive()) {
                primitiveBoxes[i] = MethodType.methodType(componentTypes[i]).wrap().returnType();
            }
        }
        try {
            canonical = type.getDeclaredConstructor(componentTypes);
        } catch (NoSuchMethodException e) {
            throw new IllegalStateException("record " + type.getName() + " has no canonical constructor", e);
        }
        canonical.setAccessible(true);
    }

    @Override
    public void write(Kryo kryo, Output output, T record) {
        for (int i = 0; i < accessors.length; i++) {
            Object value;
            try {
                value = accessors[i].invoke(record);
            } catch (IllegalAccessException | InvocationTargetException e) {
                throw new KryoException("cannot read " + type.getName() + "." + accessors[i].getName(), e);
            }
            if (primitiveBoxes[i] != null) {
                kryo.writeObject(output, value);
            } else {
                kryo.writeClassAndObject(output, value);
            }
        }
    }

    @Override
    public T read(Kryo kryo, Input input, Class<T> requested) {
        Object[] values = new Object[accessors.length];
        for (int i = 0; i < values.length; i++) {
            values[i] = primitiveBoxes[i] != null
                    ? kryo.readObject(input, primitiveBoxes[i])
                    : kryo.readClassAndObject(input);
        }
        try {
            return canonical.newInstance(values);
        } catch (InstantiationException | IllegalAccessException | InvocationTargetException e) {
            throw new KryoException("cannot rebuild a " + type.getName(), e);
        }
    }
}
