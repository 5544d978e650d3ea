// Tensor-core GEMM for fp32 operands: C[M,N] = alpha * A[M,K] * B[N,K]^T (+ bias[N]) + beta * C, A and B both
// K-contiguous (a linear layer's activations and its Hugging Face weight [out, in]), fp32 accumulation, in three
// precisions:
//   tf32   mma.sync m16n8k8, each operand rounded to TF32 (10-bit mantissa): ~1e-3 relative error per product;
//   tf32x3 m16n8k8, each operand split into a TF32 head and a TF32 tail, three products (head*tail, tail*head,
//          head*head): about fp32's accuracy at a third of the tensor-core rate;
//   f16    mma.sync m16n8k16, each operand rounded to fp16 (round to nearest even; the same 10-bit mantissa as TF32,
//          but |x| > 65504 becomes infinite and |x| < 6.1e-5 loses bits), at twice TF32's rate per instruction. The
//          fp32 tiles are converted while fragments are read from shared memory.
// Tiles: 128 rows x (32 * NT) columns per block of 8 warps (2 x 4, each 64 x 8*NT), K in steps of 32 through a
// cp.async pipeline of STAGES tiles in dynamic shared memory; fragments come out of shared memory with ldmatrix (a TF32
// element is a pair of b16 lanes, so an 8x8 b16 matrix is an 8x4 fp32 block, the fragment layout of m16n8k8).
// Blocks run in groups of 16 row tiles so concurrent blocks share A and B tiles in L2. Every index is 64-bit.
//
// gemm_nt_h16*: the same product for operands already stored as fp16 in device memory (a FAST linear's fp16 weight
// and its input converted once), m16n8k16 with fp32 accumulation: half the bytes per tile of the f16 kernel, so the
// tiles go 64 deep in k with more stages, and ldmatrix hands the fp16 fragments straight to the mma.

#include <cuda_fp16.h>

#include "mma.cuh"

typedef long long i64;

namespace {

constexpr int BM = 128;
constexpr int BK = 32;
constexpr int LDS = BK + 4;  // padded shared row: fragment reads of 8 rows x 4 columns hit 32 distinct banks
constexpr int THREADS = 256;
constexpr int GROUP_M = 16;
constexpr int MT = 4;  // m16 tiles per warp

__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// Two floats rounded to fp16 (round to nearest even), lo in the low half: one register of an f16 fragment.
__device__ __forceinline__ unsigned to_f16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ void mma_tf32(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void cp_async4(float* dst, const float* src, int bytes) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src), "r"(bytes));
}



// Copies rows [r0, r0+ROWS) x columns [k0, k0+32) of a [rows, K] matrix (row stride ld) into a padded shared
// tile, zeros outside the matrix. VEC: rows start 16-byte aligned, so 16-byte copies (a partial one at K's end).
template <int ROWS, bool VEC>
__device__ __forceinline__ void load_tile(float* tile, const float* __restrict__ g, i64 ld, i64 rows, i64 K,
                                          i64 r0, i64 k0) {
    const int t = threadIdx.x;
#pragma unroll
    for (int c = 0; c < (ROWS * BK / 4) / THREADS; ++c) {
        const int idx = t + c * THREADS;
        const int row = idx >> 3;
        const int col = (idx & 7) * 4;
        const i64 gr = r0 + row, gk = k0 + col;
        float* dst = tile + row * LDS + col;
        const bool rowIn = gr < rows;
        if (VEC) {
            const i64 left = rowIn ? K - gk : 0;
            const int bytes = left >= 4 ? 16 : (left > 0 ? (int)left * 4 : 0);
            cp_async16(dst, bytes > 0 ? g + gr * ld + gk : g, bytes);
        } else {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const bool in = rowIn && gk + e < K;
                cp_async4(dst + e, in ? g + gr * ld + gk + e : g, in ? 4 : 0);
            }
        }
    }
}

// The output tile a block computes: blocks run in groups of GROUP_M row tiles (see the header).
__device__ __forceinline__ void tile_origin(i64 M, i64 N, int BN, i64& m0, i64& n0) {
    const i64 mTiles = (M + BM - 1) / BM, nTiles = (N + BN - 1) / BN;
    const i64 id = blockIdx.x;
    const i64 perGroup = GROUP_M * nTiles;
    const i64 firstM = id / perGroup * GROUP_M;
    const i64 groupRows = min((i64)GROUP_M, mTiles - firstM);
    const i64 inGroup = id % perGroup;
    m0 = (firstM + inGroup % groupRows) * BM;
    n0 = inGroup / groupRows * BN;
}

template <int NT>
__device__ __forceinline__ void zero(float (&acc)[MT][NT][4]) {
    for_each_accumulator<MT, NT>([&](int i, int j, int e, int, int) { acc[i][j][e] = 0.f; });
}

// C = alpha * acc (+ bias) + beta * C for a warp's MT x NT accumulator tiles at (m0 + wm, n0 + wn).
template <int NT>
__device__ __forceinline__ void store_tile(const float (&acc)[MT][NT][4], i64 M, i64 N, i64 m0, i64 n0, int wm, int wn,
                                           float alpha, const float* __restrict__ bias, float beta,
                                           float* __restrict__ C, i64 ldc) {
    for_each_accumulator<MT, NT>([&](int i, int j, int e, int row, int col) {
        const i64 m = m0 + wm + row;
        const i64 n = n0 + wn + col;
        if (m < M && n < N) {
            float* c = C + m * ldc + n;
            float v = alpha * acc[i][j][e];
            if (bias) v += bias[n];
            // beta == 0 ignores C's old contents (NaN included), as BLAS does
            *c = beta == 0.f ? v : v + beta * *c;
        }
    });
}

enum Mode { TF32, TF32X3, F16 };

template <Mode MODE, bool VEC, int NT, int STAGES>
__device__ void gemm_nt(i64 M, i64 N, i64 K, float alpha, const float* __restrict__ A, i64 lda,
                        const float* __restrict__ B, i64 ldb, const float* __restrict__ bias, float beta,
                        float* __restrict__ C, i64 ldc) {
    constexpr int BN = 4 * 8 * NT;
    extern __shared__ __align__(16) float smem[];
    float* As = smem;                      // [STAGES][BM][LDS]
    float* Bs = smem + STAGES * BM * LDS;  // [STAGES][BN][LDS]

    i64 m0, n0;
    tile_origin(M, N, BN, m0, n0);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 8 * NT;
    const int g = lane >> 2, tq = lane & 3;
    // ldmatrix row addresses: lane l points at row l%8 of matrix l/8
    const int lrow = lane & 7, lmat = lane >> 3;
    const int aRow = wm + lrow + (lmat & 1) * 8, aCol = (lmat >> 1) * 4;  // a0..a3: rows +0/+8, k +0/+4
    const int bRow = wn + lrow + (lmat >> 1) * 8, bCol = (lmat & 1) * 4;  // b0, b1 of n-tile j, then of j + 1

    float acc[MT][NT][4];
    zero<NT>(acc);

    pipelined_k_loop<STAGES>(
        (K + BK - 1) / BK,
        [&](int s, i64 kt) {
            load_tile<BM, VEC>(As + s * BM * LDS, A, lda, M, K, m0, kt * BK);
            load_tile<BN, VEC>(Bs + s * BN * LDS, B, ldb, N, K, n0, kt * BK);
        },
        [&](int s) {
            const float* a = As + s * BM * LDS;
            const float* b = Bs + s * BN * LDS;
            if constexpr (MODE == F16) {
                // The k order inside a tile is free as long as A and B agree: in step s, lane tq reads the four
                // floats at columns 8*tq + 4*s (one 16-byte load, conflict-free with the 36-float rows) and takes them
                // as the fragment's k pairs {2tq, 2tq+1} and {2tq+8, 2tq+9}; the two steps cover the tile's 32 columns
                // once.
#pragma unroll
                for (int step = 0; step < 2; ++step) {
                    const int col = 8 * tq + 4 * step;
                    unsigned af[MT][4], bf[NT][2];
#pragma unroll
                    for (int i = 0; i < MT; ++i) {
                        const float4 lo = *reinterpret_cast<const float4*>(a + (wm + i * 16 + g) * LDS + col);
                        const float4 hi = *reinterpret_cast<const float4*>(a + (wm + i * 16 + g + 8) * LDS + col);
                        af[i][0] = to_f16x2(lo.x, lo.y);
                        af[i][1] = to_f16x2(hi.x, hi.y);
                        af[i][2] = to_f16x2(lo.z, lo.w);
                        af[i][3] = to_f16x2(hi.z, hi.w);
                    }
#pragma unroll
                    for (int j = 0; j < NT; ++j) {
                        const float4 v = *reinterpret_cast<const float4*>(b + (wn + j * 8 + g) * LDS + col);
                        bf[j][0] = to_f16x2(v.x, v.y);
                        bf[j][1] = to_f16x2(v.z, v.w);
                    }
#pragma unroll
                    for (int i = 0; i < MT; ++i)
#pragma unroll
                        for (int j = 0; j < NT; ++j) mma_f16(acc[i][j], af[i], bf[j]);
                }
            } else {
                constexpr bool SPLIT = MODE == TF32X3;
#pragma unroll
                for (int kk = 0; kk < BK; kk += 8) {
                    unsigned af[MT][4], bf[NT][2];
                    unsigned at[MT][4], bt[NT][2];
#pragma unroll
                    for (int i = 0; i < MT; ++i) {
                        unsigned raw[4];
                        ldmatrix_x4(raw, a + (aRow + i * 16) * LDS + kk + aCol);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const float v = __uint_as_float(raw[e]);
                            af[i][e] = to_tf32(v);
                            if (SPLIT) at[i][e] = to_tf32(v - __uint_as_float(af[i][e]));
                        }
                    }
#pragma unroll
                    for (int j = 0; j < NT; j += 2) {
                        unsigned raw[4];
                        ldmatrix_x4(raw, b + (bRow + j * 8) * LDS + kk + bCol);
#pragma unroll
                        for (int e = 0; e < 4; ++e) {
                            const float v = __uint_as_float(raw[e]);
                            unsigned& head = bf[j + (e >> 1)][e & 1];
                            head = to_tf32(v);
                            if (SPLIT) bt[j + (e >> 1)][e & 1] = to_tf32(v - __uint_as_float(head));
                        }
                    }
#pragma unroll
                    for (int i = 0; i < MT; ++i)
#pragma unroll
                        for (int j = 0; j < NT; ++j) {
                            if (SPLIT) {
                                mma_tf32(acc[i][j], af[i], bt[j]);
                                mma_tf32(acc[i][j], at[i], bf[j]);
                            }
                            mma_tf32(acc[i][j], af[i], bf[j]);
                        }
                }
            }
        });
    store_tile<NT>(acc, M, N, m0, n0, wm, wn, alpha, bias, beta, C, ldc);
}

// ---- fp16 operands in device memory ------------------------------------------------------------------------

constexpr int BKH = 64;        // k per tile, in halves
constexpr int LDH = BKH + 8;   // padded shared row (144 bytes): ldmatrix's 8 row reads hit 32 distinct banks

// Rows [r0, r0+ROWS) x columns [k0, k0+64) of a [rows, K] fp16 matrix into a padded shared tile, zeros outside.
// VEC: rows start 16-byte aligned, so 16-byte asynchronous copies (a zero-filled partial one at K's end); otherwise
// element by element through registers (shapes whose rows are not 8-half aligned).
template <int ROWS, bool VEC>
__device__ __forceinline__ void load_tile_h(__half* tile, const __half* __restrict__ g, i64 ld, i64 rows, i64 K,
                                            i64 r0, i64 k0) {
    const int t = threadIdx.x;
#pragma unroll
    for (int c = 0; c < (ROWS * BKH / 8) / THREADS; ++c) {
        const int idx = t + c * THREADS;
        const int row = idx >> 3;
        const int col = (idx & 7) * 8;
        const i64 gr = r0 + row, gk = k0 + col;
        __half* dst = tile + row * LDH + col;
        const bool rowIn = gr < rows;
        if (VEC) {
            const i64 left = rowIn ? K - gk : 0;
            const int bytes = left >= 8 ? 16 : (left > 0 ? (int)left * 2 : 0);
            cp_async16(dst, bytes > 0 ? g + gr * ld + gk : g, bytes);
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                dst[e] = rowIn && gk + e < K ? g[gr * ld + gk + e] : __ushort_as_half((unsigned short)0);
            }
        }
    }
}

template <bool VEC, int NT, int STAGES>
__device__ void gemm_nt_half(i64 M, i64 N, i64 K, float alpha, const __half* __restrict__ A, i64 lda,
                             const __half* __restrict__ B, i64 ldb, const float* __restrict__ bias, float beta,
                             float* __restrict__ C, i64 ldc) {
    constexpr int BN = 4 * 8 * NT;
    extern __shared__ __align__(16) __half hsmem[];
    __half* As = hsmem;                      // [STAGES][BM][LDH]
    __half* Bs = hsmem + STAGES * BM * LDH;  // [STAGES][BN][LDH]

    i64 m0, n0;
    tile_origin(M, N, BN, m0, n0);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 8 * NT;
    // ldmatrix row addresses (lane l: row l%8 of matrix l/8). A's four matrices: rows +0/+8, then k +8;
    // B's: k +0/+8 of n-tile j, then of n-tile j + 1.
    const int aRow = wm + (lane & 15), aCol = (lane >> 4) * 8;
    const int bRow = wn + (lane & 7) + (lane >> 4) * 8, bCol = ((lane >> 3) & 1) * 8;

    float acc[MT][NT][4];
    zero<NT>(acc);
    pipelined_k_loop<STAGES>(
        (K + BKH - 1) / BKH,
        [&](int s, i64 kt) {
            load_tile_h<BM, VEC>(As + s * BM * LDH, A, lda, M, K, m0, kt * BKH);
            load_tile_h<BN, VEC>(Bs + s * BN * LDH, B, ldb, N, K, n0, kt * BKH);
        },
        [&](int s) {
            const __half* a = As + s * BM * LDH;
            const __half* b = Bs + s * BN * LDH;
#pragma unroll
            for (int kk = 0; kk < BKH; kk += 16) {
                mma_f16_k16_step<false>(
                        acc, [&](int i) { return a + (aRow + i * 16) * LDH + kk + aCol; },
                        [&](int j) { return b + (bRow + j * 8) * LDH + kk + bCol; });
            }
        });
    store_tile<NT>(acc, M, N, m0, n0, wm, wn, alpha, bias, beta, C, ldc);
}

}  // namespace

// Shared memory per block: STAGES * (128 + 32 * NT) * (32 + 4) floats; TensorCoreGemm.java picks the variant.
//   tf32          64x64 per warp (128 x 256 per block), 3 stages: 162 KiB, one block per multiprocessor
//   tf32x3        64x32 per warp (128 x 128 per block), 3 stages: 108 KiB (head and tail fragments need registers)
//   f16           64x64 per warp (128 x 256 per block), 3 stages: 162 KiB
//   *_small       64x32 per warp, 2 stages: 72 KiB, for devices with at most 99 KiB per block (sm_86, sm_89)
#define TC_GEMM(NAME, MODE, VEC, NT, STAGES)                                                                  \
    extern "C" __global__ void __launch_bounds__(THREADS, 1)                                                   \
    NAME(i64 M, i64 N, i64 K, float alpha, const float* __restrict__ A, i64 lda, const float* __restrict__ B, \
         i64 ldb, const float* __restrict__ bias, float beta, float* __restrict__ C, i64 ldc) {               \
        gemm_nt<MODE, VEC, NT, STAGES>(M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);                    \
    }

TC_GEMM(gemm_nt_tf32_vec, TF32, true, 8, 3)
TC_GEMM(gemm_nt_tf32, TF32, false, 8, 3)
TC_GEMM(gemm_nt_tf32x3_vec, TF32X3, true, 4, 3)
TC_GEMM(gemm_nt_tf32x3, TF32X3, false, 4, 3)
TC_GEMM(gemm_nt_f16_vec, F16, true, 8, 3)
TC_GEMM(gemm_nt_f16, F16, false, 8, 3)
TC_GEMM(gemm_nt_tf32_small_vec, TF32, true, 4, 2)
TC_GEMM(gemm_nt_tf32_small, TF32, false, 4, 2)
TC_GEMM(gemm_nt_tf32x3_small_vec, TF32X3, true, 4, 2)
TC_GEMM(gemm_nt_tf32x3_small, TF32X3, false, 4, 2)
TC_GEMM(gemm_nt_f16_small_vec, F16, true, 4, 2)
TC_GEMM(gemm_nt_f16_small, F16, false, 4, 2)

// fp16 operands: STAGES * (128 + 32 * NT) * (64 + 8) halves of shared memory per block.
//   h16     64x64 per warp (128 x 256 per block), 4 stages: 216 KiB (H100: 227 KiB per block)
//   h16_3   the same tiles, 3 stages: 162 KiB (A100: 163 KiB)
//   h16_small 64x32 per warp, 2 stages: 72 KiB (sm_86, sm_89)
#define TC_GEMM_H16(NAME, VEC, NT, STAGES)                                                                      \
    extern "C" __global__ void __launch_bounds__(THREADS, 1)                                                   \
    NAME(i64 M, i64 N, i64 K, float alpha, const __half* __restrict__ A, i64 lda,                             \
         const __half* __restrict__ B, i64 ldb, const float* __restrict__ bias, float beta,                    \
         float* __restrict__ C, i64 ldc) {                                                                     \
        gemm_nt_half<VEC, NT, STAGES>(M, N, K, alpha, A, lda, B, ldb, bias, beta, C, ldc);                     \
    }

TC_GEMM_H16(gemm_nt_h16_vec, true, 8, 4)
TC_GEMM_H16(gemm_nt_h16, false, 8, 4)
TC_GEMM_H16(gemm_nt_h16_3_vec, true, 8, 3)
TC_GEMM_H16(gemm_nt_h16_3, false, 8, 3)
TC_GEMM_H16(gemm_nt_h16_small_vec, true, 4, 2)
TC_GEMM_H16(gemm_nt_h16_small, false, 4, 2)
