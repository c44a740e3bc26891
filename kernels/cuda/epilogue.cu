// A convolution's epilogue, twin of kernels/cpu/epilogue.py: y[n, c, :] += bias[c], then
// += residual[n, c, :] when has_residual, then max(y, 0) if relu, in place on y (N, C, L); one
// thread per element. NaN propagates as in np.maximum, because NaN < 0 is false.
#include "common.cuh"

#define DEFINE_CONV_EPILOGUE(T, SUFFIX)                                                            \
extern "C" __global__ void conv_epilogue_##SUFFIX(T* y, const T* bias, const T* residual,          \
                                                  int has_residual, int relu, int channels,        \
                                                  long long length, long long size)                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, size) {                                                                \
        T s = y[index] + bias[(index / length) % channels];                                        \
        if (has_residual) s += residual[index];                                                    \
        y[index] = relu && s < T(0) ? T(0) : s;                                                    \
    }                                                                                              \
}

DEFINE_CONV_EPILOGUE(float, f32)
DEFINE_CONV_EPILOGUE(double, f64)
