package org.exl2spark.kernels;

/**
 * Whether this JVM can run our CUDA kernels, and if not why: {@code reason} is a one-line explanation for logs
 * ("no CUDA driver (libcuda.so.1) on this host", "CUDA_ERROR_NO_DEVICE", ...).
 *
 * @param driverVersion the driver's CUDA version as the driver API reports it (13000 = 13.0); 0 if unknown
 */
public record CudaStatus(boolean available, int deviceCount, int driverVersion, String reason) {

    static CudaStatus unavailable(String reason) {
        return new CudaStatus(false, 0, 0, reason);
    }

    /** "CUDA 13.0" style text of the driver version. */
    public String driverVersionText() {
        return driverVersion <= 0 ? "unknown" : (driverVersion / 1000) + "." + (driverVersion % 1000) / 10;
    }

    @Override
    public String toString() {
        return available
                ? "CUDA available: " + deviceCount + " device(s), driver supports CUDA " + driverVersionText()
                : "CUDA not usable: " + reason;
    }
}
