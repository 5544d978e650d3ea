package org.exl2spark.quant;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.exl2spark.io.ModelFormatException;
import org.exl2spark.model.BlockSpec;
import org.exl2spark.model.LinearSpec;
import org.exl2spark.model.ModelArchitecture;

/**
 * ExLlamaV2's measurement.json: for each decoder block (key {@code model.layers.N.self_attn} / {@code .mlp}) the list
 * of measured candidates; unmeasured modules (final norm, lm_head) map to null.
 */
public final class Measurement {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Map<String, List<BlockCandidate>> blocks;
    private final int lastModuleIdx;

    public Measurement(Map<String, List<BlockCandidate>> blocks, int lastModuleIdx) {
        Map<String, List<BlockCandidate>> copy = new LinkedHashMap<>();
        blocks.forEach((k, v) -> copy.put(k, List.copyOf(v)));
        this.blocks = Collections.unmodifiableMap(copy);
        this.lastModuleIdx = lastModuleIdx;
    }

    /** Measurement key of a block, as ExLlamaV2 names it. */
    public static String key(BlockSpec block) {
        return block.key();
    }

    /** ExLlamaV2 counts modules as embedding, 2 blocks per layer, final norm, lm_head. */
    public static int lastModuleIdx(ModelArchitecture arch) {
        return 2 * arch.numLayers() + 2;
    }

    public Map<String, List<BlockCandidate>> blocks() {
        return blocks;
    }

    public List<BlockCandidate> candidates(BlockSpec block) {
        return blocks.get(key(block));
    }

    public int lastModuleIdx() {
        return lastModuleIdx;
    }

    public static Measurement parse(byte[] json, String source) throws ModelFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new ModelFormatException(source + ": not valid JSON: " + e.getMessage(), e);
        }
        JsonNode m = root == null ? null : root.get("measurement");
        if (m == null || !m.isObject()) {
            throw new ModelFormatException(source + ": no 'measurement' object (not an ExLlamaV2 measurement.json?)");
        }
        Map<String, List<BlockCandidate>> blocks = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = m.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getValue().isNull()) {
                continue;
            }
            if (!e.getValue().isArray() || e.getValue().isEmpty()) {
                throw new ModelFormatException(source + ": measurement of '" + e.getKey() + "' is not a list of candidates");
            }
            List<BlockCandidate> list = new ArrayList<>();
            for (JsonNode c : e.getValue()) {
                list.add(parseCandidate(c, source + ": '" + e.getKey() + "'"));
            }
            blocks.put(e.getKey(), list);
        }
        int last = root.path("last_module_idx").asInt(-1);
        return new Measurement(blocks, last);
    }

    private static BlockCandidate parseCandidate(JsonNode c, String where) throws ModelFormatException {
        if (!c.isObject() || !c.path("accuracy").isNumber() || !c.path("total_bits").canConvertToLong()) {
            throw new ModelFormatException(where + ": candidate without numeric accuracy and total_bits");
        }
        Map<String, QParams> proj = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = c.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("accuracy") || e.getKey().equals("total_bits")) {
                continue;
            }
            proj.put(e.getKey(), parseQParams(e.getValue(), where + " " + e.getKey()));
        }
        return new BlockCandidate(c.get("accuracy").asDouble(), c.get("total_bits").asLong(), proj);
    }

    private static QParams parseQParams(JsonNode q, String where) throws ModelFormatException {
        JsonNode bitsNode = q.get("bits");
        JsonNode propNode = q.get("bits_prop");
        JsonNode gsNode = q.get("group_size");
        if (bitsNode == null || !bitsNode.isArray() || propNode == null || !propNode.isArray() || gsNode == null) {
            throw new ModelFormatException(where + ": QParams needs bits, bits_prop and group_size");
        }
        int n = bitsNode.size();
        int[] bits = new int[n];
        double[] prop = new double[n];
        int[] gs = new int[n];
        if (propNode.size() != n) {
            throw new ModelFormatException(where + ": bits and bits_prop differ in length");
        }
        for (int i = 0; i < n; i++) {
            bits[i] = bitsNode.get(i).asInt();
            prop[i] = propNode.get(i).asDouble();
            // a dict {"<bits>": size} per width, or one int for all widths
            JsonNode g = gsNode.isObject() ? gsNode.get(String.valueOf(bits[i])) : gsNode;
            if (g == null || !g.canConvertToInt()) {
                throw new ModelFormatException(where + ": no group size for " + bits[i] + "-bit rows");
            }
            gs[i] = g.asInt();
        }
        try {
            return new QParams(gs, bits, prop, q.path("scale_bits").asInt(QParams.SCALE_BITS));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(where + ": " + e.getMessage());
        }
    }

    /**
     * Checks that this measurement describes {@code arch}: every decoder block present, projections named as the
     * architecture names them, and each candidate's total_bits equal to what its QParams cost on this model's
     * shapes (a measurement of another model fails here).
     */
    public void checkMatches(ModelArchitecture arch, String source) throws ModelFormatException {
        for (var layer : arch.layers()) {
            for (BlockSpec b : layer.blocks()) {
                List<BlockCandidate> list = blocks.get(key(b));
                if (list == null) {
                    throw new ModelFormatException(source + ": no measurement for '" + key(b)
                            + "' (measurement of another model?)");
                }
                for (int i = 0; i < list.size(); i++) {
                    BlockCandidate c = list.get(i);
                    long expected = 0;
                    for (LinearSpec l : b.linears()) {
                        QParams q = c.projections().get(l.shortName());
                        if (q == null) {
                            throw new ModelFormatException(source + ": '" + key(b) + "' candidate " + i + " has no "
                                    + l.shortName() + " (measurement of another architecture?)");
                        }
                        expected += q.totalBits(l.inFeatures(), l.outFeatures(), l.hasBias());
                    }
                    if (expected != c.totalBits()) {
                        throw new ModelFormatException(source + ": '" + key(b) + "' candidate " + i + " records "
                                + c.totalBits() + " bits but costs " + expected
                                + " on this model's shapes (measurement of another model?)");
                    }
                }
            }
        }
        int expectedBlocks = 2 * arch.numLayers();
        if (blocks.size() != expectedBlocks) {
            throw new ModelFormatException(source + ": " + blocks.size() + " measured blocks, the model has "
                    + expectedBlocks + " (measurement of another model?)");
        }
    }

    /** One block's candidates as a JSON list in measurement.json's format (a job directory's per-block record). */
    public static byte[] blockJson(BlockSpec block, List<BlockCandidate> candidates) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = generator(out)) {
            g.writeStartArray();
            for (BlockCandidate c : candidates) {
                writeCandidate(g, block, c);
            }
            g.writeEndArray();
        }
        return out.toByteArray();
    }

    /** Reads what {@link #blockJson} wrote. */
    public static List<BlockCandidate> parseBlock(byte[] json, String source) throws ModelFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new ModelFormatException(source + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isArray() || root.isEmpty()) {
            throw new ModelFormatException(source + ": not a list of measured candidates");
        }
        List<BlockCandidate> list = new ArrayList<>();
        for (JsonNode c : root) {
            list.add(parseCandidate(c, source));
        }
        return list;
    }

    private static JsonGenerator generator(ByteArrayOutputStream out) throws IOException {
        DefaultPrettyPrinter pp = new DefaultPrettyPrinter(Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER))
                .withObjectIndenter(new DefaultIndenter("    ", "\n"))
                .withArrayIndenter(new DefaultIndenter("    ", "\n"));
        JsonGenerator g = JSON.getFactory().createGenerator(out);
        g.setPrettyPrinter(pp);
        return g;
    }

    /** ExLlamaV2's layout: 4-space indentation, one list item per line, null for unmeasured modules. */
    public byte[] toJson(ModelArchitecture arch) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = generator(out)) {
            g.writeStartObject();
            g.writeObjectFieldStart("measurement");
            for (var layer : arch.layers()) {
                for (BlockSpec b : layer.blocks()) {
                    g.writeArrayFieldStart(key(b));
                    for (BlockCandidate c : blocks.get(key(b))) {
                        writeCandidate(g, b, c);
                    }
                    g.writeEndArray();
                }
            }
            g.writeNullField("model.norm.norm");
            g.writeNullField("lm_head.linear");
            g.writeEndObject();
            g.writeNumberField("last_module_idx", lastModuleIdx);
            g.writeEndObject();
        }
        return out.toByteArray();
    }

    private static void writeCandidate(JsonGenerator g, BlockSpec b, BlockCandidate c) throws IOException {
        g.writeStartObject();
        g.writeNumberField("accuracy", c.accuracy());
        g.writeNumberField("total_bits", c.totalBits());
        for (LinearSpec l : b.linears()) {
            QParams q = c.projections().get(l.shortName());
            g.writeObjectFieldStart(l.shortName());
            g.writeObjectFieldStart("group_size");
            for (int i = 0; i < q.widths(); i++) {
                g.writeNumberField(String.valueOf(q.bits(i)), q.groupSize(i));
            }
            g.writeEndObject();
            g.writeArrayFieldStart("bits");
            for (int i = 0; i < q.widths(); i++) {
                g.writeNumber(q.bits(i));
            }
            g.writeEndArray();
            g.writeArrayFieldStart("bits_prop");
            for (double p : q.bitsProp()) {
                // Python writes the table's integer literal 1 as 1, not 1.0
                if (p == Math.rint(p)) {
                    g.writeNumber((long) p);
                } else {
                    g.writeNumber(p);
                }
            }
            g.writeEndArray();
            g.writeNumberField("scale_bits", q.scaleBits());
            g.writeEndObject();
        }
        g.writeEndObject();
    }
}
