// Shared by every kernel file: the grid-stride loop, index arithmetic of NCHW planes and of
// convolution/pooling windows, and the constant -inf, which NVRTC cannot take from a header.
//
// The Python loader pastes this file over the #include line, so each .cu reaches the compiler
// (NVRTC, or the host compiler of the CPU emulation) as one self-contained source: no libc or
// CUDA headers, only builtins both provide (min/max, the bit casts).
//
// Kernel files stamp each kernel once per float type, as DEFINE_<KERNEL>(T, SUFFIX) expanded for
// (float, f32) and (double, f64): the emulator and cupy.RawModule both look kernels up by their
// extern "C" names, which templates do not have. Inside those macro bodies comments are /* */,
// since a // comment would swallow every spliced line after it.

// Visits every index in [0, total) exactly once over the whole grid, whatever its size: the
// launcher may cap the grid, and each thread then takes every (gridDim.x * blockDim.x)-th index.
// Indices are 64-bit because N*C*H*W (times the taps, for im2col) can pass 2^31.
#define GRID_STRIDE_LOOP(index, total)                                                    \
    for (long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;             \
         index < (long long)(total); index += (long long)blockDim.x * gridDim.x)

// floor(a / b) for b > 0 and a of either sign (C++ division truncates toward zero).
__device__ inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }

// A flat row-major index into (..., rows, cols) split into the flat index of its (rows, cols)
// plane and the position inside it: for an NCHW array, plane = n*C + c.
struct PlanePoint {
    long long plane;
    int row;
    int col;
};

__device__ inline PlanePoint locate(long long index, int rows, int cols)
{
    PlanePoint p;
    const long long plane_size = (long long)rows * cols;
    p.plane = index / plane_size;
    const int rest = (int)(index - p.plane * plane_size);
    p.row = rest / cols;
    p.col = rest - p.row * cols;
    return p;
}

// Along one axis, a window at output position o with tap offset `offset` (= tap * dilation)
// reads input position o*stride - pad + offset.
__device__ inline int window_input(int o, int offset, int stride, int pad)
{
    return o * stride - pad + offset;
}

// The inverse: the output position whose tap at `offset` reads input position q, or -1 when
// that tap of no window lands on q.
__device__ inline int window_output(int q, int offset, int stride, int pad, int out_size)
{
    const int shifted = q + pad - offset;
    if (shifted < 0 || shifted % stride != 0) return -1;
    const int o = shifted / stride;
    return o < out_size ? o : -1;
}

// The outputs in [*first, *last) are those whose tap at `offset` lands inside an input axis of
// in_size: 0 <= o*stride - pad + offset < in_size (empty when *first == *last).
__device__ inline void tap_range(int offset, int pad, int stride, int in_size, int out_size,
                                 int* first, int* last)
{
    *first = min(max(-floor_div(offset - pad, stride), 0), out_size);
    *last = max(min(-floor_div(offset - pad - in_size, stride), out_size), *first);
}

// Pooling windows [o*stride - pad, o*stride - pad + kernel) that contain input position q are
// those of the outputs in [*first, *last) (empty when *first >= *last).
__device__ inline void windows_containing(int q, int kernel, int stride, int pad, int out_size,
                                          int* first, int* last)
{
    *first = max(floor_div(q + pad - kernel, stride) + 1, 0);
    *last = min((q + pad) / stride + 1, out_size);
}

// A Winograd tile (kernels/cuda/winograd*.cu): the one of flat index `index` over (N, C, th, tw),
// its image-and-channel plane, tile row and column, and its column c*N*th*tw + (n*th + ty)*tw + tx
// in the transformed layout (rows of one tile position xi, channel by channel).
struct Tile {
    long long plane;
    int ty;
    int tx;
    long long column;
};

__device__ inline Tile locate_tile(long long index, int channels, int n_img, int th, int tw)
{
    const PlanePoint p = locate(index, th, tw);
    Tile t;
    t.plane = p.plane;
    t.ty = p.row;
    t.tx = p.col;
    const long long n = p.plane / channels;
    const long long c = p.plane - n * channels;
    t.column = c * n_img * th * tw + (n * th + t.ty) * tw + t.tx;
    return t;
}

// A tile's window of an (h, w) plane, rows from r0 and columns from c0: loaded with zeros
// outside the plane, stored only where inside it.
template <int ROWS, int COLS, typename T>
__device__ inline void load_window(const T* plane, int h, int w, int r0, int c0, T (&out)[ROWS][COLS])
{
    for (int i = 0; i < ROWS; ++i) {
        for (int j = 0; j < COLS; ++j) {
            const int r = r0 + i, c = c0 + j;
            out[i][j] = (r >= 0 && r < h && c >= 0 && c < w) ? plane[r * w + c] : T(0);
        }
    }
}

template <int ROWS, int COLS, typename T>
__device__ inline void store_window(T* plane, int h, int w, int r0, int c0, const T (&tile)[ROWS][COLS])
{
    for (int i = 0; i < ROWS; ++i) {
        for (int j = 0; j < COLS; ++j) {
            const int r = r0 + i, c = c0 + j;
            if (r < h && c < w) plane[r * w + c] = tile[i][j];
        }
    }
}

// -inf; NVRTC rejects INFINITY and there is no <cmath> to take it from.
template <typename T> __device__ inline T minus_infinity();
template <> __device__ inline float minus_infinity<float>()
{
    return __int_as_float((int)0xff800000u);
}
template <> __device__ inline double minus_infinity<double>()
{
    return __longlong_as_double((long long)0xfff0000000000000ull);
}
