package org.exl2spark.quant;

import org.exl2spark.io.ModelFormatException;

/** An EXL2 linear whose tensors break the format; the message names the source, the module key and the problem. */
public class Exl2FormatException extends ModelFormatException {
    private final String moduleKey;

    public Exl2FormatException(String location, String moduleKey, String problem) {
        super(location + ": EXL2 linear '" + moduleKey + "': " + problem);
        this.moduleKey = moduleKey;
    }

    public String moduleKey() {
        return moduleKey;
    }
}
