/**
 * CUDA kernels and their JCuda driver-API launchers.
 *
 * <p>{@link org.exl2spark.kernels.CudaRuntime} answers once per JVM whether CUDA is usable (a host without a driver
 * gets a reason, not an exception); {@link org.exl2spark.kernels.GpuContext} binds a thread to a device's primary
 * context and loads each kernel family from the image {@link org.exl2spark.kernels.KernelImages} picks for the
 * device (cubin for sm_80/86/89/90, else the compute_80 PTX through the driver's JIT);
 * {@link org.exl2spark.kernels.DeviceMemory} is a task's budgeted pool of {@link org.exl2spark.kernels.DeviceBuffer}s,
 * viewed as 64-bit-indexed fp32 matrices by {@link org.exl2spark.kernels.DeviceMatrix}.
 *
 * <p>One launcher class per {@code src/main/cuda/<family>.cu}: {@link org.exl2spark.kernels.DenseKernels} (GEMM,
 * Hessian accumulation, in-place square copies), {@link org.exl2spark.kernels.CholeskyKernels} (GPTQ's inverse
 * factor) and {@link org.exl2spark.kernels.GptqKernels} (scale search, group quantization, lazy update). Each has a
 * CPU twin in {@code org.exl2spark.quant} and a check against it in {@code org.exl2spark.gpu.GpuSelfTest}.
 */
package org.exl2spark.kernels;
