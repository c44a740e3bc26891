// Per-channel passes of batch normalisation over x viewed as (N, C, L), L = H*W (1 for (N, C)).
//
// The forward is two passes (statistics, then one affine write), the backward likewise. The
// statistics and gradient sums are float64 arrays and are summed in double, so float32 batches
// keep accurate statistics. A sum is owned by one thread per channel: a fixed summation order
// (deterministic, no atomics or shared memory), at the price of only C threads in those passes.
// Batch norm fused with a ReLU: the affine write clamps at zero (relu = 1) and the backward gates
// gy by the op's output relu_y > 0 (relu = 0: plain batch norm, relu_y is not read).
#include "common.cuh"

// channel_mean_var: mean[c] = average of x[:, c, :], var[c] = average of (x[:, c, :] - mean[c])^2
// (biased); one pass over sums shifted by the channel's first value (see the CPU kernel).
#define DEFINE_CHANNEL_MEAN_VAR(T, SUFFIX)                                                         \
extern "C" __global__ void channel_mean_var_##SUFFIX(                                              \
    const T* x, double* mean, double* var, int n, int c, int length)                               \
{                                                                                                  \
    const double count = (double)n * length;                                                       \
    GRID_STRIDE_LOOP(channel, c) {                                                                 \
        const double shift = x[(long long)channel * length];                                       \
        double total = 0.0;                                                                        \
        double squares = 0.0;                                                                      \
        for (long long image = 0; image < n; ++image) {                                            \
            const T* row = x + (image * c + channel) * length;                                     \
            for (int k = 0; k < length; ++k) {                                                     \
                const double d = row[k] - shift;                                                   \
                total += d;                                                                        \
                squares += d * d;                                                                  \
            }                                                                                      \
        }                                                                                          \
        const double average = total / count;                                                      \
        mean[channel] = shift + average;                                                           \
        var[channel] = fmax(squares / count - average * average, 0.0);                             \
    }                                                                                              \
}

DEFINE_CHANNEL_MEAN_VAR(float, f32)
DEFINE_CHANNEL_MEAN_VAR(double, f64)

// channel_affine: y[n, c, :] = x[n, c, :] * scale[c] + shift[c], clamped at 0 when relu (NaN stays
// NaN), one thread per element.
#define DEFINE_CHANNEL_AFFINE(T, SUFFIX)                                                           \
extern "C" __global__ void channel_affine_##SUFFIX(                                                \
    const T* x, const T* scale, const T* shift, int relu, T* y, int n, int c, int length)          \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * length) {                                           \
        const int channel = (int)(index / length % c);                                             \
        const T v = x[index] * scale[channel] + shift[channel];                                    \
        y[index] = relu && v < (T)0 ? (T)0 : v;                                                    \
    }                                                                                              \
}

DEFINE_CHANNEL_AFFINE(float, f32)
DEFINE_CHANNEL_AFFINE(double, f64)

// channel_grad_sums: sum_gy[c] = sum of g[:, c, :], sum_gy_x[c] = sum of g[:, c, :] * x[:, c, :],
// g = gy, gated by relu_y > 0 when relu. Products are taken in double too: exact for float32
// inputs.
#define DEFINE_CHANNEL_GRAD_SUMS(T, SUFFIX)                                                        \
extern "C" __global__ void channel_grad_sums_##SUFFIX(                                             \
    const T* gy, const T* x, const T* relu_y, int relu, double* sum_gy, double* sum_gy_x,          \
    int n, int c, int length)                                                                      \
{                                                                                                  \
    GRID_STRIDE_LOOP(channel, c) {                                                                 \
        double s = 0.0;                                                                            \
        double sx = 0.0;                                                                           \
        for (long long image = 0; image < n; ++image) {                                            \
            const long long start = (image * c + channel) * length;                                \
            for (int k = 0; k < length; ++k) {                                                     \
                const bool blocked = relu && !(relu_y[start + k] > (T)0);                          \
                const double g = blocked ? 0.0 : (double)gy[start + k];                            \
                s += g;                                                                            \
                sx += g * x[start + k];                                                            \
            }                                                                                      \
        }                                                                                          \
        sum_gy[channel] = s;                                                                       \
        sum_gy_x[channel] = sx;                                                                    \
    }                                                                                              \
}

DEFINE_CHANNEL_GRAD_SUMS(float, f32)
DEFINE_CHANNEL_GRAD_SUMS(double, f64)

// channel_affine2: gx[n, c, :] = a[c] * g[n, c, :] + b[c] * x[n, c, :] + k[c], g as in
// channel_grad_sums: batch norm's input gradient, whose three terms are per-channel constants once
// the sums are known.
#define DEFINE_CHANNEL_AFFINE2(T, SUFFIX)                                                          \
extern "C" __global__ void channel_affine2_##SUFFIX(                                               \
    const T* gy, const T* x, const T* relu_y, int relu, const T* a, const T* b, const T* k, T* gx, \
    int n, int c, int length)                                                                      \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * length) {                                           \
        const int channel = (int)(index / length % c);                                             \
        const T g = relu && !(relu_y[index] > (T)0) ? (T)0 : gy[index];                            \
        gx[index] = a[channel] * g + b[channel] * x[index] + k[channel];                           \
    }                                                                                              \
}

DEFINE_CHANNEL_AFFINE2(float, f32)
DEFINE_CHANNEL_AFFINE2(double, f64)
