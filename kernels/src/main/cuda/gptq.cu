// GPTQ group steps of ExLlamaV2's AdaptiveGPTQ (EXL2-SPEC F.4, F.5) on the act-ordered work matrix
// W [rows x cols] (row-major, fp32): the per-group scale search (find_params) and the quantization of a group's rows
// with error feedback. The float arithmetic follows the Java twin (org.exl2spark.quant.AdaptiveGptq) operation by
// operation, with explicit round-to-nearest intrinsics where the compiler would otherwise fuse a multiply and an
// add, so both produce the same bits; sums over a group's elements are fp64, reduced in a fixed order.

#include <cuda_fp16.h>

typedef long long i64;

namespace {
constexpr int GRID = 96;            // the scale grid has GRID + 1 points p_i
constexpr int GRID_POINTS = GRID + 1;
constexpr int ERR_THREADS = 256;
constexpr int ERR_ITEMS = 8;        // group elements per thread in the grid search

__device__ __forceinline__ float grid_point(int i) {
    const float f = __fdiv_rn((float)i, (float)GRID);
    return __fadd_rn(__fmul_rn(0.70f, __fsub_rn(1.f, f)), __fmul_rn(1.20f, f));
}

__device__ __forceinline__ float half_round(float v) { return __half2float(__float2half_rn(v)); }

// 4-bit relative scale index of a column: clamp(rint(sqrt(base/smax) * 16), 1, 16).
__device__ __forceinline__ int qscale_of(float base, float smax) {
    const double q = rint(sqrt((double)__fdiv_rn(base, smax)) * 16.0);
    return q < 1.0 ? 1 : (q > 16.0 ? 16 : (int)q);
}

// sw[n] = (qscale/16)^2 * smax
__device__ __forceinline__ float relative_scale(float base, float smax) {
    const float f = __fdiv_rn((float)qscale_of(base, smax), 16.f);
    return __fmul_rn(__fmul_rn(f, f), smax);
}
}  // namespace

// base[n] = (max_{a<=k<b} |W[k][n]| + 1e-12) / (maxq / 2), one thread per column.
extern "C" __global__ void gptq_column_base(const float* __restrict__ W, i64 cols, i64 a, i64 b, int bits,
                                            float* __restrict__ base) {
    const i64 n = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= cols) return;
    float m = 0.f;
    for (i64 k = a; k < b; ++k) m = fmaxf(m, fabsf(W[k * cols + n]));
    const float halfRange = (float)((1 << bits) - 1) / 2.f;
    base[n] = __fdiv_rn(__fadd_rn(m, 1e-12f), halfRange);
}

// smax[0] = max_n base[n]; one block.
extern "C" __global__ void __launch_bounds__(1024)
gptq_max_base(const float* __restrict__ base, i64 cols, float* __restrict__ smax) {
    __shared__ float part[32];
    float m = 0.f;
    for (i64 n = threadIdx.x; n < cols; n += blockDim.x) m = fmaxf(m, base[n]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x < 32) {
        m = threadIdx.x < (blockDim.x + 31) / 32 ? part[threadIdx.x] : 0.f;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
        if (threadIdx.x == 0) smax[0] = m;
    }
}

// Partial sums of the grid-search error, for every grid point p_i, over this block's slice of the group's
// elements: err(i) = sum |clamp(rint(x / (sw p_i)), -z, maxq - z) (sw p_i) - x|^3.5.
// partial[block * GRID_POINTS + i]; fixed reduction order, so the result does not depend on scheduling.
extern "C" __global__ void __launch_bounds__(ERR_THREADS)
gptq_grid_error(const float* __restrict__ W, i64 cols, i64 a, i64 b, int bits, const float* __restrict__ base,
                const float* __restrict__ smaxPtr, double* __restrict__ partial) {
    __shared__ double warpSums[ERR_THREADS / 32][GRID_POINTS];
    const float smax = *smaxPtr;
    const int maxq = (1 << bits) - 1;
    const float zero = (float)(1 << (bits - 1));
    const float lo = -zero, hi = (float)maxq - zero;
    const i64 count = (b - a) * cols;
    const i64 first = (i64)blockIdx.x * ERR_THREADS * ERR_ITEMS + threadIdx.x;
    float x[ERR_ITEMS], sw[ERR_ITEMS];
    bool live[ERR_ITEMS];
#pragma unroll
    for (int e = 0; e < ERR_ITEMS; ++e) {
        const i64 idx = first + (i64)e * ERR_THREADS;
        live[e] = idx < count;
        x[e] = 0.f;
        sw[e] = 1.f;
        if (live[e]) {
            const i64 n = idx % cols;
            x[e] = W[a * cols + idx];
            sw[e] = relative_scale(base[n], smax);
        }
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int i = 0; i < GRID_POINTS; ++i) {
        const float p = grid_point(i);
        double sum = 0.0;
#pragma unroll
        for (int e = 0; e < ERR_ITEMS; ++e) {
            if (!live[e]) continue;
            const float s = __fmul_rn(sw[e], p);
            float q = rintf(__fdiv_rn(x[e], s));
            q = fminf(fmaxf(q, lo), hi);
            const float d = fabsf(__fsub_rn(__fmul_rn(q, s), x[e]));
            const float d3 = __fmul_rn(__fmul_rn(d, d), d);
            sum = __dadd_rn(sum, __dmul_rn((double)d3, sqrt((double)d)));
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum = __dadd_rn(sum, __shfl_down_sync(0xffffffffu, sum, o));
        if (lane == 0) warpSums[warp][i] = sum;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < GRID_POINTS; i += ERR_THREADS) {
        double s = 0.0;
        for (int w = 0; w < ERR_THREADS / 32; ++w) s = __dadd_rn(s, warpSums[w][i]);
        partial[(i64)blockIdx.x * GRID_POINTS + i] = s;
    }
}

// Sums the partial errors, picks the first grid point of least error, and writes the group's scales:
// q_scale_max = fp16(smax * p_best) (as fp16 bits in *maxHalf), per column the stored 4-bit code qscale - 1 and
// the fp16-exact scale fp16(fp16(qscale^2) * fp16(q_scale_max / 256)) used to quantize. errors[i] gets err(i).
// One block.
extern "C" __global__ void __launch_bounds__(1024)
gptq_pick_scale(const double* __restrict__ partial, int blocks, const float* __restrict__ base,
                const float* __restrict__ smaxPtr, i64 cols, double* __restrict__ errors,
                float* __restrict__ scale, unsigned char* __restrict__ codes,
                unsigned short* __restrict__ maxHalf) {
    __shared__ double err[GRID_POINTS];
    __shared__ float m;
    const float smax = *smaxPtr;
    for (int i = threadIdx.x; i < GRID_POINTS; i += blockDim.x) {
        double s = 0.0;
        for (int blk = 0; blk < blocks; ++blk) s = __dadd_rn(s, partial[(i64)blk * GRID_POINTS + i]);
        err[i] = s;
        errors[i] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double best = __longlong_as_double(0x7ff0000000000000ll);  // +infinity
        int bestI = 0;
        for (int i = 0; i < GRID_POINTS; ++i) {
            if (err[i] < best) {
                best = err[i];
                bestI = i;
            }
        }
        const float f = __fdiv_rn((float)bestI, (float)GRID);
        const float bestP = __fadd_rn(__fmul_rn(1.2f, f), __fmul_rn(0.7f, __fsub_rn(1.f, f)));
        const __half mh = __float2half_rn(__fmul_rn(smax, bestP));
        *maxHalf = __half_as_ushort(mh);
        m = half_round(__fmul_rn(__half2float(mh), 1.f / 256.f));
    }
    __syncthreads();
    const float mm = m;
    for (i64 n = threadIdx.x; n < cols; n += blockDim.x) {
        const int q = qscale_of(base[n], smax);
        const float sq = half_round((float)(q * q));
        scale[n] = half_round(__fmul_rn(sq, mm));
        codes[n] = (unsigned char)(q - 1);
    }
}

// Quantizes rows [a, b) of W with per-column scales, one thread per column, rows in order. Row c sees the errors
// of the group's earlier rows fed forward exactly as the eager update W[r] -= U[c][r] E[c] would have left it:
// x = W[c] - U[a][c] E[a] - ... - U[c-1][c] E[c-1], subtracted in that order. Writes the codes and fp16-exact
// dequantized values of the rows (at W's offsets) and E[c - a] = (x - Q[c]) / U[c][c]; W itself is not modified.
extern "C" __global__ void gptq_quantize_group(const float* __restrict__ W, i64 rows, i64 cols,
                                               const float* __restrict__ U, i64 a, i64 b, int bits,
                                               const float* __restrict__ scale, unsigned char* __restrict__ codes,
                                               float* __restrict__ dequant, float* __restrict__ err) {
    const i64 n = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= cols) return;
    const int maxq = (1 << bits) - 1;
    const int zero = 1 << (bits - 1);
    const float s = scale[n];
    for (i64 c = a; c < b; ++c) {
        float x = W[c * cols + n];
        for (i64 k = a; k < c; ++k) x = __fsub_rn(x, __fmul_rn(U[k * rows + c], err[(k - a) * cols + n]));
        const float qf = __fadd_rn(rintf(__fdiv_rn(x, s)), (float)zero);
        // a scale that underflowed to fp16 zero leaves only the zero code
        const int q = qf != qf ? zero : (int)fminf(fmaxf(qf, 0.f), (float)maxq);
        const float dq = half_round(__fmul_rn((float)(q - zero), s));
        codes[c * cols + n] = (unsigned char)q;
        dequant[c * cols + n] = dq;
        err[(c - a) * cols + n] = __fdiv_rn(__fsub_rn(x, dq), U[c * rows + c]);
    }
}
