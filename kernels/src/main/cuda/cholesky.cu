// The small-block parts of a blocked Cholesky factorization and of a blocked triangular inverse on a row-major
// n x n matrix (the big updates are dense.cu's GEMM). Blocks are NB = 64 wide and live in shared memory.
// Conventions: P = R^T R with R upper triangular, stored in P's upper triangle; the strict lower triangle is never
// written, so it keeps the input there.

typedef long long i64;

namespace {
constexpr int NB = 64;
constexpr int PANEL_THREADS = 128;
}  // namespace

// Factors the diagonal block P[k0:k0+kb, k0:k0+kb] (upper triangle, kb <= NB) into R11 in place: unblocked
// right-looking Cholesky in shared memory. A pivot that is not positive (or NaN) records its 1-based global
// index in *info if no earlier failure was recorded.
extern "C" __global__ void __launch_bounds__(256)
potrf_diagonal(float* __restrict__ P, i64 ld, i64 k0, int kb, unsigned long long* __restrict__ info) {
    __shared__ float s[NB][NB + 1];
    const int t = threadIdx.x;
    for (int idx = t; idx < kb * kb; idx += blockDim.x) {
        const int r = idx / kb, c = idx % kb;
        s[r][c] = c >= r ? P[(k0 + r) * ld + k0 + c] : 0.f;
    }
    __syncthreads();
    for (int j = 0; j < kb; ++j) {
        const float d = s[j][j];
        if (!(d > 0.f) && t == 0) atomicCAS(info, 0ull, (unsigned long long)(k0 + j + 1));
        const float r = sqrtf(d);
        __syncthreads();  // everyone has read s[j][j]
        if (t == 0) s[j][j] = r;
        for (int c = j + 1 + t; c < kb; c += blockDim.x) s[j][c] /= r;
        __syncthreads();
        const int w = kb - j - 1;
        for (int idx = t; idx < w * w; idx += blockDim.x) {
            const int r2 = j + 1 + idx / w, c = j + 1 + idx % w;
            if (c >= r2) s[r2][c] -= s[j][r2] * s[j][c];
        }
        __syncthreads();
    }
    for (int idx = t; idx < kb * kb; idx += blockDim.x) {
        const int r = idx / kb, c = idx % kb;
        if (c >= r) P[(k0 + r) * ld + k0 + c] = s[r][c];
    }
}

// Panel solve of the blocked Cholesky: P[k0:k0+kb, c0:c0+cols] <- R11^-T * P[k0:k0+kb, c0:c0+cols], R11 the factored
// diagonal block at (k0, k0). One thread per column, forward substitution with the column held in registers.
extern "C" __global__ void __launch_bounds__(PANEL_THREADS)
trsm_panel(float* __restrict__ P, i64 ld, i64 k0, int kb, i64 c0, i64 cols) {
    __shared__ float r11[NB][NB + 1];
    for (int idx = threadIdx.x; idx < NB * NB; idx += blockDim.x) {
        const int r = idx / NB, c = idx % NB;
        float v;
        if (r < kb && c < kb) v = c >= r ? P[(k0 + r) * ld + k0 + c] : 0.f;
        else v = r == c ? 1.f : 0.f;  // identity padding past kb
        r11[r][c] = v;
    }
    __syncthreads();
    const i64 col = c0 + (i64)blockIdx.x * PANEL_THREADS + threadIdx.x;
    if (col >= c0 + cols) return;
    float x[NB];
#pragma unroll
    for (int r = 0; r < NB; ++r) x[r] = r < kb ? P[(k0 + r) * ld + col] : 0.f;
    // R11^T x = p: x[r] = (p[r] - sum_{i<r} R11[i][r] x[i]) / R11[r][r]
#pragma unroll
    for (int r = 0; r < NB; ++r) {
        float s = x[r];
#pragma unroll
        for (int i = 0; i < r; ++i) s -= r11[i][r] * x[i];
        x[r] = s / r11[r][r];
    }
#pragma unroll
    for (int r = 0; r < NB; ++r)
        if (r < kb) P[(k0 + r) * ld + col] = x[r];
}

// Inverts the upper-triangular diagonal blocks of R in place (block b covers rows and columns
// [b*NB, min((b+1)*NB, n))); column by column: X[j][j] = 1/T[j][j], X[i][j] = -(sum_{i<=k<j} X[i][k] T[k][j]) X[j][j].
extern "C" __global__ void __launch_bounds__(NB)
trtri_diagonal(float* __restrict__ R, i64 ld, i64 n) {
    __shared__ float tt[NB][NB + 1];
    __shared__ float xx[NB][NB + 1];
    const i64 d0 = (i64)blockIdx.x * NB;
    const int kb = (int)(n - d0 < NB ? n - d0 : NB);
    const int t = threadIdx.x;
    for (int r = 0; r < kb; ++r) {
        tt[r][t] = (t < kb && t >= r) ? R[(d0 + r) * ld + d0 + t] : 0.f;
        xx[r][t] = 0.f;
    }
    __syncthreads();
    for (int j = 0; j < kb; ++j) {
        if (t == j) xx[j][j] = 1.f / tt[j][j];
        __syncthreads();
        if (t < j) {
            float s = 0.f;
            for (int k = t; k < j; ++k) s += xx[t][k] * tt[k][j];
            xx[t][j] = -s * xx[j][j];
        }
        __syncthreads();
    }
    for (int r = 0; r < kb; ++r)
        if (t < kb && t >= r) R[(d0 + r) * ld + d0 + t] = xx[r][t];
}
