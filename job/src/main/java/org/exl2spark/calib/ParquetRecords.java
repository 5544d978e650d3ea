package org.exl2spark.calib;

import java.io.IOException;
import java.util.function.Predicate;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.GroupReadSupport;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.schema.GroupType;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.Type;
import org.exl2spark.io.ModelFormatException;

/**
 * Text records of a parquet file as ExLlamaV2 reads calibration and evaluation data (EXL2-SPEC H.2): each record is
 * the values of all its columns, each formatted as Python's {@code str()} would, joined by single spaces.
 */
public final class ParquetRecords {
    private ParquetRecords() {
    }

    /** Feeds records in file order to {@code consumer} until it returns false or the file ends. */
    public static void forEach(Path file, Configuration conf, Predicate<String> consumer) throws IOException {
        InputFile in;
        try {
            in = HadoopInputFile.fromPath(file, conf);
        } catch (java.io.FileNotFoundException e) {
            throw new ModelFormatException(file + ": calibration file not found", e);
        }
        try (ParquetReader<Group> reader = new ParquetReader.Builder<Group>(in) {
            @Override
            protected ReadSupport<Group> getReadSupport() {
                return new GroupReadSupport();
            }
        }.withConf(conf).build()) {
            for (Group g = reader.read(); g != null; g = reader.read()) {
                if (!consumer.test(format(g))) {
                    return;
                }
            }
        } catch (RuntimeException e) {
            throw new ModelFormatException(file + ": not a readable parquet file: " + e.getMessage(), e);
        }
    }

    static String format(Group g) {
        GroupType schema = g.getType();
        StringBuilder sb = new StringBuilder();
        for (int f = 0; f < schema.getFieldCount(); f++) {
            if (f > 0) {
                sb.append(' ');
            }
            Type t = schema.getType(f);
            int n = g.getFieldRepetitionCount(f);
            if (n == 0) {
                sb.append("None");
            } else if (t.isRepetition(Type.Repetition.REPEATED)) {
                sb.append('[');
                for (int i = 0; i < n; i++) {
                    sb.append(i > 0 ? ", " : "").append(value(g, f, i, t));
                }
                sb.append(']');
            } else {
                sb.append(value(g, f, 0, t));
            }
        }
        return sb.toString();
    }

    private static String value(Group g, int field, int index, Type t) {
        if (!t.isPrimitive()) {
            return g.getGroup(field, index).toString();
        }
        PrimitiveType p = t.asPrimitiveType();
        LogicalTypeAnnotation logical = p.getLogicalTypeAnnotation();
        return switch (p.getPrimitiveTypeName()) {
            case BINARY, FIXED_LEN_BYTE_ARRAY -> logical instanceof LogicalTypeAnnotation.StringLogicalTypeAnnotation
                    || logical instanceof LogicalTypeAnnotation.EnumLogicalTypeAnnotation
                    || logical instanceof LogicalTypeAnnotation.JsonLogicalTypeAnnotation
                    || logical == null ? g.getString(field, index) : g.getValueToString(field, index);
            case BOOLEAN -> g.getBoolean(field, index) ? "True" : "False";
            case INT32 -> Integer.toString(g.getInteger(field, index));
            case INT64 -> Long.toString(g.getLong(field, index));
            case FLOAT -> PythonFloat.repr(Double.parseDouble(Float.toString(g.getFloat(field, index))));
            case DOUBLE -> PythonFloat.repr(g.getDouble(field, index));
            default -> g.getValueToString(field, index);
        };
    }

    /** Python's float repr (shortest round-trip digits, its exponent style). */
    static final class PythonFloat {
        private PythonFloat() {
        }

        static String repr(double v) {
            if (Double.isNaN(v)) {
                return "nan";
            }
            if (Double.isInfinite(v)) {
                return v > 0 ? "inf" : "-inf";
            }
            if (v == Math.rint(v) && Math.abs(v) < 1e16) {
                return (long) v + ".0";
            }
            java.math.BigDecimal d = new java.math.BigDecimal(Double.toString(v)).stripTrailingZeros();
            int exp = d.precision() - d.scale() - 1;
            if (exp < -4 || exp >= 16) {
                String digits = d.unscaledValue().abs().toString();
                String mant = digits.length() > 1 ? digits.charAt(0) + "." + digits.substring(1) : digits;
                return (v < 0 ? "-" : "") + mant + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
            }
            return d.toPlainString();
        }
    }
}
