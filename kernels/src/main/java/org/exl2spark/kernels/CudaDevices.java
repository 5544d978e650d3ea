package org.exl2spark.kernels;

import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR;
import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR;
import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE;
import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;

/** The CUDA devices this JVM sees (after CUDA_VISIBLE_DEVICES), by ordinal. */
public final class CudaDevices {
    private CudaDevices() {
    }

    public static int count() {
        return CudaRuntime.status().available() ? CudaRuntime.status().deviceCount() : 0;
    }

    public static List<DeviceInfo> list() {
        List<DeviceInfo> out = new ArrayList<>();
        for (int i = 0; i < count(); i++) {
            out.add(info(i));
        }
        return out;
    }

    /** Properties of device {@code ordinal}; fails clearly if CUDA is unusable or the ordinal is out of range. */
    public static DeviceInfo info(int ordinal) {
        CUdevice device = device(ordinal);
        byte[] name = new byte[256];
        JCudaDriver.cuDeviceGetName(name, name.length, device);
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        long[] total = {0};
        JCudaDriver.cuDeviceTotalMem(total, device);
        String[] bus = {""};
        JCudaDriver.cuDeviceGetPCIBusId(bus, 32, device);
        return new DeviceInfo(ordinal, new String(name, 0, len, StandardCharsets.UTF_8),
                new ComputeCapability(attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                        attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)),
                total[0], attribute(device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
                attribute(device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                attribute(device, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
                bus[0]);
    }

    static CUdevice device(int ordinal) {
        CudaStatus status = CudaRuntime.require();
        if (ordinal < 0 || ordinal >= status.deviceCount()) {
            throw new IllegalArgumentException("GPU ordinal " + ordinal + " out of range: this JVM sees "
                    + status.deviceCount() + " CUDA device(s)");
        }
        CUdevice device = new CUdevice();
        JCudaDriver.cuDeviceGet(device, ordinal);
        return device;
    }

    private static int attribute(CUdevice device, int attribute) {
        int[] v = {0};
        JCudaDriver.cuDeviceGetAttribute(v, attribute, device);
        return v[0];
    }
}
