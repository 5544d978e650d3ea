package org.exl2spark.kernels;

/**
 * A device allocation that cannot be made: over the pool's byte budget, or more than the device has free. The
 * message names what was being allocated, the bytes it needs and the budget.
 */
public final class DeviceMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String what;
    private final long bytesNeeded;

    public DeviceMemoryException(String message, String what, long bytesNeeded) {
        super(message);
        this.what = what;
        this.bytesNeeded = bytesNeeded;
    }

    public String what() {
        return what;
    }

    public long bytesNeeded() {
        return bytesNeeded;
    }
}
