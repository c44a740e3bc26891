// The tile transforms of Winograd's F(2x2, 3x3), twins of kernels/cpu/winograd.py (the matrices
// and the layout are explained there). One thread per tile (see Tile in common.cuh), whose
// column of the (16, L) array of transformed tiles is `t.column`; the rows are `row_length` = L
// apart. `tw` here is the layout's pitch: a dummy tile ending each tile row is a tile whose
// window lies past the plane's edge.
#include "common.cuh"

// winograd_input: v[xi, column] = (B^T d B)[xi], d the tile's 4x4 input window (zero outside x).
#define DEFINE_WINOGRAD_INPUT(T, SUFFIX)                                                           \
extern "C" __global__ void winograd_input_##SUFFIX(                                                \
    const T* x, T* v, int n_img, int channels, int h, int w, long long row_length,                 \
    int ph, int pw, int th, int tw)                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T d[4][4];                                                                                 \
        load_window(x + t.plane * h * w, h, w, 2 * t.ty - ph, 2 * t.tx - pw, d);                   \
        T rows[4][4]; /* B^T d */                                                                  \
        for (int j = 0; j < 4; ++j) {                                                              \
            rows[0][j] = d[0][j] - d[2][j];                                                        \
            rows[1][j] = d[1][j] + d[2][j];                                                        \
            rows[2][j] = d[2][j] - d[1][j];                                                        \
            rows[3][j] = d[1][j] - d[3][j];                                                        \
        }                                                                                          \
        for (int i = 0; i < 4; ++i) { /* (B^T d) B */                                              \
            T* out = v + (long long)(4 * i) * row_length + t.column;                               \
            out[0] = rows[i][0] - rows[i][2];                                                      \
            out[row_length] = rows[i][1] + rows[i][2];                                             \
            out[2 * row_length] = rows[i][2] - rows[i][1];                                         \
            out[3 * row_length] = rows[i][1] - rows[i][3];                                         \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_WINOGRAD_INPUT(float, f32)
DEFINE_WINOGRAD_INPUT(double, f64)

// winograd_output: the tile's 2x2 outputs A^T M A, those inside (oh, ow) written to y.
#define DEFINE_WINOGRAD_OUTPUT(T, SUFFIX)                                                          \
extern "C" __global__ void winograd_output_##SUFFIX(                                               \
    const T* m, T* y, int n_img, int channels, int oh, int ow, long long row_length,               \
    int th, int tw)                                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T e[16];                                                                                   \
        for (int xi = 0; xi < 16; ++xi) e[xi] = m[xi * row_length + t.column];                     \
        T s[4], q[4]; /* A^T M */                                                                  \
        for (int j = 0; j < 4; ++j) {                                                              \
            s[j] = e[j] + e[4 + j] + e[8 + j];                                                     \
            q[j] = e[4 + j] - e[8 + j] - e[12 + j];                                                \
        }                                                                                          \
        const T out[2][2] = {{s[0] + s[1] + s[2], s[1] - s[2] - s[3]},                             \
                             {q[0] + q[1] + q[2], q[1] - q[2] - q[3]}};                            \
        store_window(y + t.plane * oh * ow, oh, ow, 2 * t.ty, 2 * t.tx, out);                      \
    }                                                                                              \
}

DEFINE_WINOGRAD_OUTPUT(float, f32)
DEFINE_WINOGRAD_OUTPUT(double, f64)

// winograd_output_adjoint: dm[xi, column] = (A dY A^T)[xi], dY the tile's 2x2 of gy (zero
// outside it).
#define DEFINE_WINOGRAD_OUTPUT_ADJOINT(T, SUFFIX)                                                  \
extern "C" __global__ void winograd_output_adjoint_##SUFFIX(                                       \
    const T* gy, T* dm, int n_img, int channels, int oh, int ow, long long row_length,             \
    int th, int tw)                                                                                \
{                                                                                                  \
    GRID_STRIDE_LOOP(index, (long long)n_img * channels * th * tw) {                               \
        const Tile t = locate_tile(index, channels, n_img, th, tw);                                \
        T g[2][2];                                                                                 \
        load_window(gy + t.plane * oh * ow, oh, ow, 2 * t.ty, 2 * t.tx, g);                        \
        const T rows[4][2] = {{g[0][0], g[0][1]}, /* A dY, A = [[1,0],[1,1],[1,-1],[0,-1]] */      \
                              {g[0][0] + g[1][0], g[0][1] + g[1][1]},                              \
                              {g[0][0] - g[1][0], g[0][1] - g[1][1]},                              \
                              {-g[1][0], -g[1][1]}};                                               \
        for (int i = 0; i < 4; ++i) { /* (A dY) A^T */                                             \
            T* out = dm + (long long)(4 * i) * row_length + t.column;                              \
            out[0] = rows[i][0];                                                                   \
            out[row_length] = rows[i][0] + rows[i][1];                                             \
            out[2 * row_length] = rows[i][0] - rows[i][1];                                         \
            out[3 * row_length] = -rows[i][1];                                                     \
        }                                                                                          \
    }                                                                                              \
}

DEFINE_WINOGRAD_OUTPUT_ADJOINT(float, f32)
DEFINE_WINOGRAD_OUTPUT_ADJOINT(double, f64)
