// The transformer forward's non-GEMM operations on fp32 row-major device tensors: embedding gather, RMSNorm,
// rotary embedding, causal grouped-query attention (optionally in a sliding window), SwiGLU, addition, row softmax
// and log-softmax, per-row KL divergence, the block error's per-row sums, a 2-D transpose, rounding to fp16
// values, and conversion into fp16 storage. CPU twins: org.exl2spark.backend.CpuBackend. Every index into a tensor is 64-bit.

#include <cuda_fp16.h>

typedef long long i64;

namespace {

constexpr int ROW_THREADS = 256;  // one block of this many threads per row in the row-wise kernels

// Sum of v over the block (ROW_THREADS threads); every thread gets the result. scratch holds ROW_THREADS / 32.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();  // scratch may still be read from a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T s = 0;
    for (int w = 0; w < ROW_THREADS / 32; ++w) s += scratch[w];
    return s;
}

// Merges a running (max, sum of exp(x - max)) pair into another.
__device__ __forceinline__ void merge_max_sum(float& m, float& s, float m2, float s2) {
    const float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return;  // both empty
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

// The row's max and sum of exp(x - max) from every thread's running pair; every thread gets the result.
__device__ void block_max_sum(float& m, float& s, float* scratchMax, float* scratchSum) {
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        merge_max_sum(m, s, m2, s2);
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) {
        scratchMax[warp] = m;
        scratchSum[warp] = s;
    }
    __syncthreads();
    m = -INFINITY;
    s = 0.f;
    for (int w = 0; w < ROW_THREADS / 32; ++w) merge_max_sum(m, s, scratchMax[w], scratchSum[w]);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.f + expf(-g)) * u; }

// Attention tiling: 4 warps of 8 queries each (32 queries of one head per block), keys 32 at a time (one per
// lane), head dims spread over the lanes (headDim / 32 per lane, at most 8).
constexpr int ATT_WARPS = 4;
constexpr int ATT_QPW = 8;
constexpr int ATT_QB = ATT_WARPS * ATT_QPW;
constexpr int ATT_KT = 32;
constexpr int ATT_MAX_DPL = 8;

constexpr int TR_TILE = 32;
constexpr int TR_ROWS = 8;

}  // namespace

// out[r, :] = table[ids[r], :]; one block per row (ids were range-checked on the host).
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
embed_rows(const int* __restrict__ ids, const float* __restrict__ table, float* __restrict__ out, i64 hidden) {
    const i64 r = blockIdx.x;
    const float* src = table + (i64)ids[r] * hidden;
    float* dst = out + r * hidden;
    for (i64 c = threadIdx.x; c < hidden; c += ROW_THREADS) dst[c] = src[c];
}

// out = x / sqrt(mean(x^2) + eps) * w per row of cols; the sum of squares in fp64 like the CPU twin. out may be x.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
rms_norm(const float* x, const float* __restrict__ w, float* out, i64 cols, float eps) {
    __shared__ double scratch[ROW_THREADS / 32];
    const i64 base = (i64)blockIdx.x * cols;
    double s = 0.0;
    for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) {
        const float v = x[base + c];
        s += (double)(v * v);
    }
    s = block_sum(s, scratch);
    const float inv = (float)(1.0 / sqrt(s / (double)cols + (double)eps));
    for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) out[base + c] = x[base + c] * inv * w[c];
}

// Rotary embedding in place (rotate_half pairs i, i + half within each head); x [rows, heads*headDim], row r at
// position r % seqLen; cos/sin [>= seqLen, half]. One thread per (row, head, pair).
extern "C" __global__ void rope_inplace(float* __restrict__ x, const float* __restrict__ cosTable,
                                        const float* __restrict__ sinTable, i64 rows, i64 seqLen, int heads,
                                        int headDim) {
    const int half = headDim >> 1;
    const i64 pairs = rows * heads * half;
    for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < pairs; t += (i64)gridDim.x * blockDim.x) {
        const int i = (int)(t % half);
        const i64 rh = t / half;
        const i64 r = rh / heads;
        const int h = (int)(rh % heads);
        const i64 table = (r % seqLen) * half + i;
        float* p = x + r * heads * headDim + (i64)h * headDim + i;
        const float x1 = p[0], x2 = p[half];
        const float c = cosTable[table], s = sinTable[table];
        p[0] = x1 * c - x2 * s;
        p[half] = x2 * c + x1 * s;
    }
}

// Causal scaled-dot-product attention with grouped KV heads, flash style (online softmax, no score matrix in
// memory). q/out [batch, seqLen, heads*headDim], k/v [batch, seqLen, kvHeads*headDim]; query i sees keys
// j <= i and, with window > 0, j > i - window. headDim is a multiple of 32, at most 256. Grid: x = query tile
// (longest rows first) * heads + head, y = batch. Dynamic shared memory: see attention_shared_floats.
extern "C" __global__ void __launch_bounds__(ATT_WARPS * 32)
attention_causal(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                 float* __restrict__ out, i64 seqLen, int heads, int kvHeads, int headDim, int window, float scale,
                 int qTiles) {
    extern __shared__ __align__(16) float smem[];
    const int hd = headDim;
    const int dpl = hd >> 5;
    float* Qs = smem;                       // [ATT_QB][hd], pre-scaled
    float* Ks = Qs + ATT_QB * hd;           // [ATT_KT][hd + 1], padded: lane j reads row j conflict-free
    float* Vs = Ks + ATT_KT * (hd + 1);     // [ATT_KT][hd]
    float* Ps = Vs + ATT_KT * hd;           // [ATT_QB][ATT_KT] probabilities of the current key tile

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int head = blockIdx.x % heads;
    const i64 q0 = (i64)(qTiles - 1 - (int)(blockIdx.x / heads)) * ATT_QB;
    const i64 b = blockIdx.y;
    const int kvHead = head / (heads / kvHeads);
    const i64 qStride = (i64)heads * hd, kvStride = (i64)kvHeads * hd;
    const float* qBase = q + b * seqLen * qStride + (i64)head * hd;
    const float* kBase = k + b * seqLen * kvStride + (i64)kvHead * hd;
    const float* vBase = v + b * seqLen * kvStride + (i64)kvHead * hd;

    for (int idx = threadIdx.x; idx < ATT_QB * hd; idx += ATT_WARPS * 32) {
        const int r = idx / hd, d = idx - r * hd;
        const i64 pos = q0 + r;
        Qs[idx] = pos < seqLen ? qBase[pos * qStride + d] * scale : 0.f;
    }

    float m[ATT_QPW], l[ATT_QPW], acc[ATT_QPW][ATT_MAX_DPL];
#pragma unroll
    for (int r = 0; r < ATT_QPW; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.f;
#pragma unroll
        for (int i = 0; i < ATT_MAX_DPL; ++i) acc[r][i] = 0.f;
    }

    const i64 lastQ = min(q0 + ATT_QB, seqLen) - 1;
    const i64 kBegin = window > 0 ? max((i64)0, q0 - window + 1) : 0;
    for (i64 k0 = kBegin; k0 <= lastQ; k0 += ATT_KT) {
        __syncthreads();  // the previous tile's K, V and P are consumed (and Q is written, the first time)
        for (int idx = threadIdx.x; idx < ATT_KT * hd; idx += ATT_WARPS * 32) {
            const int j = idx / hd, d = idx - j * hd;
            const i64 key = k0 + j;
            const bool in = key < seqLen;
            Ks[j * (hd + 1) + d] = in ? kBase[key * kvStride + d] : 0.f;
            Vs[j * hd + d] = in ? vBase[key * kvStride + d] : 0.f;
        }
        __syncthreads();

        float s[ATT_QPW];
#pragma unroll
        for (int r = 0; r < ATT_QPW; ++r) s[r] = 0.f;
        const float* kRow = Ks + lane * (hd + 1);
        for (int d = 0; d < hd; d += 4) {
            const float k0v = kRow[d], k1v = kRow[d + 1], k2v = kRow[d + 2], k3v = kRow[d + 3];
#pragma unroll
            for (int r = 0; r < ATT_QPW; ++r) {
                const float4 qv = *reinterpret_cast<const float4*>(Qs + (warp * ATT_QPW + r) * hd + d);
                s[r] = fmaf(qv.x, k0v, fmaf(qv.y, k1v, fmaf(qv.z, k2v, fmaf(qv.w, k3v, s[r]))));
            }
        }

        const i64 key = k0 + lane;
#pragma unroll
        for (int r = 0; r < ATT_QPW; ++r) {
            const i64 pos = q0 + warp * ATT_QPW + r;
            const bool visible = key <= pos && key < seqLen && (window <= 0 || key > pos - window);
            const float sv = visible ? s[r] : -INFINITY;
            const float mNew = fmaxf(m[r], warp_max(sv));
            const float p = visible ? expf(sv - mNew) : 0.f;
            const float corr = mNew == -INFINITY ? 1.f : expf(m[r] - mNew);
            l[r] = l[r] * corr + warp_sum(p);
            m[r] = mNew;
#pragma unroll
            for (int i = 0; i < ATT_MAX_DPL; ++i) acc[r][i] *= corr;
            Ps[(warp * ATT_QPW + r) * ATT_KT + lane] = p;
        }
        __syncwarp();
        for (int j = 0; j < ATT_KT; ++j) {
            float vv[ATT_MAX_DPL];
#pragma unroll
            for (int i = 0; i < ATT_MAX_DPL; ++i) vv[i] = i < dpl ? Vs[j * hd + lane + 32 * i] : 0.f;
#pragma unroll
            for (int r = 0; r < ATT_QPW; ++r) {
                const float p = Ps[(warp * ATT_QPW + r) * ATT_KT + j];
#pragma unroll
                for (int i = 0; i < ATT_MAX_DPL; ++i) acc[r][i] = fmaf(p, vv[i], acc[r][i]);
            }
        }
    }

    float* oBase = out + b * seqLen * qStride + (i64)head * hd;
#pragma unroll
    for (int r = 0; r < ATT_QPW; ++r) {
        const i64 pos = q0 + warp * ATT_QPW + r;
        if (pos >= seqLen) continue;
        const float inv = 1.f / l[r];
#pragma unroll
        for (int i = 0; i < ATT_MAX_DPL; ++i)
            if (i < dpl) oBase[pos * qStride + lane + 32 * i] = acc[r][i] * inv;
    }
}

// out = op(a, b) elementwise over n values, 16-byte accesses (the tensors are whole allocations, so 16-byte
// aligned); out may alias a or b.
template <typename Op>
__device__ void elementwise(const float* a, const float* b, float* out, i64 n, Op op) {
    const i64 n4 = n >> 2;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        const float4 x = reinterpret_cast<const float4*>(a)[i];
        const float4 y = reinterpret_cast<const float4*>(b)[i];
        reinterpret_cast<float4*>(out)[i] = make_float4(op(x.x, y.x), op(x.y, y.y), op(x.z, y.z), op(x.w, y.w));
    }
    for (i64 i = 4 * n4 + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = op(a[i], b[i]);
}

// out = silu(gate) * up
extern "C" __global__ void swiglu(const float* gate, const float* up, float* out, i64 n) {
    elementwise(gate, up, out, n, [](float g, float u) { return silu_times(g, u); });
}

extern "C" __global__ void add_tensors(const float* a, const float* b, float* out, i64 n) {
    elementwise(a, b, out, n, [](float x, float y) { return x + y; });
}

// fp16(x), round to nearest even, clamped to the fp16 range.
__device__ __forceinline__ __half to_half_clamped(float v) {
    return __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
}

// out = float(half(x)), round to nearest even, clamped to the fp16 range; the launcher passes x as both operands
extern "C" __global__ void round_to_half(const float* x, const float* unused, float* out, i64 n) {
    elementwise(x, unused, out, n,
                [](float v, float) { return __half2float(to_half_clamped(v)); });
}

// out[i] = fp16(x[i]) as round_to_half rounds it; 16-byte loads and 8-byte stores (whole allocations: aligned).
extern "C" __global__ void float_to_half(const float* __restrict__ x, __half* __restrict__ out, i64 n) {
    const i64 n4 = n >> 2;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        const float4 v = reinterpret_cast<const float4*>(x)[i];
        __half2* o = reinterpret_cast<__half2*>(out) + 2 * i;
        o[0] = __halves2half2(to_half_clamped(v.x), to_half_clamped(v.y));
        o[1] = __halves2half2(to_half_clamped(v.z), to_half_clamped(v.w));
    }
    for (i64 i = 4 * n4 + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = to_half_clamped(x[i]);
}

// Softmax (logMode 0) or log-softmax (logMode 1) of each row of cols; one block per row; out may be x. The max
// and the sum of exponentials come from one pass (a running sum rescaled when the max grows), the output from a
// second.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
softmax_rows(const float* x, float* out, i64 cols, int logMode) {
    __shared__ float scratchMax[ROW_THREADS / 32];
    __shared__ float scratchSum[ROW_THREADS / 32];
    const i64 base = (i64)blockIdx.x * cols;
    float mx = -INFINITY, s = 0.f;
    for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) {
        const float v = x[base + c];
        if (v > mx) {
            s = s * expf(mx - v) + 1.f;
            mx = v;
        } else if (mx != -INFINITY) {  // else v is -inf too, and adds nothing
            s += expf(v - mx);
        }
    }
    block_max_sum(mx, s, scratchMax, scratchSum);
    if (logMode) {
        const float logSum = logf(s);
        // (x - max) first: exact near the max, where the large log-probabilities are
        for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) out[base + c] = (x[base + c] - mx) - logSum;
    } else {
        const float inv = 1.f / s;
        for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) out[base + c] = expf(x[base + c] - mx) * inv;
    }
}

// out[r] = sum_c exp(p[r,c]) * (p[r,c] - q[r,c]) for rows of log-probabilities, accumulated in fp64.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
kl_rows(const float* __restrict__ p, const float* __restrict__ q, float* __restrict__ out, i64 cols) {
    __shared__ double scratch[ROW_THREADS / 32];
    const i64 base = (i64)blockIdx.x * cols;
    double s = 0.0;
    for (i64 c = threadIdx.x; c < cols; c += ROW_THREADS) {
        const float lp = p[base + c];
        s += (double)(expf(lp) * (lp - q[base + c]));
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
}

// The block error's sums over slices of rows: for row r of y and ref ([rows, rowSize], dense) and slice p of
// `slices`, partial[(r * slices + p) * 2] = sum (clamp(y) - ref)^2 and partial[... + 1] = sum ref^2, in double. y
// is clamped to fp16's range as fp16 states would be (NaN stays NaN); the difference is taken in fp32, as the CPU
// twin does. The host adds the slices in order, so the result does not depend on scheduling. Grid: x slices, y rows.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
relative_error_partials(const float* __restrict__ y, const float* __restrict__ ref, i64 rowSize, int slices,
                        double* __restrict__ partial) {
    __shared__ double scratch[ROW_THREADS / 32];
    const i64 r = blockIdx.y;
    const i64 per = (rowSize + slices - 1) / slices;
    const i64 begin = (i64)blockIdx.x * per;
    const i64 end = begin + per < rowSize ? begin + per : rowSize;
    const float* yr = y + r * rowSize;
    const float* br = ref + r * rowSize;
    double diff = 0.0, norm = 0.0;
    for (i64 i = begin + threadIdx.x; i < end; i += ROW_THREADS) {
        const float v = yr[i];
        const float q = v != v ? v : fminf(fmaxf(v, -65504.f), 65504.f);
        const float b = br[i];
        const double d = (double)__fsub_rn(q, b);
        diff += d * d;
        norm += (double)b * b;
    }
    diff = block_sum(diff, scratch);
    norm = block_sum(norm, scratch);
    if (threadIdx.x == 0) {
        const i64 o = (r * slices + blockIdx.x) * 2;
        partial[o] = diff;
        partial[o + 1] = norm;
    }
}

// out[c, r] = in[r, c] for in [rows, cols] (both dense); tiles through shared memory keep both sides coalesced.
// Grid: x over column tiles, y over row tiles (at most 65535 of them; the launcher splits taller matrices).
extern "C" __global__ void __launch_bounds__(TR_TILE * TR_ROWS)
transpose_2d(const float* __restrict__ in, float* __restrict__ out, i64 rows, i64 cols, i64 rowOffset) {
    __shared__ float tile[TR_TILE][TR_TILE + 1];
    const i64 r0 = rowOffset + (i64)blockIdx.y * TR_TILE, c0 = (i64)blockIdx.x * TR_TILE;
    for (int y = threadIdx.y; y < TR_TILE; y += TR_ROWS) {
        const i64 r = r0 + y, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[y][threadIdx.x] = in[r * cols + c];
    }
    __syncthreads();
    for (int y = threadIdx.y; y < TR_TILE; y += TR_ROWS) {
        const i64 c = c0 + y, r = r0 + threadIdx.x;
        if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][y];
    }
}
