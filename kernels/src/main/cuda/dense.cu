// Dense fp32 matrix kernels over row-major device matrices: a tiled GEMM with triangular options (the Hessian
// accumulation, the GPTQ lazy update and the blocked Cholesky/inverse updates are all instances of it), in-place
// symmetric/transposed/reversed copies (a gathering transpose also into fp16 storage), and an fp64-accumulating matrix-vector product for residual checks.
// Every index into a matrix is 64-bit: a 49152x49152 Hessian has 2.4e9 elements.

#include <cuda_fp16.h>

typedef long long i64;

namespace {

// GEMM tile: 128x128 outputs per block of 256 threads, 8x8 per thread, K in steps of 8, double-buffered in
// shared memory with the next step's loads held in registers while the current step computes.
constexpr int BM = 128;
constexpr int BN = 128;
constexpr int BK = 8;
constexpr int GEMM_THREADS = 256;

// Option bits, shared with DenseKernels.java.
constexpr int TRI_A = 1;    // op(A)[m][k] = 0 for k < m: read only k >= m (A holds an upper triangle)
constexpr int TRI_B = 2;    // B[k][n] = 0 for k > n: read only k <= n (B holds an upper triangle)
constexpr int UPPER_C = 4;  // write only C[m][n] with n >= m
constexpr int VEC_A = 8;    // A's rows start 16-byte aligned (base and leading dimension): float4 loads
constexpr int VEC_B = 16;
constexpr int VEC_C = 32;

__device__ __forceinline__ float4 zero4() { return make_float4(0.f, 0.f, 0.f, 0.f); }

// Four elements (k, m..m+3) of op(A) when A is stored [K x M] (k-major): contiguous in m.
__device__ __forceinline__ float4 load_a_kmajor(const float* __restrict__ A, i64 lda, i64 k, i64 m, i64 M,
                                                i64 kEnd, int flags) {
    if (k >= kEnd) return zero4();
    const float* p = A + k * lda + m;
    const bool tri = flags & TRI_A;
    if ((flags & VEC_A) && m + 3 < M && (!tri || k >= m + 3)) return __ldg(reinterpret_cast<const float4*>(p));
    float4 v;
    v.x = (m + 0 < M && (!tri || k >= m + 0)) ? __ldg(p + 0) : 0.f;
    v.y = (m + 1 < M && (!tri || k >= m + 1)) ? __ldg(p + 1) : 0.f;
    v.z = (m + 2 < M && (!tri || k >= m + 2)) ? __ldg(p + 2) : 0.f;
    v.w = (m + 3 < M && (!tri || k >= m + 3)) ? __ldg(p + 3) : 0.f;
    return v;
}

// Four elements (k..k+3, m) of op(A) = A when A is stored [M x K] (m-major): contiguous in k.
__device__ __forceinline__ float4 load_a_mmajor(const float* __restrict__ A, i64 lda, i64 k, i64 m, i64 M,
                                                i64 kEnd, int flags) {
    if (m >= M) return zero4();
    const float* p = A + m * lda + k;
    const bool tri = flags & TRI_A;
    if ((flags & VEC_A) && k + 3 < kEnd && (!tri || k >= m)) return __ldg(reinterpret_cast<const float4*>(p));
    float4 v;
    v.x = (k + 0 < kEnd && (!tri || k + 0 >= m)) ? __ldg(p + 0) : 0.f;
    v.y = (k + 1 < kEnd && (!tri || k + 1 >= m)) ? __ldg(p + 1) : 0.f;
    v.z = (k + 2 < kEnd && (!tri || k + 2 >= m)) ? __ldg(p + 2) : 0.f;
    v.w = (k + 3 < kEnd && (!tri || k + 3 >= m)) ? __ldg(p + 3) : 0.f;
    return v;
}

// Four elements (k, n..n+3) of B stored [K x N].
__device__ __forceinline__ float4 load_b(const float* __restrict__ B, i64 ldb, i64 k, i64 n, i64 N, i64 kEnd,
                                         int flags) {
    if (k >= kEnd) return zero4();
    const float* p = B + k * ldb + n;
    const bool tri = flags & TRI_B;
    if ((flags & VEC_B) && n + 3 < N && (!tri || k <= n)) return __ldg(reinterpret_cast<const float4*>(p));
    float4 v;
    v.x = (n + 0 < N && (!tri || k <= n + 0)) ? __ldg(p + 0) : 0.f;
    v.y = (n + 1 < N && (!tri || k <= n + 1)) ? __ldg(p + 1) : 0.f;
    v.z = (n + 2 < N && (!tri || k <= n + 2)) ? __ldg(p + 2) : 0.f;
    v.w = (n + 3 < N && (!tri || k <= n + 3)) ? __ldg(p + 3) : 0.f;
    return v;
}

__device__ __forceinline__ float out_value(float acc, float alpha, float beta, const float* c) {
    // beta == 0 ignores C's old contents (NaN included), as BLAS does
    return beta == 0.f ? alpha * acc : alpha * acc + beta * *c;
}

// C[M x N] = beta*C + alpha * op(A) * B, op(A)[m][k] = A[k][m] (A_KMAJOR) or A[m][k]; B[k][n].
template <bool A_KMAJOR>
__device__ void gemm_tile(i64 M, i64 N, i64 K, float alpha, const float* __restrict__ A, i64 lda,
                          const float* __restrict__ B, i64 ldb, float beta, float* __restrict__ C, i64 ldc,
                          int flags) {
    __shared__ __align__(16) float As[2][BK][BM + 4];
    __shared__ __align__(16) float Bs[2][BK][BN];

    const i64 m0 = (i64)blockIdx.y * BM;
    const i64 n0 = (i64)blockIdx.x * BN;
    if ((flags & UPPER_C) && n0 + BN <= m0) return;  // tile wholly below the diagonal

    const i64 kBegin = (flags & TRI_A) ? (m0 < K ? m0 : K) : 0;
    i64 kEnd = K;
    if ((flags & TRI_B) && n0 + BN < kEnd) kEnd = n0 + BN;

    const int t = threadIdx.x;
    // loader coordinates inside the tile
    const int aK = A_KMAJOR ? (t >> 5) : ((t & 1) * 4);
    const int aM = A_KMAJOR ? ((t & 31) * 4) : (t >> 1);
    const int bK = t >> 5;
    const int bN = (t & 31) * 4;
    // compute coordinates: rows ty*4.. and 64+ty*4.., columns tx*4.. and 64+tx*4..
    const int ty = t >> 4;
    const int tx = t & 15;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    auto loadA = [&](i64 k0) {
        return A_KMAJOR ? load_a_kmajor(A, lda, k0 + aK, m0 + aM, M, kEnd, flags)
                        : load_a_mmajor(A, lda, k0 + aK, m0 + aM, M, kEnd, flags);
    };
    auto storeA = [&](int buf, float4 v) {
        if (A_KMAJOR) {
            *reinterpret_cast<float4*>(&As[buf][aK][aM]) = v;
        } else {
            As[buf][aK + 0][aM] = v.x;
            As[buf][aK + 1][aM] = v.y;
            As[buf][aK + 2][aM] = v.z;
            As[buf][aK + 3][aM] = v.w;
        }
    };

    int buf = 0;
    if (kBegin < kEnd) {
        storeA(0, loadA(kBegin));
        *reinterpret_cast<float4*>(&Bs[0][bK][bN]) = load_b(B, ldb, kBegin + bK, n0 + bN, N, kEnd, flags);
    }
    __syncthreads();

    for (i64 k0 = kBegin; k0 < kEnd; k0 += BK) {
        const bool more = k0 + BK < kEnd;
        float4 nextA, nextB;
        if (more) {
            nextA = loadA(k0 + BK);
            nextB = load_b(B, ldb, k0 + BK + bK, n0 + bN, N, kEnd, flags);
        }
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][64 + ty * 4]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
            storeA(buf ^ 1, nextA);
            *reinterpret_cast<float4*>(&Bs[buf ^ 1][bK][bN]) = nextB;
        }
        __syncthreads();
        buf ^= 1;
    }

    const bool upper = flags & UPPER_C;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const i64 m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (m >= M) continue;
        float* crow = C + m * ldc;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const i64 n = n0 + half * 64 + tx * 4;
            const float* a4 = &acc[i][half * 4];
            if ((flags & VEC_C) && n + 3 < N && (!upper || n >= m)) {
                float4* p = reinterpret_cast<float4*>(crow + n);
                float4 v;
                if (beta == 0.f) {
                    v = make_float4(alpha * a4[0], alpha * a4[1], alpha * a4[2], alpha * a4[3]);
                } else {
                    const float4 old = *p;
                    v = make_float4(alpha * a4[0] + beta * old.x, alpha * a4[1] + beta * old.y,
                                    alpha * a4[2] + beta * old.z, alpha * a4[3] + beta * old.w);
                }
                *p = v;
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const i64 nj = n + j;
                    if (nj < N && (!upper || nj >= m)) crow[nj] = out_value(a4[j], alpha, beta, crow + nj);
                }
            }
        }
    }
}

constexpr int TILE = 32;  // square tiles of the in-place copy kernels
constexpr int TILE_ROWS = 8;

}  // namespace

// C = beta*C + alpha * A^T * B with A stored [K x M].
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
gemm_tn(i64 M, i64 N, i64 K, float alpha, const float* __restrict__ A, i64 lda, const float* __restrict__ B,
        i64 ldb, float beta, float* __restrict__ C, i64 ldc, int flags) {
    gemm_tile<true>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, flags);
}

// C = beta*C + alpha * A * B with A stored [M x K].
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2)
gemm_nn(i64 M, i64 N, i64 K, float alpha, const float* __restrict__ A, i64 lda, const float* __restrict__ B,
        i64 ldb, float beta, float* __restrict__ C, i64 ldc, int flags) {
    gemm_tile<false>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, flags);
}

// Square n x n matrix: the lower triangle becomes the mirror of the upper one, and every element is multiplied
// by scale (the finished Hessian from its accumulated upper triangle). Tile pairs (bi, bj), bi <= bj, go
// through shared memory so reads and writes stay coalesced and no element is read after it was overwritten.
extern "C" __global__ void __launch_bounds__(TILE * TILE_ROWS)
symmetrize_upper(float* __restrict__ H, i64 n, i64 ld, float divisor) {
    __shared__ float tile[TILE][TILE + 1];
    const i64 bi = blockIdx.y, bj = blockIdx.x;
    if (bi > bj) return;
    const i64 r0 = bi * TILE, c0 = bj * TILE;
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        const i64 r = r0 + y, c = c0 + threadIdx.x;
        float v = 0.f;
        if (r < n && c < n) {
            v = H[r * ld + c] / divisor;
            if (c >= r) H[r * ld + c] = v;
        }
        tile[y][threadIdx.x] = v;
    }
    __syncthreads();
    // element (c0+x, r0+y) of the lower triangle takes the upper element (r0+y, c0+x)
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        const i64 r = c0 + y, c = r0 + threadIdx.x;
        if (r < n && c < n && r > c) H[r * ld + c] = tile[threadIdx.x][y];
    }
}

// In-place transpose of a square n x n matrix, tile pair by tile pair.
extern "C" __global__ void __launch_bounds__(TILE * TILE_ROWS)
transpose_square(float* __restrict__ A, i64 n, i64 ld) {
    __shared__ float upper[TILE][TILE + 1];
    __shared__ float lower[TILE][TILE + 1];
    const i64 bi = blockIdx.y, bj = blockIdx.x;
    if (bi > bj) return;
    const i64 r0 = bi * TILE, c0 = bj * TILE;
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        i64 r = r0 + y, c = c0 + threadIdx.x;
        upper[y][threadIdx.x] = (r < n && c < n) ? A[r * ld + c] : 0.f;
        r = c0 + y;
        c = r0 + threadIdx.x;
        lower[y][threadIdx.x] = (r < n && c < n) ? A[r * ld + c] : 0.f;
    }
    __syncthreads();
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        i64 r = r0 + y, c = c0 + threadIdx.x;
        if (r < n && c < n) A[r * ld + c] = lower[threadIdx.x][y];
        r = c0 + y;
        c = r0 + threadIdx.x;
        if (r < n && c < n && bi != bj) A[r * ld + c] = upper[threadIdx.x][y];
    }
}

// In-place A[i][j] <-> A[n-1-i][n-1-j] (J*A*J with J the exchange matrix). With zeroLower, the strict lower
// triangle of the result is zeroed, and any diagonal element that is not finite sets *bad = 1 (if bad is given).
extern "C" __global__ void reverse_square(float* __restrict__ A, i64 n, i64 ld, int zeroLower,
                                          int* __restrict__ bad) {
    const i64 i = blockIdx.y;                          // rows i < n-1-i pair with their mirror rows
    const i64 j = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 i2 = n - 1 - i, j2 = n - 1 - j;
    if (j >= n || i > i2 || (i == i2 && j > j2)) return;
    const float a = A[i * ld + j];
    const float b = A[i2 * ld + j2];
    float toFirst = b, toSecond = a;
    if (zeroLower) {
        if (i > j) toFirst = 0.f;
        if (i2 > j2) toSecond = 0.f;
        if (bad && ((i == j && !isfinite(toFirst)) || (i2 == j2 && !isfinite(toSecond)))) *bad = 1;
    }
    A[i * ld + j] = toFirst;
    A[i2 * ld + j2] = toSecond;
}

// A transpose that gathers: dst[i][j] = src[r(j)][c(i)] for dst outRows x outCols, with r = rowIndex and
// c = colIndex, a null index meaning the identity. Through a shared tile so both sides touch whole rows. The half
// variant stores fp16(value), clamped to +-65504 as forward.cu's float_to_half (fp16-storage tensors).
template <typename Out>
__device__ void gather_transposed_into(const float* __restrict__ src, i64 lds, Out* __restrict__ dst, i64 ldd,
                                       i64 outRows, i64 outCols, const int* __restrict__ rowIndex,
                                       const int* __restrict__ colIndex) {
    __shared__ float tile[TILE][TILE + 1];
    const i64 i0 = (i64)blockIdx.y * TILE, j0 = (i64)blockIdx.x * TILE;
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        const i64 j = j0 + y, i = i0 + threadIdx.x;
        if (j < outCols && i < outRows) {
            const i64 r = rowIndex ? (i64)rowIndex[j] : j;
            const i64 c = colIndex ? (i64)colIndex[i] : i;
            tile[y][threadIdx.x] = src[r * lds + c];
        }
    }
    __syncthreads();
    for (int y = threadIdx.y; y < TILE; y += TILE_ROWS) {
        const i64 i = i0 + y, j = j0 + threadIdx.x;
        if (i < outRows && j < outCols) {
            const float v = tile[threadIdx.x][y];
            if constexpr (sizeof(Out) == 2) {
                dst[i * ldd + j] = __float2half_rn(fminf(fmaxf(v, -65504.0f), 65504.0f));
            } else {
                dst[i * ldd + j] = v;
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(TILE * TILE_ROWS)
gather_transposed(const float* __restrict__ src, i64 lds, float* __restrict__ dst, i64 ldd, i64 outRows,
                  i64 outCols, const int* __restrict__ rowIndex, const int* __restrict__ colIndex) {
    gather_transposed_into(src, lds, dst, ldd, outRows, outCols, rowIndex, colIndex);
}

extern "C" __global__ void __launch_bounds__(TILE * TILE_ROWS)
gather_transposed_half(const float* __restrict__ src, i64 lds, __half* __restrict__ dst, i64 ldd, i64 outRows,
                       i64 outCols, const int* __restrict__ rowIndex, const int* __restrict__ colIndex) {
    gather_transposed_into(src, lds, dst, ldd, outRows, outCols, rowIndex, colIndex);
}

// diag(A) += value for a square n x n matrix.
extern "C" __global__ void add_diagonal(float* __restrict__ A, i64 n, i64 ld, float value) {
    const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) A[i * ld + i] += value;
}

// y[r] = sum_c A[r][c] * x[c], accumulated in fp64 (one warp per row): residual checks of fp32 results.
extern "C" __global__ void gemv_f64(const float* __restrict__ A, i64 rows, i64 cols, i64 lda,
                                    const float* __restrict__ x, double* __restrict__ y) {
    const int lane = threadIdx.x & 31;
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 warps = ((i64)gridDim.x * blockDim.x) >> 5;
    for (i64 r = warp; r < rows; r += warps) {
        const float* row = A + r * lda;
        double s = 0.0;
        for (i64 c = lane; c < cols; c += 32) s += (double)row[c] * (double)x[c];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
        if (lane == 0) y[r] = s;
    }
}
