// Elementwise kernels of the residual block: the fused add + ReLU and ReLU's backward.
//
// They take flat arrays of `size` elements (any shape, C-contiguous), one thread per element.
// NaN propagates as in np.maximum: relu(NaN) = NaN, because NaN < 0 is false.
#include "common.cuh"

// add_relu: out = max(a + b, 0) elementwise; out may be a or b.
#define DEFINE_ADD_RELU(T, SUFFIX)                                                                 \
extern "C" __global__ void add_relu_##SUFFIX(const T* a, const T* b, T* out, long long size)       \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, size) {                                                                \
        const T s = a[index] + b[index];                                                           \
        out[index] = s < T(0) ? T(0) : s;                                                          \
    }                                                                                              \
}

DEFINE_ADD_RELU(float, f32)
DEFINE_ADD_RELU(double, f64)

// relu_backward: gx = gy where y > 0 else 0, y being the ReLU's output; gx may be gy.
#define DEFINE_RELU_BACKWARD(T, SUFFIX)                                                            \
extern "C" __global__ void relu_backward_##SUFFIX(const T* gy, const T* y, T* gx, long long size)  \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, size) {                                                                \
        gx[index] = y[index] > T(0) ? gy[index] : T(0);                                            \
    }                                                                                              \
}

DEFINE_RELU_BACKWARD(float, f32)
DEFINE_RELU_BACKWARD(double, f64)
