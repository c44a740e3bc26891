// CUDA emulation header: lets the host C++ compiler build a CUDA kernel file unchanged, so
// tinyconv.testing.cuda.EmulatedModule can run its kernels on the CPU, one thread after another.
//
// Supported: the execution-space keywords (defined away), dim3/uint3 and the built-in index
// variables, atomics (as plain read-modify-write: emulated threads never run concurrently),
// bit casts such as __int_as_float, CUDA's max/min overloads, <math.h> with CUDA's float
// overloads and fast-math intrinsics, __ldg, printf.
// Not supported (a compile error says so): __syncthreads, __syncwarp and warp shuffles/votes,
// which need every thread of a block in flight at once.
// Deliberately missing, because NVRTC lacks them too: INFINITY, NAN, HUGE_VAL*, M_PI and the
// other M_* constants, FLT_MAX (spell infinities with __int_as_float(0x7f800000)).
#pragma once

#include <math.h>   // in C++, also brings std's float overloads (sqrt(float) -> float) into scope
#include <stddef.h>
#include <stdio.h>  // device-side printf

#undef INFINITY
#undef NAN
#undef HUGE_VAL
#undef HUGE_VALF
#undef HUGE_VALL
#undef M_E
#undef M_LOG2E
#undef M_LOG10E
#undef M_LN2
#undef M_LN10
#undef M_PI
#undef M_PI_2
#undef M_PI_4
#undef M_1_PI
#undef M_2_PI
#undef M_2_SQRTPI
#undef M_SQRT2
#undef M_SQRT1_2

// ---- execution-space and qualifier keywords ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// One block runs at a time, so a block's shared array can be one static array.
#define __shared__ static
// __restrict__ is understood by g++ as it is.

// ---- launch geometry ----
struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Launches are serial (the Python side holds a lock), so plain globals are enough.
static uint3 threadIdx;
static uint3 blockIdx;
static dim3 blockDim;
static dim3 gridDim;
static const int warpSize = 32;

// Runs `body` once per thread of the grid, setting the index variables first. `launch` holds
// grid x, y, z then block x, y, z. The order (block by block, thread x fastest) is one order a
// GPU might use; a kernel whose result depends on the order has a race.
template <typename Body>
static void tinyconv_run_grid(const unsigned int* launch, Body body) {
    gridDim = dim3(launch[0], launch[1], launch[2]);
    blockDim = dim3(launch[3], launch[4], launch[5]);
    for (unsigned int bz = 0; bz < gridDim.z; ++bz)
        for (unsigned int by = 0; by < gridDim.y; ++by)
            for (unsigned int bx = 0; bx < gridDim.x; ++bx) {
                blockIdx = uint3{bx, by, bz};
                for (unsigned int tz = 0; tz < blockDim.z; ++tz)
                    for (unsigned int ty = 0; ty < blockDim.y; ++ty)
                        for (unsigned int tx = 0; tx < blockDim.x; ++tx) {
                            threadIdx = uint3{tx, ty, tz};
                            body();
                        }
            }
}

// ---- block-wide synchronisation: impossible when threads run one after another ----
#define TINYCONV_NEEDS_COOPERATIVE_THREADS \
    __attribute__((error("not supported by the CPU emulator: emulated threads run one after " \
                         "another, so kernels must not synchronise or exchange data between threads")))
TINYCONV_NEEDS_COOPERATIVE_THREADS void __syncthreads();
TINYCONV_NEEDS_COOPERATIVE_THREADS int __syncthreads_count(int);
TINYCONV_NEEDS_COOPERATIVE_THREADS int __syncthreads_and(int);
TINYCONV_NEEDS_COOPERATIVE_THREADS int __syncthreads_or(int);
TINYCONV_NEEDS_COOPERATIVE_THREADS void __syncwarp(unsigned int mask = 0xffffffffu);
template <typename T> TINYCONV_NEEDS_COOPERATIVE_THREADS T __shfl_sync(unsigned int, T, int, int = 32);
template <typename T> TINYCONV_NEEDS_COOPERATIVE_THREADS T __shfl_up_sync(unsigned int, T, unsigned int, int = 32);
template <typename T> TINYCONV_NEEDS_COOPERATIVE_THREADS T __shfl_down_sync(unsigned int, T, unsigned int, int = 32);
template <typename T> TINYCONV_NEEDS_COOPERATIVE_THREADS T __shfl_xor_sync(unsigned int, T, int, int = 32);
TINYCONV_NEEDS_COOPERATIVE_THREADS unsigned int __ballot_sync(unsigned int, int);
TINYCONV_NEEDS_COOPERATIVE_THREADS int __all_sync(unsigned int, int);
TINYCONV_NEEDS_COOPERATIVE_THREADS int __any_sync(unsigned int, int);

// ---- atomics: plain read-modify-write, returning the old value as CUDA does ----
// One overload per type CUDA provides, so argument conversions behave as under NVRTC.
#define TINYCONV_ATOMIC(NAME, T, NEW_VALUE)          \
    inline T NAME(T* address, T val) {               \
        T old = *address;                            \
        *address = (NEW_VALUE);                      \
        return old;                                  \
    }
TINYCONV_ATOMIC(atomicAdd, int, old + val)
TINYCONV_ATOMIC(atomicAdd, unsigned int, old + val)
TINYCONV_ATOMIC(atomicAdd, unsigned long long, old + val)
TINYCONV_ATOMIC(atomicAdd, float, old + val)
TINYCONV_ATOMIC(atomicAdd, double, old + val)
TINYCONV_ATOMIC(atomicSub, int, old - val)
TINYCONV_ATOMIC(atomicSub, unsigned int, old - val)
TINYCONV_ATOMIC(atomicExch, int, val)
TINYCONV_ATOMIC(atomicExch, unsigned int, val)
TINYCONV_ATOMIC(atomicExch, unsigned long long, val)
TINYCONV_ATOMIC(atomicExch, float, val)
TINYCONV_ATOMIC(atomicMax, int, old > val ? old : val)
TINYCONV_ATOMIC(atomicMax, unsigned int, old > val ? old : val)
TINYCONV_ATOMIC(atomicMax, long long, old > val ? old : val)
TINYCONV_ATOMIC(atomicMax, unsigned long long, old > val ? old : val)
TINYCONV_ATOMIC(atomicMin, int, old < val ? old : val)
TINYCONV_ATOMIC(atomicMin, unsigned int, old < val ? old : val)
TINYCONV_ATOMIC(atomicMin, long long, old < val ? old : val)
TINYCONV_ATOMIC(atomicMin, unsigned long long, old < val ? old : val)
TINYCONV_ATOMIC(atomicAnd, int, old & val)
TINYCONV_ATOMIC(atomicAnd, unsigned int, old & val)
TINYCONV_ATOMIC(atomicAnd, unsigned long long, old & val)
TINYCONV_ATOMIC(atomicOr, int, old | val)
TINYCONV_ATOMIC(atomicOr, unsigned int, old | val)
TINYCONV_ATOMIC(atomicOr, unsigned long long, old | val)
TINYCONV_ATOMIC(atomicXor, int, old ^ val)
TINYCONV_ATOMIC(atomicXor, unsigned int, old ^ val)
TINYCONV_ATOMIC(atomicXor, unsigned long long, old ^ val)
TINYCONV_ATOMIC(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
TINYCONV_ATOMIC(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef TINYCONV_ATOMIC

#define TINYCONV_ATOMIC_CAS(T)                                \
    inline T atomicCAS(T* address, T compare, T val) {        \
        T old = *address;                                     \
        *address = old == compare ? val : old;                \
        return old;                                           \
    }
TINYCONV_ATOMIC_CAS(int)
TINYCONV_ATOMIC_CAS(unsigned int)
TINYCONV_ATOMIC_CAS(unsigned long long)
#undef TINYCONV_ATOMIC_CAS

// ---- bit casts ----
template <typename To, typename From>
inline To tinyconv_bit_cast(From value) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of different sizes");
    To result;
    __builtin_memcpy(&result, &value, sizeof(To));
    return result;
}
inline float __int_as_float(int x) { return tinyconv_bit_cast<float>(x); }
inline int __float_as_int(float x) { return tinyconv_bit_cast<int>(x); }
inline float __uint_as_float(unsigned int x) { return tinyconv_bit_cast<float>(x); }
inline unsigned int __float_as_uint(float x) { return tinyconv_bit_cast<unsigned int>(x); }
inline double __longlong_as_double(long long x) { return tinyconv_bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return tinyconv_bit_cast<long long>(x); }

// ---- read-only cache load ----
template <typename T>
inline T __ldg(const T* address) { return *address; }

// ---- CUDA's max/min overloads (mixed signed/unsigned pairs promote to unsigned, as in CUDA) ----
#define TINYCONV_MAX_MIN(R, A, B)                                          \
    inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }          \
    inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }
TINYCONV_MAX_MIN(int, int, int)
TINYCONV_MAX_MIN(unsigned int, unsigned int, unsigned int)
TINYCONV_MAX_MIN(unsigned int, int, unsigned int)
TINYCONV_MAX_MIN(unsigned int, unsigned int, int)
TINYCONV_MAX_MIN(long, long, long)
TINYCONV_MAX_MIN(unsigned long, unsigned long, unsigned long)
TINYCONV_MAX_MIN(unsigned long, long, unsigned long)
TINYCONV_MAX_MIN(unsigned long, unsigned long, long)
TINYCONV_MAX_MIN(long long, long long, long long)
TINYCONV_MAX_MIN(unsigned long long, unsigned long long, unsigned long long)
TINYCONV_MAX_MIN(unsigned long long, long long, unsigned long long)
TINYCONV_MAX_MIN(unsigned long long, unsigned long long, long long)
TINYCONV_MAX_MIN(float, float, float)
TINYCONV_MAX_MIN(double, double, double)
TINYCONV_MAX_MIN(double, float, double)
TINYCONV_MAX_MIN(double, double, float)
#undef TINYCONV_MAX_MIN

// ---- device math that <math.h> lacks: CUDA's reciprocal square roots and fast intrinsics ----
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
