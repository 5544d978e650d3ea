package org.exl2spark.model;

/**
 * One linear layer of the model. {@code key} is the Hugging Face module name (tensor names are
 * {@code key + ".weight"} / {@code ".bias"}); the weight is stored [outFeatures, inFeatures].
 */
public record LinearSpec(String key, String shortName, long inFeatures, long outFeatures, boolean hasBias) {

    public String weightName() {
        return key + ".weight";
    }

    public String biasName() {
        return key + ".bias";
    }

    public long parameterCount() {
        return inFeatures * outFeatures + (hasBias ? outFeatures : 0);
    }
}
