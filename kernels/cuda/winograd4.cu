// The tile transforms of Winograd's F(4x4, 3x3), twins of kernels/cpu/winograd4.py (the matrices
// and the layout are explained there). One thread per tile (see Tile in common.cuh), whose
// column of the (36, L) array of transformed tiles is `t.column`; the rows are `row_length` = L
// apart. `tw` here is the layout's pitch: a dummy tile ending each tile row is a tile whose
// window lies past the plane's edge. Each 1-D transform below is the CPU's, operation for
// operation, so both compute the same bits.
#include "common.cuh"

// out[k * stride] = (B^T (d0, ..., d5))[k]
template <typename T>
__device__ inline void winograd4_bt(T d0, T d1, T d2, T d3, T d4, T d5, T* out, int stride)
{
    const T a = d4 - T(4) * d2, b = d3 - T(4) * d1;
    const T c = d4 - d2, e = T(2) * (d3 - d1);
    out[0] = T(4) * d0 - T(5) * d2 + d4;
    out[stride] = a + b;
    out[2 * stride] = a - b;
    out[3 * stride] = c + e;
    out[4 * stride] = c - e;
    out[5 * stride] = T(4) * d1 - T(5) * d3 + d5;
}

// out[k * stride] = (A^T (e0, ..., e5))[k]
template <typename T>
__device__ inline void winograd4_at(T e0, T e1, T e2, T e3, T e4, T e5, T* out, int stride)
{
    const T s12 = e1 + e2, d12 = e1 - e2, s34 = e3 + e4, d34 = e3 - e4;
    out[0] = e0 + s12 + s34;
    out[stride] = d12 + T(2) * d34;
    out[2 * stride] = s12 + T(4) * s34;
    out[3 * stride] = d12 + T(8) * d34 + e5;
}

// out[k * stride] = (A (g0, ..., g3))[k], the adjoint of winograd4_at
template <typename T>
__device__ inline void winograd4_a(T g0, T g1, T g2, T g3, T* out, int stride)
{
    const T even = g0 + g2, odd = g1 + g3;
    const T even4 = g0 + T(4) * g2, odd4 = T(2) * g1 + T(8) * g3;
    out[0] = g0;
    out[stride] = even + odd;
    out[2 * stride] = even - odd;
    out[3 * stride] = even4 + odd4;
    out[4 * stride] = even4 - odd4;
    out[5 * stride] = g3;
}

// winograd4_input: v[xi, column] = (B^T d B)[xi], d the tile's 6x6 input window (zero outside x).
#define DEFINE_WINOGRAD4_INPUT(T, SUFFIX)                                                          \
extern "C" __global__ void winograd4_input_##SUFFIX(                                               \
    const T* x, T* v, int n_img, int channels, int h, int w, long long row_length,                 \
    int ph, int pw, int th, int tw)                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T d[6][6];                                                                                 \
        load_window(x + t.plane * h * w, h, w, 4 * t.ty - ph, 4 * t.tx - pw, d);                   \
        T bt_d[6][6]; /* B^T d, a column at a time */                                              \
        for (int q = 0; q < 6; ++q)                                                                \
            winograd4_bt(d[0][q], d[1][q], d[2][q], d[3][q], d[4][q], d[5][q], &bt_d[0][q], 6);    \
        for (int i = 0; i < 6; ++i) { /* each row of B^T d times B */                              \
            T row[6];                                                                              \
            winograd4_bt(bt_d[i][0], bt_d[i][1], bt_d[i][2], bt_d[i][3], bt_d[i][4], bt_d[i][5],   \
                         row, 1);                                                                  \
            for (int j = 0; j < 6; ++j) v[(long long)(6 * i + j) * row_length + t.column] = row[j]; \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_WINOGRAD4_INPUT(float, f32)
DEFINE_WINOGRAD4_INPUT(double, f64)

// winograd4_output: the tile's 4x4 outputs A^T M A, those inside (oh, ow) written to y.
#define DEFINE_WINOGRAD4_OUTPUT(T, SUFFIX)                                                         \
extern "C" __global__ void winograd4_output_##SUFFIX(                                              \
    const T* m, T* y, int n_img, int channels, int oh, int ow, long long row_length,               \
    int th, int tw)                                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T e[6][6];                                                                                 \
        for (int xi = 0; xi < 36; ++xi) e[xi / 6][xi % 6] = m[xi * row_length + t.column];         \
        T at_m[4][6]; /* A^T M, a column at a time */                                              \
        for (int j = 0; j < 6; ++j)                                                                \
            winograd4_at(e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j], &at_m[0][j], 6);    \
        T out[4][4];                                                                               \
        for (int a = 0; a < 4; ++a) /* each row of A^T M times A */                                \
            winograd4_at(at_m[a][0], at_m[a][1], at_m[a][2], at_m[a][3], at_m[a][4], at_m[a][5],   \
                         out[a], 1);                                                               \
        store_window(y + t.plane * oh * ow, oh, ow, 4 * t.ty, 4 * t.tx, out);                      \
    }                                                                                              \
}

DEFINE_WINOGRAD4_OUTPUT(float, f32)
DEFINE_WINOGRAD4_OUTPUT(double, f64)

// winograd4_output_adjoint: dm[xi, column] = (A dY A^T)[xi], dY the tile's 4x4 of gy (zero
// outside it).
#define DEFINE_WINOGRAD4_OUTPUT_ADJOINT(T, SUFFIX)                                                 \
extern "C" __global__ void winograd4_output_adjoint_##SUFFIX(                                      \
    const T* gy, T* dm, int n_img, int channels, int oh, int ow, long long row_length,             \
    int th, int tw)                                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T g[4][4];                                                                                 \
        load_window(gy + t.plane * oh * ow, oh, ow, 4 * t.ty, 4 * t.tx, g);                        \
        T a_dy[6][4]; /* A dY, a column at a time */                                               \
        for (int b = 0; b < 4; ++b) winograd4_a(g[0][b], g[1][b], g[2][b], g[3][b], &a_dy[0][b], 4); \
        for (int i = 0; i < 6; ++i) { /* each row of A dY times A^T */                             \
            T row[6];                                                                              \
            winograd4_a(a_dy[i][0], a_dy[i][1], a_dy[i][2], a_dy[i][3], row, 1);                   \
            for (int j = 0; j < 6; ++j) dm[(long long)(6 * i + j) * row_length + t.column] = row[j]; \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_WINOGRAD4_OUTPUT_ADJOINT(float, f32)
DEFINE_WINOGRAD4_OUTPUT_ADJOINT(double, f64)
