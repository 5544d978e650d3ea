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
