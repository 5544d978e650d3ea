// GPTQ group steps of ExLlamaV2's AdaptiveGPTQ (EXL2-SPEC F.4, F.5) on the act-ordered work matrix
// W [rows x cols] (row-major, fp32): the per-group scale search (find_params) and the quantization of a group's rows
// with error feedback. The float arithmetic follows the Java twin (org.exl2spark.quant.AdaptiveGptq) operation by
// operation, with explicit round-to-nearest intrinsics where the compiler would otherwise fuse a multiply and an
// add, so both produce the same bits; sums over a group's elements are fp64, reduced in a fixed order. The scale
// search first estimates every grid point's error in fp32 and then evaluates exactly only the points the estimates
// leave in doubt, so it picks the point the all-fp64 search would.

#include <cuda_fp16.h>

typedef long long i64;

namespace {
constexpr int GRID = 96;            // the scale grid has GRID + 1 points p_i
constexpr int GRID_POINTS = GRID + 1;
constexpr int ERR_THREADS = 256;
constexpr int ERR_ITEMS = 8;        // group elements per thread in the grid search
// How far a grid point's fp32 error estimate may be from its fp64 sum, relative: each term d^3 * sqrt(d) is within
// ~2^-21 of the fp64 one (sqrt.approx's 2^-22 and the product's rounding; d^3 itself is the same fp32 value in both,
// and is 0 wherever d is subnormal) and the estimate adds at most 16 nonnegative fp32 terms before fp64 takes over
// (~1.5e-6 in all); points whose estimate is within this of the least estimate are evaluated exactly.
constexpr double ESTIMATE_MARGIN = 1e-5;
// An fp32 estimate of a sum above this could have overflowed on the way, so every point is then evaluated exactly.
constexpr double ESTIMATE_RANGE = 1e30;
constexpr int QUANT_SUB = 32;       // rows of a group one thread holds in registers at a time
constexpr int QUANT_CHUNK = 64;     // rows of U staged in shared memory at a time for the earlier rows' updates
constexpr int QUANT_MAX_THREADS = 64;

__device__ __forceinline__ float grid_point(int i) {
    const float f = __fdiv_rn((float)i, (float)GRID);
    return __fadd_rn(__fmul_rn(0.70f, __fsub_rn(1.f, f)), __fmul_rn(1.20f, f));
}

__device__ __forceinline__ float half_round(float v) { return __half2float(__float2half_rn(v)); }

// sqrt.approx.f32: one multi-function-unit op where the correctly rounded sqrtf takes a refinement sequence
__device__ __forceinline__ float sqrt_approx(float v) {
    float r;
    asm("sqrt.approx.f32 %0, %1;" : "=f"(r) : "f"(v));
    return r;
}

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


namespace {
// d^3.5 of one element at scale s (ExLlamaV2's error norm), with d^3 rounded to fp32 as the CPU twin does.
__device__ __forceinline__ float grid_distance(float x, float s, float lo, float hi) {
    float q = rintf(__fdiv_rn(x, s));
    q = fminf(fmaxf(q, lo), hi);
    return fabsf(__fsub_rn(__fmul_rn(q, s), x));
}

// out[j] = sum over blocks of partial[block * GRID_POINTS + j] for j < points: one warp per point, each lane adding
// every 32nd block, then a fixed shuffle tree, so the sums do not depend on scheduling.
__device__ void sum_partials(const double* __restrict__ partial, int blocks, int points, double* out) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int j = warp; j < points; j += warps) {
        double s = 0.0;
        for (int blk = lane; blk < blocks; blk += 32) s = __dadd_rn(s, partial[(i64)blk * GRID_POINTS + j]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s = __dadd_rn(s, __shfl_down_sync(0xffffffffu, s, o));
        if (lane == 0) out[j] = s;
    }
}

// This block's share of the grid-search error err(i) = sum |clamp(rint(x / (sw p_i)), -z, maxq - z) (sw p_i) - x|^3.5
// over the group's elements: with EXACT, fp64 terms d^3 * sqrt(d) for the points cand[1 .. cand[0]] (the CPU twin's
// arithmetic); without, fp32 estimates for all GRID_POINTS points. partial[block * GRID_POINTS + j] for the j-th
// point evaluated; fixed reduction order.
template <bool EXACT>
__device__ __forceinline__ void grid_error(const float* __restrict__ W, i64 cols, i64 a, i64 b, int bits,
                                           const float* __restrict__ base, const float* __restrict__ smaxPtr,
                                           const int* __restrict__ cand, double* __restrict__ partial) {
    __shared__ double warpSums[ERR_THREADS / 32][GRID_POINTS];
    const float smax = *smaxPtr;
    const int maxq = (1 << bits) - 1;
    const float zero = (float)(1 << (bits - 1));
    const float lo = -zero, hi = (float)maxq - zero;
    const i64 count = (b - a) * cols;
    const i64 first = (i64)blockIdx.x * ERR_THREADS * ERR_ITEMS + threadIdx.x;
    // elements past the group stay x = 0 at scale p: their term is exactly 0, which leaves every sum as it is
    float x[ERR_ITEMS], sw[ERR_ITEMS];
#pragma unroll
    for (int e = 0; e < ERR_ITEMS; ++e) {
        const i64 idx = first + (i64)e * ERR_THREADS;
        x[e] = 0.f;
        sw[e] = 1.f;
        if (idx < count) {
            x[e] = W[a * cols + idx];
            sw[e] = relative_scale(base[idx % cols], smax);
        }
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int points = EXACT ? cand[0] : GRID_POINTS;
    for (int j = 0; j < points; ++j) {
        const float p = grid_point(EXACT ? cand[1 + j] : j);
        double sum = 0.0;
        if (EXACT) {
#pragma unroll
            for (int e = 0; e < ERR_ITEMS; ++e) {
                const float d = grid_distance(x[e], __fmul_rn(sw[e], p), lo, hi);
                const float d3 = __fmul_rn(__fmul_rn(d, d), d);
                sum = __dadd_rn(sum, __dmul_rn((double)d3, sqrt((double)d)));
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum = __dadd_rn(sum, __shfl_down_sync(0xffffffffu, sum, o));
        } else {
            float est = 0.f;
#pragma unroll
            for (int e = 0; e < ERR_ITEMS; ++e) {
                const float d = grid_distance(x[e], __fmul_rn(sw[e], p), lo, hi);
                const float d3 = __fmul_rn(__fmul_rn(d, d), d);
                est = __fadd_rn(est, __fmul_rn(d3, sqrt_approx(d)));
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) est = __fadd_rn(est, __shfl_down_sync(0xffffffffu, est, o));
            sum = (double)est;
        }
        if (lane == 0) warpSums[warp][j] = sum;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < points; j += ERR_THREADS) {
        double s = 0.0;
        for (int w = 0; w < ERR_THREADS / 32; ++w) s = __dadd_rn(s, warpSums[w][j]);
        partial[(i64)blockIdx.x * GRID_POINTS + j] = s;
    }
}
}  // namespace

// The scale search's first pass: fp32 estimates of every grid point's error, per block (see grid_error).
extern "C" __global__ void __launch_bounds__(ERR_THREADS)
gptq_grid_estimate(const float* __restrict__ W, i64 cols, i64 a, i64 b, int bits, const float* __restrict__ base,
                   const float* __restrict__ smaxPtr, double* __restrict__ partial) {
    grid_error<false>(W, cols, a, b, bits, base, smaxPtr, nullptr, partial);
}

// Adds the estimates up and lists the grid points that could be the least error: those within ESTIMATE_MARGIN
// (plus fp32's underflow, 2^-120 per element, generously) of the least estimate, in grid order; every point when an
// estimate is not finite or too large for fp32 to have summed it safely. cand[0] = how many, cand[1..] the points;
// errors[i] = the estimate. One block.
extern "C" __global__ void __launch_bounds__(1024)
gptq_grid_candidates(const double* __restrict__ partial, int blocks, i64 elements, double* __restrict__ errors,
                     int* __restrict__ cand) {
    __shared__ double est[GRID_POINTS];
    sum_partials(partial, blocks, GRID_POINTS, est);
    __syncthreads();
    if (threadIdx.x != 0) return;
    double least = __longlong_as_double(0x7ff0000000000000ll);  // +infinity
    bool finite = true;
    for (int i = 0; i < GRID_POINTS; ++i) {
        errors[i] = est[i];
        finite &= est[i] <= ESTIMATE_RANGE;  // false for NaN too
        least = fmin(least, est[i]);
    }
    const double limit = least * (1.0 + ESTIMATE_MARGIN) + (double)elements * 0x1p-120;
    int k = 0;
    for (int i = 0; i < GRID_POINTS; ++i) {
        if (!finite || est[i] <= limit) cand[1 + k++] = i;
    }
    cand[0] = k;
}

// The scale search's second pass: the exact fp64 error of each listed candidate, per block.
extern "C" __global__ void __launch_bounds__(ERR_THREADS)
gptq_grid_error(const float* __restrict__ W, i64 cols, i64 a, i64 b, int bits, const float* __restrict__ base,
                const float* __restrict__ smaxPtr, const int* __restrict__ cand, double* __restrict__ partial) {
    grid_error<true>(W, cols, a, b, bits, base, smaxPtr, cand, partial);
}

// Sums the candidates' exact errors (errors[i] gets them), picks the first grid point of least error among them
// (the first of least error over the whole grid: the others' estimates rule them out), and writes the group's
// scales: q_scale_max = fp16(smax * p_best) (as fp16 bits in *maxHalf), per column the stored 4-bit code qscale - 1
// and the fp16-exact scale fp16(fp16(qscale^2) * fp16(q_scale_max / 256)) used to quantize. One block.
extern "C" __global__ void __launch_bounds__(1024)
gptq_pick_scale(const double* __restrict__ partial, int blocks, const int* __restrict__ cand,
                const float* __restrict__ base, const float* __restrict__ smaxPtr, i64 cols,
                double* __restrict__ errors, float* __restrict__ scale, unsigned char* __restrict__ codes,
                unsigned short* __restrict__ maxHalf) {
    __shared__ double err[GRID_POINTS];
    __shared__ float m;
    const float smax = *smaxPtr;
    const int count = cand[0];
    sum_partials(partial, blocks, count, err);
    __syncthreads();
    if (threadIdx.x == 0) {
        double best = __longlong_as_double(0x7ff0000000000000ll);  // +infinity
        int bestI = 0;
        for (int j = 0; j < count; ++j) {
            const int i = cand[1 + j];
            errors[i] = err[j];
            if (err[j] < best) {
                best = err[j];
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

// Quantizes rows [a, b) of W with per-column scales, one thread per column (blockDim.x <= QUANT_MAX_THREADS
// columns per block), rows in order. Row c sees the errors of the group's earlier rows fed forward exactly as the
// eager update W[r] -= U[c][r] E[c] would have left it: x = W[c] - U[a][c] E[a] - ... - U[c-1][c] E[c-1],
// subtracted in that order. A thread holds QUANT_SUB rows of its column in registers at a time: the errors of the
// group's rows before them come in from err (its own earlier writes) against a panel of U, both staged in shared memory,
// then the rows are quantized in turn, each one's error going to the later rows of the sub-block at once. Writes
// the codes and fp16-exact dequantized values of the rows (at W's offsets) and E[c - a] = (x - Q[c]) / U[c][c];
// W itself is not modified.
extern "C" __global__ void __launch_bounds__(QUANT_MAX_THREADS)
gptq_quantize_group(const float* __restrict__ W, i64 rows, i64 cols, const float* __restrict__ U, i64 a, i64 b,
                    int bits, const float* __restrict__ scale, unsigned char* __restrict__ codes,
                    float* __restrict__ dequant, float* __restrict__ err) {
    __shared__ __align__(16) float panel[QUANT_CHUNK][QUANT_SUB];
    __shared__ __align__(16) float tri[QUANT_SUB][QUANT_SUB];
    // the chunk's errors of each column of the block, loaded all at once: one at a time from global memory, their
    // latency would stand between every two steps of the update loop
    __shared__ float errs[QUANT_CHUNK][QUANT_MAX_THREADS];
    const i64 n = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const bool live = n < cols;
    const int maxq = (1 << bits) - 1;
    const int zero = 1 << (bits - 1);
    const float s = live ? scale[n] : 1.f;
    for (i64 r0 = a; r0 < b; r0 += QUANT_SUB) {
        const int m = (int)(b - r0 < QUANT_SUB ? b - r0 : QUANT_SUB);
        float w[QUANT_SUB];
#pragma unroll
        for (int j = 0; j < QUANT_SUB; ++j) w[j] = live && j < m ? W[(r0 + j) * cols + n] : 0.f;
        // the errors of the group's rows before this sub-block, a panel of U[c][r0 .. r0 + QUANT_SUB) at a time;
        // the panel's columns past the group are zero, so the rows held past it stay unused zeros
        for (i64 c0 = a; c0 < r0; c0 += QUANT_CHUNK) {
            const int h = (int)(r0 - c0 < QUANT_CHUNK ? r0 - c0 : QUANT_CHUNK);
            __syncthreads();
            for (int i = threadIdx.x; i < h * QUANT_SUB; i += blockDim.x) {
                const int cr = i / QUANT_SUB, j = i % QUANT_SUB;
                panel[cr][j] = j < m ? U[(c0 + cr) * rows + r0 + j] : 0.f;
            }
            if (live) {
#pragma unroll 8
                for (int cr = 0; cr < h; ++cr) errs[cr][threadIdx.x] = err[(c0 + cr - a) * cols + n];
            }
            __syncthreads();
            if (live) {
#pragma unroll 2
                for (int cr = 0; cr < h; ++cr) {
                    const float e = errs[cr][threadIdx.x];
#pragma unroll
                    for (int j = 0; j < QUANT_SUB; ++j) w[j] = __fsub_rn(w[j], __fmul_rn(panel[cr][j], e));
                }
            }
        }
        __syncthreads();
        for (int i = threadIdx.x; i < QUANT_SUB * QUANT_SUB; i += blockDim.x) {
            const int c = i / QUANT_SUB, j = i % QUANT_SUB;
            tri[c][j] = c < m && j < m && j >= c ? U[(r0 + c) * rows + r0 + j] : 0.f;
        }
        __syncthreads();
        if (!live) continue;
#pragma unroll
        for (int c = 0; c < QUANT_SUB; ++c) {
            if (c < m) {
                const float x = w[c];
                const float qf = __fadd_rn(rintf(__fdiv_rn(x, s)), (float)zero);
                // a scale that underflowed to fp16 zero leaves only the zero code
                const int q = qf != qf ? zero : (int)fminf(fmaxf(qf, 0.f), (float)maxq);
                const float dq = half_round(__fmul_rn((float)(q - zero), s));
                const i64 at = (r0 + c) * cols + n;
                codes[at] = (unsigned char)q;
                dequant[at] = dq;
                const float e = __fdiv_rn(__fsub_rn(x, dq), tri[c][c]);
                err[(r0 + c - a) * cols + n] = e;
#pragma unroll
                for (int j = c + 1; j < QUANT_SUB; ++j) w[j] = __fsub_rn(w[j], __fmul_rn(tri[c][j], e));
            }
        }
    }
}

// EXL2's q_weight words of q-rows [q0, q0 + count) of one group (CPU twin: CodePacking.packGroup): the group is rows
// [rowStart, rowStart + rows) of codes (bytes, [.. x cols]) with b-bit codes, row r at bits [r b, r b + b) of the
// group's stream in every column, low bits first; word (q, n) goes to out[(q - q0) * cols + n]. One thread per word.
extern "C" __global__ void gptq_pack_codes(const unsigned char* __restrict__ codes, i64 cols, i64 rowStart, i64 rows,
                                           int bits, i64 q0, i64 count, unsigned int* __restrict__ out) {
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= count * cols) return;
    const i64 q = q0 + idx / cols, n = idx % cols;
    const i64 firstBit = q * 32;
    const i64 lastRow = (firstBit + 32 + bits - 1) / bits;  // rows before this one start below the word's end
    const i64 end = lastRow < rows ? lastRow : rows;
    unsigned int word = 0;
    for (i64 r = firstBit / bits; r < end; ++r) {
        const unsigned int c = codes[(rowStart + r) * cols + n];
        const int off = (int)(r * bits - firstBit);  // in (-bits, 32)
        word |= off >= 0 ? c << off : c >> -off;
    }
    out[idx] = word;
}
