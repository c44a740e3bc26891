// Max and average pooling over NCHW planes, with PyTorch's window and divisor semantics.
//
// Output (y, z) pools the window rows [y*sh - ph, y*sh - ph + kh) and columns likewise, clipped
// to the input; the caller computes oh, ow (floor or ceil mode), so a last window may run past
// the padded input.
#include "common.cuh"

// Output o's pooling window along one axis: the part inside the input, [*lo, *hi), returned
// with this axis' factor of the average's divisor, as in PyTorch: the window's length inside the
// padded input if count_include_pad (a ceil-mode window may run past it), else inside the input.
__device__ inline int avg_pool_axis(int o, int kernel, int stride, int pad, int size,
                                    int count_include_pad, int* lo, int* hi)
{
    const int start = window_input(o, 0, stride, pad);
    *lo = max(start, 0);
    *hi = min(start + kernel, size);
    return count_include_pad ? min(start + kernel, size + pad) - start : *hi - *lo;
}

// max_pool_forward: y[n, c, oy, oz] = max of x[n, c] (N, C, H, W) over the window of (oy, oz);
// argmax (N, C, oh, ow) int32 = its flat index h*W + w in the plane. Padding never wins; the
// first maximum in row-major window order wins ties; NaN propagates (the last NaN in the window
// wins), as in PyTorch. A window with no input pixel gives -inf and index -1. One thread per
// output, visiting its window in row-major order.
#define DEFINE_MAX_POOL_FORWARD(T, SUFFIX)                                                         \
extern "C" __global__ void max_pool_forward_##SUFFIX(                                              \
    const T* x, T* y, int* argmax, int n, int c, int h, int w, int oh, int ow,                     \
    int kh, int kw, int sh, int sw, int ph, int pw)                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * oh * ow) {                                          \
        const PlanePoint out = locate(index, oh, ow);                                              \
        const T* plane = x + out.plane * h * w;                                                    \
        const int top = window_input(out.row, 0, sh, ph);                                          \
        const int left = window_input(out.col, 0, sw, pw);                                         \
        T best = minus_infinity<T>();                                                              \
        int best_at = -1;                                                                          \
        for (int r = max(top, 0); r < min(top + kh, h); ++r) {                                     \
            for (int q = max(left, 0); q < min(left + kw, w); ++q) {                               \
                const T v = plane[r * w + q];                                                      \
                /* v != v: NaN replaces whatever is there; best_at < 0: the first pixel is         \
                   taken even when it is -inf, so the index is always a real pixel. */             \
                if (v > best || v != v || best_at < 0) {                                           \
                    best = v;                                                                      \
                    best_at = r * w + q;                                                           \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        y[index] = best;                                                                           \
        argmax[index] = best_at;                                                                   \
    }                                                                                              \
}

DEFINE_MAX_POOL_FORWARD(float, f32)
DEFINE_MAX_POOL_FORWARD(double, f64)

// max_pool_backward: gx (planes, in_size), overwritten, = 0 plus each gy[plane, k] (planes,
// out_size) added at position argmax[plane, k] of its plane; -1 is skipped. Without the window
// geometry the pixels a gradient may reach are unknown, so one thread owns a whole plane:
// overlapping windows then accumulate without atomics, in output order like the CPU kernel.
#define DEFINE_MAX_POOL_BACKWARD(T, SUFFIX)                                                        \
extern "C" __global__ void max_pool_backward_##SUFFIX(                                             \
    const T* gy, const int* argmax, T* gx, long long planes, int in_size, int out_size)            \
{                                                                                                  \
    GRID_STRIDE_LOOP(plane, planes) {                                                              \
        T* dst = gx + plane * in_size;                                                             \
        const T* grads = gy + plane * out_size;                                                    \
        const int* at = argmax + plane * out_size;                                                 \
        for (int k = 0; k < in_size; ++k) dst[k] = T(0);                                           \
        for (int k = 0; k < out_size; ++k) {                                                       \
            if (at[k] >= 0) dst[at[k]] += grads[k];                                                \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_MAX_POOL_BACKWARD(float, f32)
DEFINE_MAX_POOL_BACKWARD(double, f64)

// avg_pool_forward: y[n, c, oy, oz] = sum of x[n, c] over the clipped window / divisor (see
// avg_pool_axis); y (N, C, oh, ow) is overwritten. One thread per output, summing row-major
// in T as the CPU kernel does.
#define DEFINE_AVG_POOL_FORWARD(T, SUFFIX)                                                         \
extern "C" __global__ void avg_pool_forward_##SUFFIX(                                              \
    const T* x, T* y, int n, int c, int h, int w, int oh, int ow,                                  \
    int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad)                         \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * oh * ow) {                                          \
        const PlanePoint out = locate(index, oh, ow);                                              \
        const T* plane = x + out.plane * h * w;                                                    \
        int h_lo, h_hi, w_lo, w_hi;                                                                \
        const int divisor =                                                                        \
            avg_pool_axis(out.row, kh, sh, ph, h, count_include_pad, &h_lo, &h_hi) *               \
            avg_pool_axis(out.col, kw, sw, pw, w, count_include_pad, &w_lo, &w_hi);                \
        T sum = T(0);                                                                              \
        for (int r = h_lo; r < h_hi; ++r) {                                                        \
            for (int q = w_lo; q < w_hi; ++q) sum += plane[r * w + q];                             \
        }                                                                                          \
        y[index] = sum / T(divisor);                                                               \
    }                                                                                              \
}

DEFINE_AVG_POOL_FORWARD(float, f32)
DEFINE_AVG_POOL_FORWARD(double, f64)

// avg_pool_backward: gx (N, C, H, W), overwritten, = dL/dx of avg_pool_forward given gy: each
// pixel gets gy[n, c, oy, oz] / divisor summed over the windows (oy, oz) that contain it.
// Gather form: one thread per pixel, windows in row-major order, the CPU kernel's additions in
// its order; no atomics.
#define DEFINE_AVG_POOL_BACKWARD(T, SUFFIX)                                                        \
extern "C" __global__ void avg_pool_backward_##SUFFIX(                                             \
    const T* gy, T* gx, int n, int c, int h, int w, int oh, int ow,                                \
    int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad)                         \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n * c * h * w) {                                            \
        const PlanePoint pixel = locate(index, h, w);                                              \
        const T* grads = gy + pixel.plane * oh * ow;                                               \
        int oy_first, oy_last, oz_first, oz_last;                                                  \
        windows_containing(pixel.row, kh, sh, ph, oh, &oy_first, &oy_last);                        \
        windows_containing(pixel.col, kw, sw, pw, ow, &oz_first, &oz_last);                        \
        int lo, hi; /* the windows' extents, not needed here */                                    \
        T sum = T(0);                                                                              \
        for (int oy = oy_first; oy < oy_last; ++oy) {                                              \
            const int rows = avg_pool_axis(oy, kh, sh, ph, h, count_include_pad, &lo, &hi);        \
            for (int oz = oz_first; oz < oz_last; ++oz) {                                          \
                const int cols = avg_pool_axis(oz, kw, sw, pw, w, count_include_pad, &lo, &hi);    \
                sum += grads[oy * ow + oz] / T(rows * cols);                                       \
            }                                                                                      \
        }                                                                                          \
        gx[index] = sum;                                                                           \
    }                                                                                              \
}

DEFINE_AVG_POOL_BACKWARD(float, f32)
DEFINE_AVG_POOL_BACKWARD(double, f64)
