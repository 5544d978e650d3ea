package org.exl2spark.io;

import java.io.IOException;

/** Input that is not a valid model file; the message names the file and the problem. */
public class ModelFormatException extends IOException {
    public ModelFormatException(String message) {
        super(message);
    }

    public ModelFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
