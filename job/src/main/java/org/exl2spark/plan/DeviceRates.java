package org.exl2spark.plan;

/**
 * The device speeds the planner's time estimates assume. The defaults are this project's H100 measurements
 * (docs/BENCHMARKS.md, GpuSelfTest and GpuBackendTest on nvidia-h100-x1):
 * <ul>
 * <li>linears: split TF32 50 TFLOP/s; fp16 160 TFLOP/s on fp32 weights and 275 TFLOP/s on fp16 ones (their input's
 * conversion included);</li>
 * <li>causal attention (QKᵀ, softmax, PV) 7.5 TFLOP/s: the fp32 SIMT kernel every forward uses, whatever the linears'
 * precision (2 × 2048 tokens of 64/8 heads of 128 in 18.4 ms);</li>
 * <li>the Hessian accumulation on the fp16 tensor cores 245 TFLOP/s (n 49152, 4096 tokens a call, the operand's
 * rounding included);</li>
 * <li>the GPTQ lazy update 38 TFLOP/s (blocks of 512 rows); the 49152-wide inverse factor 27.7 TFLOP/s (2n³/3); the
 * scale search 520·10⁹ grid evaluations/s (fp32 estimates, fp64 for the points in doubt); GPTQ's per-group latency
 * 0.2 ms per 128 rows (measured 0.14-0.16 ms in the Qwen1.5-110B layer's MLP runs and 0.25-0.44 ms in its narrower
 * attention runs: the layer's 97 measurement runs come to 15.7 s in the model, 15.8 s measured);</li>
 * <li>copies ~2.9 TB/s on the device, Java arrays to the device 7 GB/s and back 5 GB/s (through the pinned
 * slab).</li>
 * </ul>
 *
 * @param gemmFlops        FLOP/s of fp32-accurate linears (split TF32): the measurement's reference forward, the
 *                         quantized layers' forwards
 * @param fastGemmFlops    FLOP/s of fp16 linears ({@code Backend.LinearMode.FAST}) on fp32 weights: the quantization
 *                         pass's Hessian forward
 * @param halfWeightFlops  FLOP/s of FAST linears on fp16 weights ({@code Backend.halfZeros}): the measurement's
 *                         candidates
 * @param attentionFlops   FLOP/s of causal attention's QKᵀ and PV (4·heads·headDim·t(t+1)/2 per sequence of t)
 * @param gramFlops        FLOP/s of the Hessian accumulation (fp16 tensor cores, upper half, n(n+1) per token)
 * @param lazyUpdateFlops  FLOP/s of GPTQ's lazy update (a thin-K GEMM)
 * @param choleskyFlops    FLOP/s of the inverse factor, counted as 2n³/3
 * @param gridEvaluations  scale-search evaluations per second (97 per weight of a group)
 * @param groupSeconds     GPTQ's fixed time per 128 rows of groups beyond the work above: the scale search's,
 *                         quantization's and thin updates' kernels one after another, and their launches
 * @param bandwidth        bytes per second of memory-bound kernels (read + write)
 * @param hostToDevice     bytes per second from a Java array to the device
 * @param deviceToHost     bytes per second from the device into a Java array
 */
public record DeviceRates(double gemmFlops, double fastGemmFlops, double halfWeightFlops, double attentionFlops,
        double gramFlops, double lazyUpdateFlops, double choleskyFlops, double gridEvaluations, double groupSeconds,
        double bandwidth, double hostToDevice, double deviceToHost) {
    public static final DeviceRates H100 = new DeviceRates(50e12, 160e12, 275e12, 7.5e12, 245e12, 38e12, 27.7e12,
            520e9, 0.2e-3, 2.9e12, 7e9, 5e9);

    public DeviceRates {
        for (double r : new double[] {gemmFlops, fastGemmFlops, halfWeightFlops, attentionFlops, gramFlops,
                lazyUpdateFlops, choleskyFlops, gridEvaluations, groupSeconds, bandwidth, hostToDevice, deviceToHost}) {
            if (!(r > 0)) {
                throw new IllegalArgumentException("device rates must be positive: " + r);
            }
        }
    }
}
