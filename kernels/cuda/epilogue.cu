// A convolution's epilogue, twin of kernels/cpu/epilogue.py: y[n, c, :] += bias[c], then
// max(y, 0) if relu, in place on y (N, C, L); one thread per element. NaN propagates as in
// np.maximum, because NaN < 0 is false.
#include "common.cuh"

#define DEFINE_BIAS_RELU(T, SUFFIX)                                                                \
extern "C" __global__ void bias_relu_##SUFFIX(T* y, const T* bias, int relu, int channels,         \
                                              long long length, long long size)                    \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, size) {                                                                \
        const T s = y[index] + bias[(index / length) % channels];                                  \
        y[index] = relu && s < T(0) ? T(0) : s;                                                    \
    }                                                                                              \
}

DEFINE_BIAS_RELU(float, f32)
DEFINE_BIAS_RELU(double, f64)
