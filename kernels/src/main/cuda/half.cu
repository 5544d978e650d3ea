// fp16 operands in device memory: the GPTQ Hessian's Gram matrix on the fp16 tensor cores, and conversions between
// fp32 and 16-bit storage.
//
// half_gram_operand rounds a chunk of activations x [rows, n] (fp32) to fp16 once, into a zero-padded copy
// [kPad, ldh] (kPad a multiple of 64, every variant's k step; ldh of 8), so that the Gram kernel reads half the bytes,
// needs no bounds checks on k and moves whole 16-byte chunks.
//
// half_gram_upper adds xhᵀ·xh to the upper triangle (j >= i) of an fp32 Gram matrix: mma.sync m16n8k16 with fp16
// operands and fp32 accumulation. A product of two fp16 values has at most 22 significant bits, so every product is
// exact in fp32 and the result differs from the fp32 SIMT Gram of the same fp16-valued inputs only in the order of
// the additions. Both operands are the same activations (A = columns i0.. of xh, B = columns j0..), stored k-major in
// shared memory and turned into the row (A) and column (B) fragments by ldmatrix.trans. Tiles: 128 (i) x 256 (j) per
// block of 8 warps (2 x 4, each 64 x 64), k in steps of 32 or 64 tokens through a cp.async pipeline; only tiles with an
// element on or above the diagonal are launched, in groups of 16 row tiles so concurrent blocks share their column
// strips in L2. Every index is 64-bit.

#include <cuda_fp16.h>

#include "mma.cuh"

typedef long long i64;

namespace {

constexpr int BM = 128;
constexpr int BN = 256;
constexpr int PAD = 8;  // halves per shared row: ldmatrix's 8 row addresses land in 8 distinct 16-byte bank groups
constexpr int LDA = BM + PAD;
constexpr int LDB = BN + PAD;
constexpr int THREADS = 256;
constexpr int GROUP_M = 16;
constexpr int MT = 4;  // m16 tiles per warp
constexpr int NT = 8;  // n8 tiles per warp

// Tokens [k0, k0 + BK) x columns [c0, c0 + COLS) of xh into a shared tile [BK][COLS + PAD]; columns past ldh are
// zeros (ldh and c0 are multiples of 8, so a 16-byte chunk is wholly inside or wholly outside).
template <int COLS, int BK>
__device__ __forceinline__ void load_tile(__half* tile, const __half* __restrict__ xh, i64 ldh, i64 k0, i64 c0) {
    constexpr int CHUNKS = COLS / 8;
#pragma unroll
    for (int c = 0; c < BK * CHUNKS / THREADS; ++c) {
        const int idx = threadIdx.x + c * THREADS;
        const int row = idx / CHUNKS;
        const int col = (idx % CHUNKS) * 8;
        const i64 gc = c0 + col;
        const bool in = gc < ldh;
        cp_async16(tile + row * (COLS + PAD) + col, in ? xh + (k0 + row) * ldh + gc : xh, in ? 16 : 0);
    }
}

// The first row tile of group g and the first column tile any of its rows reaches on or above the diagonal.
__device__ __forceinline__ void group_extent(i64 g, i64 mTiles, i64 nTiles, i64& firstM, i64& rows, i64& firstN) {
    firstM = g * GROUP_M;
    rows = min((i64)GROUP_M, mTiles - firstM);
    firstN = min(nTiles, firstM * BM / BN);
}

template <int BK, int STAGES>
__device__ void gram_upper(i64 n, i64 kPad, const __half* __restrict__ xh, i64 ldh, float* __restrict__ gram,
                           i64 ldg) {
    extern __shared__ __align__(16) __half smem[];
    __half* As = smem;                      // [STAGES][BK][LDA]
    __half* Bs = smem + STAGES * BK * LDA;  // [STAGES][BK][LDB]

    const i64 mTiles = (n + BM - 1) / BM, nTiles = (n + BN - 1) / BN;
    // blockIdx.x enumerates, group by group, the tiles of columns firstN.. of each group (HalfKernels counts them
    // the same way), row tiles fastest
    const i64 groups = (mTiles + GROUP_M - 1) / GROUP_M;
    i64 id = blockIdx.x, g = 0, firstM, rows, firstN;
    for (;; ++g) {
        if (g == groups) return;  // past the last tile (not launched by HalfKernels)
        group_extent(g, mTiles, nTiles, firstM, rows, firstN);
        const i64 count = rows * (nTiles - firstN);
        if (id < count) break;
        id -= count;
    }
    const i64 m0 = (firstM + id % rows) * BM;
    const i64 n0 = (firstN + id / rows) * BN;
    if (n0 + BN <= m0) return;  // wholly below the diagonal

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 64;
    // ldmatrix.trans row addresses. A (m16 x k16): matrices (m+0, k+0), (m+8, k+0), (m+0, k+8), (m+8, k+8) = a0..a3.
    // B (k16 x two n8 tiles): (k+0, n+0), (k+8, n+0), (k+0, n+8), (k+8, n+8) = b0, b1 of tile j, b0, b1 of j + 1.
    const int aK = (lane & 7) + ((lane >> 4) << 3), aM = ((lane >> 3) & 1) * 8;
    const int bK = (lane & 7) + (((lane >> 3) & 1) << 3), bN = (lane >> 4) * 8;

    float acc[MT][NT][4];
    for_each_accumulator<MT, NT>([&](int i, int j, int e, int, int) { acc[i][j][e] = 0.f; });

    pipelined_k_loop<STAGES>(
        kPad / BK,
        [&](int s, i64 kt) {
            load_tile<BM, BK>(As + s * BK * LDA, xh, ldh, kt * BK, m0);
            load_tile<BN, BK>(Bs + s * BK * LDB, xh, ldh, kt * BK, n0);
        },
        [&](int s) {
            const __half* a = As + s * BK * LDA;
            const __half* b = Bs + s * BK * LDB;
#pragma unroll
            for (int kk = 0; kk < BK; kk += 16) {
                mma_f16_k16_step<true>(
                        acc, [&](int i) { return a + (kk + aK) * LDA + wm + i * 16 + aM; },
                        [&](int j) { return b + (kk + bK) * LDB + wn + j * 8 + bN; });
            }
        });

    for_each_accumulator<MT, NT>([&](int i, int j, int e, int row, int col) {
        const i64 r = m0 + wm + row, c = n0 + wn + col;
        if (c >= r && c < n) gram[r * ldg + c] += acc[i][j][e];
    });
}

__device__ __forceinline__ __half to_half_clamped(float v) {
    return __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
}

}  // namespace

// Shared memory per block: STAGES * BK * (136 + 264) halves; HalfKernels.java picks the variant.
//   half_gram_upper_k32    k steps of 32, 4 stages: 100 KiB (sm_80, sm_90)
//   half_gram_upper_k64    k steps of 64, 3 stages: 150 KiB (sm_80, sm_90): half the barriers per token
//   half_gram_upper_small  k steps of 32, 3 stages: 75 KiB, for devices with at most 99 KiB per block (sm_86, sm_89)
#define HALF_GRAM(NAME, BK, STAGES)                                                                          \
    extern "C" __global__ void __launch_bounds__(THREADS, 1)                                                  \
    NAME(i64 n, i64 kPad, const __half* __restrict__ xh, i64 ldh, float* __restrict__ gram, i64 ldg) {        \
        gram_upper<BK, STAGES>(n, kPad, xh, ldh, gram, ldg);                                                  \
    }

HALF_GRAM(half_gram_upper_k32, 32, 4)
HALF_GRAM(half_gram_upper_k64, 64, 3)
HALF_GRAM(half_gram_upper_small, 32, 3)

// xh[r][c] = fp16(clamp(x[r][c])) (nearest even, clamped to ±65504) for r < rows, c < n; zeros elsewhere in
// [kPad, ldh]. One thread per 8 halves (one 16-byte store); vec: x's rows start 16-byte aligned (float4 loads).
extern "C" __global__ void half_gram_operand(const float* __restrict__ x, i64 rows, i64 n, i64 ldx, int vec,
                                             __half* __restrict__ xh, i64 kPad, i64 ldh) {
    const i64 chunksPerRow = ldh / 8;
    const i64 total = kPad * chunksPerRow;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const i64 r = t / chunksPerRow;
        const i64 c = (t % chunksPerRow) * 8;
        float v[8];
        if (r < rows && vec && c + 8 <= n) {
            const float4 lo = *reinterpret_cast<const float4*>(x + r * ldx + c);
            const float4 hi = *reinterpret_cast<const float4*>(x + r * ldx + c + 4);
            v[0] = lo.x; v[1] = lo.y; v[2] = lo.z; v[3] = lo.w;
            v[4] = hi.x; v[5] = hi.y; v[6] = hi.z; v[7] = hi.w;
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) v[e] = r < rows && c + e < n ? x[r * ldx + c + e] : 0.f;
        }
        __align__(16) __half h[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) h[e] = to_half_clamped(v[e]);
        *reinterpret_cast<uint4*>(xh + r * ldh + c) = *reinterpret_cast<const uint4*>(h);
    }
}

// out[i] = float(in[i]) for n 16-bit values (fp16 when bf16 == 0, else bfloat16): checkpoint weights widened on the
// device instead of on the host.
extern "C" __global__ void widen_16bit(const unsigned short* __restrict__ in, int bf16, float* __restrict__ out,
                                       i64 n) {
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const unsigned short b = in[i];
        out[i] = bf16 ? __uint_as_float((unsigned)b << 16) : __half2float(__ushort_as_half(b));
    }
}
