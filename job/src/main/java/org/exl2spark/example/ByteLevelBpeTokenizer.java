package org.exl2spark.example;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;

/**
 * A byte-level BPE tokenizer in the Hugging Face {@code tokenizers} JSON format (GPT-2 byte alphabet, ByteLevel
 * pre-tokenizer and decoder), trained by plain BPE on a seeded corpus of pseudo-English words. Any text round-trips
 * through it (every byte is a token); it compresses English-like text a little, like a small real tokenizer.
 * Ids 0-2 are {@code <s> </s> <pad>}, 3-258 the 256 byte tokens, the rest learned merges.
 */
public final class ByteLevelBpeTokenizer {
    public static final List<String> SPECIAL_TOKENS = List.of("<s>", "</s>", "<pad>");
    public static final int BOS_ID = 0;
    public static final int EOS_ID = 1;
    public static final int PAD_ID = 2;
    /** The smallest vocabulary: the special tokens and one token per byte. */
    public static final int MIN_VOCAB = SPECIAL_TOKENS.size() + 256;
    /** The fixed corpus runs out of pairs at 22,771 tokens; this leaves a margin (and ids fit in 16 bits). */
    public static final int MAX_VOCAB = 16384;

    private static final ObjectMapper JSON = new ObjectMapper();
    /** The corpus is fixed, so a vocabulary size alone determines the tokenizer. */
    private static final long CORPUS_SEED = 0x5eed_70c3L;
    private static final int CORPUS_WORDS = 4000;

    private final List<String> vocab;
    private final List<String[]> merges;

    private ByteLevelBpeTokenizer(List<String> vocab, List<String[]> merges) {
        this.vocab = vocab;
        this.merges = merges;
    }

    /** Trains merges until the vocabulary holds {@code vocabSize} tokens. */
    public static ByteLevelBpeTokenizer train(int vocabSize) {
        if (vocabSize < MIN_VOCAB || vocabSize > MAX_VOCAB) {
            throw new IllegalArgumentException("a byte-level BPE vocabulary here has " + MIN_VOCAB + " to " + MAX_VOCAB
                    + " tokens, asked for " + vocabSize);
        }
        return new Trainer(corpus()).train(vocabSize);
    }

    public int vocabSize() {
        return vocab.size();
    }

    public List<String[]> merges() {
        return merges;
    }

    /** tokenizer.json, as Hugging Face {@code tokenizers} writes it. */
    public byte[] toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("version", "1.0");
        root.putNull("truncation");
        root.putNull("padding");
        ArrayNode added = root.putArray("added_tokens");
        for (int id = 0; id < SPECIAL_TOKENS.size(); id++) {
            added.addObject().put("id", id).put("content", SPECIAL_TOKENS.get(id)).put("single_word", false)
                    .put("lstrip", false).put("rstrip", false).put("normalized", false).put("special", true);
        }
        root.putNull("normalizer");
        byteLevel(root.putObject("pre_tokenizer"), false);
        ObjectNode post = root.putObject("post_processor");
        post.put("type", "TemplateProcessing");
        ArrayNode single = post.putArray("single");
        single.addObject().putObject("SpecialToken").put("id", SPECIAL_TOKENS.get(BOS_ID)).put("type_id", 0);
        single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        ArrayNode pair = post.putArray("pair");
        pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
        pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
        ObjectNode bos = post.putObject("special_tokens").putObject(SPECIAL_TOKENS.get(BOS_ID));
        bos.put("id", SPECIAL_TOKENS.get(BOS_ID));
        bos.putArray("ids").add(BOS_ID);
        bos.putArray("tokens").add(SPECIAL_TOKENS.get(BOS_ID));
        byteLevel(root.putObject("decoder"), true);
        ObjectNode model = root.putObject("model");
        model.put("type", "BPE");
        model.putNull("dropout");
        model.putNull("unk_token");
        model.putNull("continuing_subword_prefix");
        model.putNull("end_of_word_suffix");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        ObjectNode v = model.putObject("vocab");
        for (int id = 0; id < vocab.size(); id++) {
            v.put(vocab.get(id), id);
        }
        ArrayNode m = model.putArray("merges");
        for (String[] merge : merges) {
            m.addArray().add(merge[0]).add(merge[1]);
        }
        try {
            return JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void byteLevel(ObjectNode node, boolean prefixSpace) {
        node.put("type", "ByteLevel");
        node.put("add_prefix_space", prefixSpace);
        node.put("trim_offsets", true);
        node.put("use_regex", true);
    }

    /**
     * GPT-2's byte → printable character map: printable Latin-1 bytes stand for themselves, the other 68 bytes
     * (controls, space, NBSP, soft hyphen) take the characters from U+0100 on, so 'Ġ' is the space.
     */
    static char[] byteToChar() {
        char[] map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char) b : (char) next++;
        }
        return map;
    }

    /** A pre-token's byte-level form: each UTF-8 byte as its GPT-2 character. */
    static String byteLevelForm(String text, char[] byteToChar) {
        StringBuilder s = new StringBuilder();
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            s.append(byteToChar[b & 0xff]);
        }
        return s.toString();
    }

    /**
     * Pre-tokens (as the ByteLevel pre-tokenizer cuts text: a word with its leading space, a number, punctuation,
     * whitespace runs) with Zipf-like counts, from seeded pseudo-English syllables.
     */
    static Map<String, Long> corpus() {
        String[] onsets = {"", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w",
            "y", "z", "bl", "br", "ch", "cl", "cr", "dr", "fl", "fr", "gl", "gr", "pl", "pr", "qu", "sc", "sh", "sk",
            "sl", "sm", "sn", "sp", "st", "str", "th", "tr", "tw", "wh"};
        String[] vowels = {"a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "oo", "ou", "io", "y"};
        String[] codas = {"", "", "", "n", "r", "s", "t", "l", "m", "nd", "ng", "nt", "st", "ck", "rd", "ll", "ss",
            "th", "x", "ct"};
        String[] suffixes = {"", "", "", "", "s", "ed", "ing", "er", "ly", "tion", "al", "ment", "ness", "able"};
        SplittableRandom r = new SplittableRandom(CORPUS_SEED);
        Set<String> seen = new HashSet<>();
        List<String> words = new ArrayList<>();
        while (words.size() < CORPUS_WORDS) {
            StringBuilder w = new StringBuilder();
            int syllables = 1 + r.nextInt(3);
            for (int i = 0; i < syllables; i++) {
                w.append(onsets[r.nextInt(onsets.length)]).append(vowels[r.nextInt(vowels.length)])
                        .append(codas[r.nextInt(codas.length)]);
            }
            w.append(suffixes[r.nextInt(suffixes.length)]);
            if (seen.add(w.toString())) {
                words.add(w.toString());
            }
        }
        char[] b2c = byteToChar();
        Map<String, Long> counts = new LinkedHashMap<>();
        for (int rank = 1; rank <= words.size(); rank++) {
            String w = words.get(rank - 1);
            long c = Math.max(1, 100_000L / rank);
            counts.merge(byteLevelForm(" " + w, b2c), c, Long::sum);
            counts.merge(byteLevelForm(" " + Character.toUpperCase(w.charAt(0)) + w.substring(1), b2c),
                    Math.max(1, c / 8), Long::sum);
            counts.merge(byteLevelForm(w, b2c), Math.max(1, c / 16), Long::sum);
        }
        for (int n = 0; n < 1000; n++) {
            counts.merge(byteLevelForm(" " + n, b2c), Math.max(1, 20_000L / (n + 1)), Long::sum);
        }
        String[] other = {".", ",", ":", ";", "?", "!", ")", ").", "),", " (", " \"", "\".", " -", " =", " {", "}",
            " [", "],", "\n", "\n\n", "  ", "    ", "        ", "\t", "\t\t", "'s", "'t", "'re", "'ll"};
        for (int i = 0; i < other.length; i++) {
            counts.merge(byteLevelForm(other[i], b2c), 50_000L / (i + 1), Long::sum);
        }
        return counts;
    }

    /** Plain BPE: repeatedly merge the most frequent adjacent pair, updating counts only in words that change. */
    private static final class Trainer {
        private static final long SCRAMBLE = 0x9E3779B97F4A7C15L;
        private static final long UNSCRAMBLE = inverse(SCRAMBLE);
        private final List<String> vocab = new ArrayList<>();
        private final Map<String, Integer> ids = new HashMap<>();
        private final int[][] words;
        private final long[] wordCounts;
        private final Map<Long, Long> pairCounts = new HashMap<>();
        private final Map<Long, Set<Integer>> pairWords = new HashMap<>();
        /** Candidates by count (then ids, for a deterministic order); stale entries are skipped when polled. */
        private final PriorityQueue<long[]> queue = new PriorityQueue<>((x, y) -> x[0] != y[0]
                ? Long.compare(y[0], x[0]) : Long.compare(x[1], y[1]));

        Trainer(Map<String, Long> corpus) {
            SPECIAL_TOKENS.forEach(this::add);
            TreeSet<Character> alphabet = new TreeSet<>();
            for (char c : byteToChar()) {
                alphabet.add(c);
            }
            alphabet.forEach(c -> add(String.valueOf(c)));
            words = new int[corpus.size()][];
            wordCounts = new long[corpus.size()];
            int w = 0;
            for (Map.Entry<String, Long> e : corpus.entrySet()) {
                String s = e.getKey();
                words[w] = new int[s.length()];
                for (int i = 0; i < s.length(); i++) {
                    words[w][i] = ids.get(String.valueOf(s.charAt(i)));
                }
                wordCounts[w] = e.getValue();
                w++;
            }
            Map<Long, Long> initial = new HashMap<>();
            for (int i = 0; i < words.length; i++) {
                countPairs(i, +1, initial);
                index(i, -1);
            }
            apply(initial);
        }

        private int add(String token) {
            Integer id = ids.get(token);
            if (id != null) {
                return id;
            }
            ids.put(token, vocab.size());
            vocab.add(token);
            return vocab.size() - 1;
        }

        /**
         * A pair packed as {@code left << 16 | right}, times an odd constant: a bijection whose Long hash spreads
         * well (HashMap would put the packed value's neighbours, and so most pairs, in a few bins).
         */
        private static long pair(int left, int right) {
            return (((long) left << 16) | right) * SCRAMBLE;
        }

        private static int left(long pair) {
            return (int) ((pair * UNSCRAMBLE) >>> 16);
        }

        private static int right(long pair) {
            return (int) ((pair * UNSCRAMBLE) & 0xffff);
        }

        /** The inverse of an odd number modulo 2^64, by Newton's iteration (each step doubles the correct bits). */
        private static long inverse(long odd) {
            long x = odd;
            for (int i = 0; i < 5; i++) {
                x *= 2 - odd * x;
            }
            return x;
        }

        /** Adds (sign +1) or removes (-1) word {@code w}'s pairs from the counts, collecting them in {@code changed}. */
        private void countPairs(int w, int sign, Map<Long, Long> changed) {
            int[] s = words[w];
            for (int i = 0; i + 1 < s.length; i++) {
                changed.merge(pair(s[i], s[i + 1]), sign * wordCounts[w], Long::sum);
            }
        }

        /** Notes that word {@code w} holds its pairs that contain {@code token} (all its pairs when it is -1). */
        private void index(int w, int token) {
            int[] s = words[w];
            for (int i = 0; i + 1 < s.length; i++) {
                if (token < 0 || s[i] == token || s[i + 1] == token) {
                    pairWords.computeIfAbsent(pair(s[i], s[i + 1]), k -> new HashSet<>()).add(w);
                }
            }
        }

        private void apply(Map<Long, Long> changed) {
            changed.forEach((p, delta) -> {
                if (delta != 0) {
                    long c = pairCounts.merge(p, delta, Long::sum);
                    if (c == 0) {
                        pairCounts.remove(p);
                    } else {
                        queue.add(new long[] {c, p});
                    }
                }
            });
        }

        ByteLevelBpeTokenizer train(int vocabSize) {
            List<String[]> merges = new ArrayList<>();
            while (vocab.size() < vocabSize) {
                long[] top = queue.poll();
                if (top == null) {
                    throw new IllegalStateException(String.format(Locale.ROOT,
                            "BPE corpus exhausted at %d tokens (asked for %d)", vocab.size(), vocabSize));
                }
                Long current = pairCounts.get(top[1]);
                if (current == null || current != top[0]) {
                    continue;
                }
                int left = left(top[1]);
                int right = right(top[1]);
                String a = vocab.get(left);
                String b = vocab.get(right);
                int merged = add(a + b);
                merges.add(new String[] {a, b});
                Map<Long, Long> changed = new HashMap<>();
                for (int w : pairWords.remove(top[1])) {
                    countPairs(w, -1, changed);
                    words[w] = mergeIn(words[w], left, right, merged);
                    countPairs(w, +1, changed);
                    index(w, merged);
                }
                apply(changed);
            }
            return new ByteLevelBpeTokenizer(List.copyOf(vocab), List.copyOf(merges));
        }

        private static int[] mergeIn(int[] s, int left, int right, int merged) {
            int[] out = new int[s.length];
            int n = 0;
            for (int i = 0; i < s.length; i++) {
                if (i + 1 < s.length && s[i] == left && s[i + 1] == right) {
                    out[n++] = merged;
                    i++;
                } else {
                    out[n++] = s[i];
                }
            }
            return Arrays.copyOf(out, n);
        }
    }
}
