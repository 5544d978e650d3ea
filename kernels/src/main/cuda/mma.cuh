// PTX wrappers the tensor-core kernels share (tcgemm.cu, half.cu): the fp16 mma, ldmatrix and the cp.async pipeline
// steps.
#pragma once

// c += a * b on an m16n8k16 tile: fp16 operands (a: 4 registers of row fragments, b: 2 of column fragments), fp32
// accumulators.
static __device__ __forceinline__ void mma_f16(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16-byte asynchronous copy from global to shared memory; bytes < 16 zero-fills the rest (bytes 0: all zeros,
// nothing read).
static __device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(bytes));
}

static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }

// Waits until at most N of this thread's committed copy groups are still in flight.
template <int N>
static __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

// Four 8x8 b16 matrices from shared memory, transposed with TRANS; lane l gives the address of row l%8 of matrix l/8
// (a row: 16 contiguous bytes).
template <bool TRANS = false>
static __device__ __forceinline__ void ldmatrix_x4(unsigned* r, const void* rowAddress) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(rowAddress);
    if constexpr (TRANS) {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    } else {
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(a));
    }
}

// One k16 step of a warp's MT x NT grid of m16n8 tiles, fragments from shared memory through ldmatrix (transposed
// with TRANS): aAddress(i) is this lane's row address for m-tile i, bAddress(j) for n-tiles j and j + 1 (one
// ldmatrix_x4 feeds two n-tiles, so NT is even).
template <bool TRANS, int MT, int NT, typename AAddress, typename BAddress>
static __device__ __forceinline__ void mma_f16_k16_step(float (&acc)[MT][NT][4], AAddress aAddress,
                                                        BAddress bAddress) {
    static_assert(NT % 2 == 0, "n-tiles come in pairs");
    unsigned af[MT][4], bf[NT][2];
#pragma unroll
    for (int i = 0; i < MT; ++i) ldmatrix_x4<TRANS>(af[i], aAddress(i));
#pragma unroll
    for (int j = 0; j < NT; j += 2) {
        unsigned r[4];
        ldmatrix_x4<TRANS>(r, bAddress(j));
        bf[j][0] = r[0];
        bf[j][1] = r[1];
        bf[j + 1][0] = r[2];
        bf[j + 1][1] = r[3];
    }
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_f16(acc[i][j], af[i], bf[j]);
}

// The cp.async k loop of a tiled product: STAGES - 1 k tiles in flight while one is computed. load(stage, kTile)
// issues the copies of k tile kTile into shared stage `stage`; compute(stage) reads a stage whose copies have landed
// for every thread of the block. Waits for all copies before returning.
template <int STAGES, typename Load, typename Compute>
static __device__ __forceinline__ void pipelined_k_loop(long long kTiles, Load load, Compute compute) {
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < kTiles) load(s, (long long)s);
        cp_async_commit();
    }
    for (long long kt = 0; kt < kTiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();  // tile kt has landed for every thread; the stage refilled below is no longer read
        const long long next = kt + STAGES - 1;
        if (next < kTiles) load((int)(next % STAGES), next);
        cp_async_commit();
        compute((int)(kt % STAGES));
    }
    cp_async_wait<0>();
}

// f(i, j, e, row, col) for accumulator e of the warp's m16n8 tile (i, j), MT x NT tiles of 16 x 8: row and col are
// its place in the warp's tile (the m16n8 layout: rows g and g + 8, columns 2 tq and 2 tq + 1, g = lane / 4,
// tq = lane % 4).
template <int MT, int NT, typename F>
static __device__ __forceinline__ void for_each_accumulator(F f) {
    const int lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) f(i, j, e, i * 16 + g + (e >> 1) * 8, j * 8 + tq * 2 + (e & 1));
}
