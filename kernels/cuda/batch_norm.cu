// Per-channel passes of batch normalisation over x viewed as (N, C, L), L = H*W (1 for (N, C)).
//
// The forward is two passes (statistics, then one affine write), the backward likewise. The
// statistics and gradient sums are float64 arrays and are summed in double, so float32 batches
// keep accurate statistics. A sum is owned by one thread per channel: a fixed summation order
// (deterministic, no atomics or shared memory), at the price of only C threads in those passes.
#include "common.cuh"

// channel_mean_var: mean[c] = average of x[:, c, :], var[c] = average of (x[:, c, :] - mean[c])^2
// (biased); two passes per channel (mean first), as accurate as NumPy's var.
#define DEFINE_CHANNEL_MEAN_VAR(T, SUFFIX)                                                         \
extern "C" __global__ void channel_mean_var_##SUFFIX(                                              \
    const T* x, double* mean, double* var, int n, int c, int length)                               \
{                                                                                                  \
    const double count = (double)n * length;                                                       \
    GRID_STRIDE_LOOP(channel, c) {                                                                 \
        double total = 0.0;                                                                        \
        for (long long image = 0; image < n; ++image) {                                            \
            const T* row = x + (image * c + channel) * length;                                     \
            for (int k = 0; k < length; ++k) total += row[k];                                      \
        }                                                                                          \
        const double average = total / count;                                                      \
        double squares = 0.0;                                                                      \
        for (long long image = 0; image < n; ++image) {                                            \
            const T* row = x + (image * c + channel) * length;                                     \
            for (int k = 0; k < length; ++k) {                                                     \
                const double d = row[k] - average;                                                 \
                squares += d * d;                                                                  \
            }                                                                                      \
        }                                                                                          \
        mean[channel] = average;                                                                   \
        var[channel] = squares / count;                                                            \
    }                                                                                              \
}

DEFINE_CHANNEL_MEAN_VAR(float, f32)
DEFINE_CHANNEL_MEAN_VAR(double, f64)

// channel_affine: y[n, c, :] = x[n, c, :] * scale[c] + shift[c], one thread per element.
#define DEFINE_CHANNEL_AFFINE(T, SUFFIX)                                                           \
extern "C" __global__ void channel_affine_##SUFFIX(                                                \
    const T* x, const T* scale, const T* shift, T* y, int n, int c, int length)                    \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * length) {                                           \
        const int channel = (int)(index / length % c);                                             \
        y[index] = x[index] * scale[channel] + shift[channel];                                     \
    }                                                                                              \
}

DEFINE_CHANNEL_AFFINE(float, f32)
DEFINE_CHANNEL_AFFINE(double, f64)

// channel_grad_sums: sum_gy[c] = sum of gy[:, c, :], sum_gy_x[c] = sum of gy[:, c, :] * x[:, c, :].
// Products are taken in double too: exact for float32 inputs.
#define DEFINE_CHANNEL_GRAD_SUMS(T, SUFFIX)                                                        \
extern "C" __global__ void channel_grad_sums_##SUFFIX(                                             \
    const T* gy, const T* x, double* sum_gy, double* sum_gy_x, int n, int c, int length)           \
{                                                                                                  \
    GRID_STRIDE_LOOP(channel, c) {                                                                 \
        double s = 0.0;                                                                            \
        double sx = 0.0;                                                                           \
        for (long long image = 0; image < n; ++image) {                                            \
            const long long start = (image * c + channel) * length;                                \
            for (int k = 0; k < length; ++k) {                                                     \
                const double g = gy[start + k];                                                    \
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

// channel_affine2: gx[n, c, :] = a[c] * gy[n, c, :] + b[c] * x[n, c, :] + k[c]: batch norm's
// input gradient, whose three terms are per-channel constants once the sums are known.
#define DEFINE_CHANNEL_AFFINE2(T, SUFFIX)                                                          \
extern "C" __global__ void channel_affine2_##SUFFIX(                                               \
    const T* gy, const T* x, const T* a, const T* b, const T* k, T* gx, int n, int c, int length)  \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * length) {                                           \
        const int channel = (int)(index / length % c);                                             \
        gx[index] = a[channel] * gy[index] + b[channel] * x[index] + k[channel];                   \
    }                                                                                              \
}

DEFINE_CHANNEL_AFFINE2(float, f32)
DEFINE_CHANNEL_AFFINE2(double, f64)
