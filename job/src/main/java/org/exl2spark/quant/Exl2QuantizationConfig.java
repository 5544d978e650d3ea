package org.exl2spark.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Optional;
import org.exl2spark.io.ModelFormatException;

/**
 * The {@code quantization_config} ExLlamaV2 writes into an EXL2 model's config.json (spec B). It is informational:
 * ExLlamaV2 never reads it (decoding is self-described by q_groups), and models converted before ExLlamaV2 added it
 * (March 2024) have none, so EXL2 tensors must be recognised by {@code <key>.q_weight}, not by this block.
 *
 * @param version     the converter version string, e.g. "0.2.7"
 * @param bits        target bits per weight as given to the converter (-b)
 * @param headBits    lm_head bits (-hb)
 * @param calibration the quantization pass's calibration data
 */
public record Exl2QuantizationConfig(String version, double bits, int headBits, Calibration calibration) {
    public static final String KEY = "quantization_config";
    public static final String QUANT_METHOD = "exl2";
    /** The dataset name ExLlamaV2 records for its built-in calibration data. */
    public static final String DEFAULT_DATASET = "(default)";

    /**
     * @param rows    calibration rows of the quantization pass (-r; 115 for the built-in data)
     * @param length  tokens per row (-l)
     * @param dataset base name of the parquet file, or {@link #DEFAULT_DATASET}
     */
    public record Calibration(int rows, int length, String dataset) {
    }

    /**
     * The EXL2 quantization_config of a config.json, or empty when it has none or names another method. A block that
     * says {@code "quant_method": "exl2"} but lacks a field or has one of the wrong type is an error naming the field.
     */
    public static Optional<Exl2QuantizationConfig> fromConfig(JsonNode config, String source)
            throws ModelFormatException {
        JsonNode q = config == null ? null : config.get(KEY);
        if (q == null || !q.isObject() || !QUANT_METHOD.equals(q.path("quant_method").asText(null))) {
            return Optional.empty();
        }
        String where = source + ": " + KEY;
        JsonNode cal = field(q, "calibration", where);
        if (!cal.isObject()) {
            throw new ModelFormatException(where + ".calibration is not an object");
        }
        return Optional.of(new Exl2QuantizationConfig(
                text(q, "version", where),
                number(q, "bits", where),
                positiveInt(q, "head_bits", where),
                new Calibration(positiveInt(cal, "rows", where + ".calibration"),
                        positiveInt(cal, "length", where + ".calibration"),
                        text(cal, "dataset", where + ".calibration"))));
    }

    /** True when config.json declares an EXL2 model (quant_method "exl2"). */
    public static boolean declaresExl2(JsonNode config) {
        return config != null && QUANT_METHOD.equals(config.path(KEY).path("quant_method").asText(null));
    }

    /** The block as ExLlamaV2 writes it, fields in its order. */
    public ObjectNode toJson() {
        ObjectNode q = JsonNodeFactory.instance.objectNode();
        q.put("quant_method", QUANT_METHOD);
        q.put("version", version);
        q.put("bits", bits);
        q.put("head_bits", headBits);
        ObjectNode cal = q.putObject("calibration");
        cal.put("rows", calibration.rows());
        cal.put("length", calibration.length());
        cal.put("dataset", calibration.dataset());
        return q;
    }

    private static JsonNode field(JsonNode obj, String name, String where) throws ModelFormatException {
        JsonNode v = obj.get(name);
        if (v == null || v.isNull()) {
            throw new ModelFormatException(where + " has no '" + name + "'");
        }
        return v;
    }

    private static String text(JsonNode obj, String name, String where) throws ModelFormatException {
        JsonNode v = field(obj, name, where);
        if (!v.isTextual()) {
            throw new ModelFormatException(where + "." + name + " must be a string, got " + v);
        }
        return v.textValue();
    }

    private static double number(JsonNode obj, String name, String where) throws ModelFormatException {
        JsonNode v = field(obj, name, where);
        if (!v.isNumber() || !(v.doubleValue() > 0)) {
            throw new ModelFormatException(where + "." + name + " must be a positive number, got " + v);
        }
        return v.doubleValue();
    }

    private static int positiveInt(JsonNode obj, String name, String where) throws ModelFormatException {
        JsonNode v = field(obj, name, where);
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() <= 0) {
            throw new ModelFormatException(where + "." + name + " must be a positive integer, got " + v);
        }
        return v.intValue();
    }
}
