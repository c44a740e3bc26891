// im2col and its adjoint col2im: the data movement around conv2d's GEMM (cuBLAS via cupy.matmul).
//
// Layout (NCHW input; rows C*kh*kw, columns N*oh*pitch), zero padding:
//
//   col[(c*kh + i)*kw + j, (n*oh + y)*pitch + z] = x[n, c, y*sh - ph + i*dh, z*sw - pw + j*dw]
//
// for z < ow. `pitch` is ow, or, for the polyphase layout of strided convs (im2col_phases in
// kernels/cpu/im2col.py), ow + (kw - 1) / sw: the columns z >= ow are dummies, which im2col fills
// by the same formula (finite) and col2im ignores.
#include "common.cuh"

// im2col: unfold x (N, C, H, W) into col (C*kh*kw, N*oh*pitch), every entry written: the formula
// above, or 0 where its x index falls outside x. One thread per col entry in col's memory order,
// so neighbouring threads write neighbouring addresses.
#define DEFINE_IM2COL(T, SUFFIX)                                                                   \
extern "C" __global__ void im2col_##SUFFIX(                                                        \
    const T* x, T* col, int n, int c, int h, int w,                                                \
    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow, int pitch)     \
{                                                                                                  \
    const long long columns = (long long)n * oh * pitch;                                           \
    GRID_STRIDE_LOOP(index, columns * c * kh * kw) {                                               \
        const long long row = index / columns;                                                     \
        const PlanePoint tap = locate(row, kh, kw);                      /* (c, i, j) */           \
        const PlanePoint out = locate(index - row * columns, oh, pitch); /* (n, y, z) */           \
        const int hi = window_input(out.row, tap.row * dh, sh, ph);                                \
        const int wi = window_input(out.col, tap.col * dw, sw, pw);                                \
        const bool inside = 0 <= hi && hi < h && 0 <= wi && wi < w;                                \
        col[index] = inside ? x[((out.plane * c + tap.plane) * h + hi) * w + wi] : T(0);           \
    }                                                                                              \
}

DEFINE_IM2COL(float, f32)
DEFINE_IM2COL(double, f64)

// col2im: fold col (C*kh*kw, N*oh*pitch) into x_grad (N, C, H, W), overwritten. The adjoint of
// im2col on the real columns: each pixel gets the sum of every col entry im2col copied from it,
// 0 if none:
//
//   x_grad[n, c, h, w] = sum of col[(c*kh + i)*kw + j, (n*oh + y)*pitch + z], z < ow,
//                        over all (i, j, y, z) with h = y*sh - ph + i*dh, w = z*sw - pw + j*dw
//
// Gather form: one thread per x_grad pixel adds, tap by tap in the order (i, j), the one col
// entry (if any) through which that tap read the pixel. No thread writes another's pixel, so
// there are no atomics, and the additions are the CPU kernel's, in its order.
#define DEFINE_COL2IM(T, SUFFIX)                                                                   \
extern "C" __global__ void col2im_##SUFFIX(                                                        \
    const T* col, T* x_grad, int n, int c, int h, int w,                                           \
    int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int oh, int ow, int pitch)     \
{                                                                                                  \
    const long long columns = (long long)n * oh * pitch;                                           \
    GRID_STRIDE_LOOP(index, (long long)n * c * h * w) {                                            \
        const PlanePoint pixel = locate(index, h, w);                                              \
        const long long image = pixel.plane / c;                                                   \
        const long long channel = pixel.plane - image * c;                                         \
        T sum = T(0);                                                                              \
        for (int i = 0; i < kh; ++i) {                                                             \
            const int y = window_output(pixel.row, i * dh, sh, ph, oh);                            \
            if (y < 0) continue;                                                                   \
            for (int j = 0; j < kw; ++j) {                                                         \
                const int z = window_output(pixel.col, j * dw, sw, pw, ow);                        \
                if (z < 0) continue;                                                               \
                sum += col[((channel * kh + i) * kw + j) * columns + (image * oh + y) * pitch + z]; \
            }                                                                                      \
        }                                                                                          \
        x_grad[index] = sum;                                                                       \
    }                                                                                              \
}

DEFINE_COL2IM(float, f32)
DEFINE_COL2IM(double, f64)
