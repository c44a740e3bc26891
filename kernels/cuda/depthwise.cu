// Depthwise convolution (groups == C_in) as direct kernels, without im2col.
//
// Output channel o reads input channel o / m, where m = C_out / C_in is the channel multiplier;
// weights are (C_in*m, 1, kh, kw) and padding is zero:
//
//   y[n, o, y_, z] = sum_{i,j} w[o, 0, i, j] * x[n, o / m, y_*sh - ph + i*dh, z*sw - pw + j*dw]
#include "common.cuh"

// depthwise_forward: y (N, C*m, oh, ow), overwritten, = the formula above. One thread per output
// sums the taps that land inside x in the order (i, j); the CPU kernel also adds w * 0 for the
// taps on padding, which changes no finite sum.
#define DEFINE_DEPTHWISE_FORWARD(T, SUFFIX)                                                        \
extern "C" __global__ void depthwise_forward_##SUFFIX(                                             \
    const T* x, const T* weight, T* y, int n, int c_in, int h, int w, int c_out, int kh, int kw,   \
    int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow)                                \
{                                                                                                  \
    const int m = c_out / c_in;                                                                    \
    GRID_STRIDE_LOOP(index, (long long)n * c_out * oh * ow) {                                      \
        const PlanePoint out = locate(index, oh, ow);                                              \
        const long long image = out.plane / c_out;                                                 \
        const int o = (int)(out.plane - image * c_out);                                            \
        const T* plane = x + (image * c_in + o / m) * h * w;                                       \
        const T* taps = weight + (long long)o * kh * kw;                                           \
        T sum = T(0);                                                                              \
        for (int i = 0; i < kh; ++i) {                                                             \
            const int hi = window_input(out.row, i * dh, sh, ph);                                  \
            if (hi < 0 || hi >= h) continue;                                                       \
            for (int j = 0; j < kw; ++j) {                                                         \
                const int wi = window_input(out.col, j * dw, sw, pw);                              \
                if (wi < 0 || wi >= w) continue;                                                   \
                sum += taps[i * kw + j] * plane[hi * w + wi];                                      \
            }                                                                                      \
        }                                                                                          \
        y[index] = sum;                                                                            \
    }                                                                                              \
}

DEFINE_DEPTHWISE_FORWARD(float, f32)
DEFINE_DEPTHWISE_FORWARD(double, f64)

// depthwise_backward_input: gx (N, C, H, W), overwritten, = dL/dx given gy = dL/dy
// (N, C*m, oh, ow):
//
//   gx[n, c, h, w_] = sum over k < m and (i, j, y_, z) with h = y_*sh - ph + i*dh,
//                     w_ = z*sw - pw + j*dw of w[c*m + k, 0, i, j] * gy[n, c*m + k, y_, z]
//
// Gather form: one thread per gx pixel collects the windows covering it in the order (k, i, j),
// the CPU kernel's order; no atomics, deterministic.
#define DEFINE_DEPTHWISE_BACKWARD_INPUT(T, SUFFIX)                                                 \
extern "C" __global__ void depthwise_backward_input_##SUFFIX(                                      \
    const T* gy, const T* weight, T* gx, int n, int c_in, int h, int w, int c_out, int kh, int kw, \
    int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow)                                \
{                                                                                                  \
    const int m = c_out / c_in;                                                                    \
    GRID_STRIDE_LOOP(index, (long long)n * c_in * h * w) {                                         \
        const PlanePoint pixel = locate(index, h, w);                                              \
        const long long image = pixel.plane / c_in;                                                \
        const int c = (int)(pixel.plane - image * c_in);                                           \
        T sum = T(0);                                                                              \
        for (int o = c * m; o < (c + 1) * m; ++o) {                                                \
            const T* grads = gy + (image * c_out + o) * oh * ow;                                   \
            const T* taps = weight + (long long)o * kh * kw;                                       \
            for (int i = 0; i < kh; ++i) {                                                         \
                const int y_ = window_output(pixel.row, i * dh, sh, ph, oh);                       \
                if (y_ < 0) continue;                                                              \
                for (int j = 0; j < kw; ++j) {                                                     \
                    const int z = window_output(pixel.col, j * dw, sw, pw, ow);                    \
                    if (z < 0) continue;                                                           \
                    sum += taps[i * kw + j] * grads[y_ * ow + z];                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        gx[index] = sum;                                                                           \
    }                                                                                              \
}

DEFINE_DEPTHWISE_BACKWARD_INPUT(float, f32)
DEFINE_DEPTHWISE_BACKWARD_INPUT(double, f64)

// depthwise_backward_weight: gw (C*m, 1, kh, kw), overwritten, = dL/dw given gy (N, C*m, oh, ow):
//
//   gw[o, 0, i, j] = sum_{n, y_, z} gy[n, o, y_, z]
//                    * x[n, o / m, y_*sh - ph + i*dh, z*sw - pw + j*dw]
//
// One thread per weight, so the sum has one fixed order (deterministic, no atomics). As on the
// CPU, each image's sum is taken in T and the per-image sums in double.
#define DEFINE_DEPTHWISE_BACKWARD_WEIGHT(T, SUFFIX)                                                \
extern "C" __global__ void depthwise_backward_weight_##SUFFIX(                                     \
    const T* gy, const T* x, T* gw, int n, int c_in, int h, int w, int c_out, int kh, int kw,      \
    int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow)                                \
{                                                                                                  \
    const int m = c_out / c_in;                                                                    \
    GRID_STRIDE_LOOP(index, (long long)c_out * kh * kw) {                                          \
        const PlanePoint tap = locate(index, kh, kw);                                              \
        const int o = (int)tap.plane;                                                              \
        int y_first, y_last, z_first, z_last;                                                      \
        tap_range(tap.row * dh, ph, sh, h, oh, &y_first, &y_last);                                 \
        tap_range(tap.col * dw, pw, sw, w, ow, &z_first, &z_last);                                 \
        double total = 0.0;                                                                        \
        for (long long image = 0; image < n; ++image) {                                            \
            const T* grads = gy + (image * c_out + o) * oh * ow;                                   \
            const T* plane = x + (image * c_in + o / m) * h * w;                                   \
            T sum = T(0);                                                                          \
            for (int y_ = y_first; y_ < y_last; ++y_) {                                            \
                const T* row = plane + window_input(y_, tap.row * dh, sh, ph) * w;                 \
                for (int z = z_first; z < z_last; ++z) {                                           \
                    sum += grads[y_ * ow + z] * row[window_input(z, tap.col * dw, sw, pw)];        \
                }                                                                                  \
            }                                                                                      \
            total += sum;                                                                          \
        }                                                                                          \
        gw[index] = (T)total;                                                                      \
    }                                                                                              \
}

DEFINE_DEPTHWISE_BACKWARD_WEIGHT(float, f32)
DEFINE_DEPTHWISE_BACKWARD_WEIGHT(double, f64)
