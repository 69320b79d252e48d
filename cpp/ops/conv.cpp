// Convolution and pooling on NCHW images: conv2d (im2col + GEMM, or a direct kernel when the
// window holds few values), max and average pooling, adaptive average pooling, constant padding.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "gemm.h"
#include "ops/common.h"
#include "ops/kernels.h"
#include "parallel.h"

namespace tg {

namespace {

using Pair = std::array<int64_t, 2>;

// Strides, paddings, dilations and kernel sizes above this are refused, so that no size below
// overflows int64 (tensor dimensions are far smaller: they are bounded by memory).
constexpr int64_t kMaxWindowValue = int64_t{1} << 31;

std::string pair_str(const Pair& p) { return "(" + std::to_string(p[0]) + ", " + std::to_string(p[1]) + ")"; }
std::string hw_str(int64_t h, int64_t w) { return pair_str({h, w}); }

[[noreturn]] void fail(const Call& c, const std::string& what) {
    throw std::invalid_argument(std::string(c.name()) + ": " + what);
}

// An attribute holding (height, width); the Python functions turn a single int into a pair.
Pair pair_attr(const Call& c, const char* attr) {
    const auto& v = c.integers(attr);
    if (v.size() != 2) fail(c, std::string(attr) + " must be a pair (height, width), got " + std::to_string(v.size()) + " values");
    for (int64_t x : v)
        if (x > kMaxWindowValue || x < -kMaxWindowValue) fail(c, std::string(attr) + " " + std::to_string(x) + " is too large");
    return {v[0], v[1]};
}

void require_4d(const Call& c, const Tensor& x, const char* what, const char* layout) {
    if (x.ndim() != 4)
        fail(c, std::string("expected a 4-d ") + what + " " + layout + ", got shape " + shape_str(x.shape()));
}

// A sliding window over the two last axes: size, stride, zero padding on both sides, dilation.
struct Window {
    Pair k, s, p, d;
    int64_t extent(int i) const { return d[i] * (k[i] - 1) + 1; }  // the span of the dilated kernel
};

Window window_attrs(const Call& c, const char* kernel_attr, bool with_dilation) {
    Window w{pair_attr(c, kernel_attr), pair_attr(c, "stride"), pair_attr(c, "padding"),
             with_dilation ? pair_attr(c, "dilation") : Pair{1, 1}};
    if (w.s[0] < 1 || w.s[1] < 1) fail(c, "stride must be positive, got " + pair_str(w.s));
    if (w.p[0] < 0 || w.p[1] < 0) fail(c, "padding must be non-negative, got " + pair_str(w.p));
    if (w.d[0] < 1 || w.d[1] < 1) fail(c, "dilation must be positive, got " + pair_str(w.d));
    if (w.k[0] < 1 || w.k[1] < 1) fail(c, std::string(kernel_attr) + " must be positive, got " + pair_str(w.k));
    return w;
}

// floor((size + 2 pad - extent) / stride) + 1, or with ceil_mode rounded up, as PyTorch (a window
// may then hang over the end, but must start inside the input or its left padding).
int64_t out_size(int64_t size, int64_t k_extent, int64_t s, int64_t p, bool ceil_mode) {
    const int64_t span = size + 2 * p - k_extent;
    if (span < 0) return 0;
    int64_t n = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (n - 1) * s >= size + p) --n;
    return n;
}

// The output plane of a window over input x (N, C, H, W); ValueError when the dilated kernel is
// larger than the padded input.
Pair window_out(const Call& c, const Tensor& x, const Window& w, bool ceil_mode) {
    const int64_t h = x.dim(2), wd = x.dim(3);
    const int64_t ph = h + 2 * w.p[0], pw = wd + 2 * w.p[1];
    if (w.extent(0) > ph || w.extent(1) > pw) {
        const bool dilated = w.d[0] != 1 || w.d[1] != 1;
        fail(c, "kernel of size " + pair_str(w.k) +
                    (dilated ? " (dilated to " + hw_str(w.extent(0), w.extent(1)) + ")" : std::string()) +
                    " is larger than the padded input of size " + hw_str(ph, pw) + " (input of shape " +
                    shape_str(x.shape()) + ", padding " + pair_str(w.p) + ")");
    }
    return {out_size(h, w.extent(0), w.s[0], w.p[0], ceil_mode), out_size(wd, w.extent(1), w.s[1], w.p[1], ceil_mode)};
}

// ceil(a / b) for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// ---- conv2d geometry ----

struct Conv {
    int64_t n, c, h, w;       // input
    int64_t o, groups, cg, og;  // output channels; channels per group in and out
    Window win;
    int64_t oh, ow;
    int64_t k() const { return cg * win.k[0] * win.k[1]; }  // values per window and group: the GEMM's depth
    int64_t p() const { return oh * ow; }                  // output pixels per image
    int64_t hw() const { return h * w; }
    // A 1x1 window at stride 1 without padding reads the image itself: no im2col needed.
    bool pointwise() const {
        return win.k[0] == 1 && win.k[1] == 1 && win.s[0] == 1 && win.s[1] == 1 && win.p[0] == 0 && win.p[1] == 0;
    }
};

Conv conv_geometry(const Call& c) {
    if (c.in.size() != 2 && c.in.size() != 3)
        fail(c, "expected inputs input, weight and optionally bias, got " + std::to_string(c.in.size()) + " inputs");
    const Tensor &x = c.in[0], &wt = c.in[1];
    require_4d(c, x, "input", "(N, C, H, W)");
    require_4d(c, wt, "weight", "(out_channels, in_channels / groups, kH, kW)");
    const int64_t groups = c.integer("groups");
    if (groups < 1) fail(c, "groups must be positive, got " + std::to_string(groups));
    Conv s;
    s.n = x.dim(0), s.c = x.dim(1), s.h = x.dim(2), s.w = x.dim(3);
    s.o = wt.dim(0), s.groups = groups;
    if (s.c % groups != 0)  // 0 channels split into any number of empty groups, as in PyTorch
        fail(c, "input of shape " + shape_str(x.shape()) + " has " + std::to_string(s.c) +
                    " channels, which groups=" + std::to_string(groups) + " does not divide");
    if (s.o % groups != 0)
        fail(c, "weight of shape " + shape_str(wt.shape()) + " has " + std::to_string(s.o) +
                    " output channels, which groups=" + std::to_string(groups) + " does not divide");
    if (wt.dim(1) * groups != s.c)
        fail(c, "input of shape " + shape_str(x.shape()) + " has " + std::to_string(s.c) + " channels, but weight of shape " +
                    shape_str(wt.shape()) + " with groups=" + std::to_string(groups) + " expects " +
                    std::to_string(wt.dim(1) * groups));
    if (c.in.size() == 3 && c.in[2].shape() != Shape{s.o})
        fail(c, "bias must have shape (" + std::to_string(s.o) + ",) for weight of shape " + shape_str(wt.shape()) +
                    ", got " + shape_str(c.in[2].shape()));
    s.cg = s.c / groups, s.og = s.o / groups;
    // The kernel size comes from the weight; the row declares no attribute for it.
    s.win = Window{{wt.dim(2), wt.dim(3)}, pair_attr(c, "stride"), pair_attr(c, "padding"), pair_attr(c, "dilation")};
    if (s.win.s[0] < 1 || s.win.s[1] < 1) fail(c, "stride must be positive, got " + pair_str(s.win.s));
    if (s.win.p[0] < 0 || s.win.p[1] < 0) fail(c, "padding must be non-negative, got " + pair_str(s.win.p));
    if (s.win.d[0] < 1 || s.win.d[1] < 1) fail(c, "dilation must be positive, got " + pair_str(s.win.d));
    if (s.win.k[0] < 1 || s.win.k[1] < 1) fail(c, "weight of shape " + shape_str(wt.shape()) + " has an empty kernel");
    const Pair out = window_out(c, x, s.win, false);
    s.oh = out[0], s.ow = out[1];
    return s;
}

// ---- im2col and col2im ----

// The outputs [lo, hi) of `count` (columns or rows) whose input o * stride + offset lies in [0, size).
inline void valid_range(int64_t offset, int64_t stride, int64_t size, int64_t count, int64_t& lo, int64_t& hi) {
    lo = std::clamp<int64_t>(ceil_div(-offset, stride), 0, count);
    hi = std::clamp<int64_t>(ceil_div(size - offset, stride), lo, count);
}

// col (k rows of p = oh * ow values, row stride ld) = the windows of the cg input planes at x:
// row (ci, i, j), column (oy, ox) holds x[ci, oy sh + i dh - ph, ox sw + j dw - pw], 0 in the padding.
// The rows are short (10 values in LeNet's second layer), so the loops avoid per-row calls and
// tests: rows wholly in the padding are zeroed at once, and a row without horizontal padding is
// one plain copy.
template <class T> void im2col(const Conv& s, const T* x, T* col, int64_t ld) {
    const Window& w = s.win;
    for (int64_t ci = 0; ci < s.cg; ++ci)
        for (int64_t i = 0; i < w.k[0]; ++i) {
            int64_t ylo, yhi;
            valid_range(i * w.d[0] - w.p[0], w.s[0], s.h, s.oh, ylo, yhi);
            for (int64_t j = 0; j < w.k[1]; ++j) {
                T* row = col + ((ci * w.k[0] + i) * w.k[1] + j) * ld;
                const int64_t xoff = j * w.d[1] - w.p[1];
                int64_t lo, hi;
                valid_range(xoff, w.s[1], s.w, s.ow, lo, hi);
                std::fill(row, row + ylo * s.ow, T(0));
                std::fill(row + yhi * s.ow, row + s.oh * s.ow, T(0));
                const T* x0 = x + ci * s.h * s.w + xoff;
                for (int64_t oy = ylo; oy < yhi; ++oy) {
                    T* r = row + oy * s.ow;
                    const T* xr = x0 + (oy * w.s[0] + i * w.d[0] - w.p[0]) * s.w;
                    if (w.s[1] == 1 && lo == 0 && hi == s.ow) {
                        for (int64_t ox = 0; ox < s.ow; ++ox) r[ox] = xr[ox];
                        continue;
                    }
                    for (int64_t ox = 0; ox < lo; ++ox) r[ox] = T(0);
                    for (int64_t ox = lo; ox < hi; ++ox) r[ox] = xr[ox * w.s[1]];
                    for (int64_t ox = hi; ox < s.ow; ++ox) r[ox] = T(0);
                }
            }
        }
}

// The adjoint of im2col: dx (cg planes, zeroed by the caller) += each column value at its pixel.
template <class T> void col2im(const Conv& s, const T* col, int64_t ld, T* dx) {
    const Window& w = s.win;
    for (int64_t ci = 0; ci < s.cg; ++ci)
        for (int64_t i = 0; i < w.k[0]; ++i) {
            int64_t ylo, yhi;
            valid_range(i * w.d[0] - w.p[0], w.s[0], s.h, s.oh, ylo, yhi);
            for (int64_t j = 0; j < w.k[1]; ++j) {
                const T* row = col + ((ci * w.k[0] + i) * w.k[1] + j) * ld;
                const int64_t xoff = j * w.d[1] - w.p[1];
                int64_t lo, hi;
                valid_range(xoff, w.s[1], s.w, s.ow, lo, hi);
                T* x0 = dx + ci * s.h * s.w + xoff;
                for (int64_t oy = ylo; oy < yhi; ++oy) {
                    const T* r = row + oy * s.ow;
                    T* xr = x0 + (oy * w.s[0] + i * w.d[0] - w.p[0]) * s.w;
                    if (w.s[1] == 1)
                        for (int64_t ox = lo; ox < hi; ++ox) xr[ox] += r[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ++ox) xr[ox * w.s[1]] += r[ox];
                }
            }
        }
}

// ---- a direct kernel for windows of few values ----
// When a window holds few values (a first layer's 1 or 3 channels), im2col writes more than the
// GEMM reads and the GEMM's depth is too short for it to run well. The direct kernel keeps a tile
// of up to 4 output channels x 2 vectors of pixels in registers while it runs through the window.

// One 256-bit vector of n values (GCC's and Clang's vector extension; without AVX the compiler
// splits it in two).
template <class T> struct Lanes;
template <> struct Lanes<float> {
    static constexpr int64_t n = 8;
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t Bits __attribute__((vector_size(32)));  // the same lanes as integers, for masks
};
template <> struct Lanes<double> {
    static constexpr int64_t n = 4;
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t Bits __attribute__((vector_size(32)));
};
template <class T> inline typename Lanes<T>::V load_vector(const T* p) {
    typename Lanes<T>::V v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
template <class T> inline void store_vector(T* p, typename Lanes<T>::V v) { std::memcpy(p, &v, sizeof v); }

constexpr int kTileVectors = 2;
// Windows of at most this many values (cg kH kW) at stride 1 use the direct kernel.
constexpr int64_t kDirectMaxWindow = 80;

bool use_direct(const Conv& s) { return s.win.s[0] == 1 && s.win.s[1] == 1 && s.k() <= kDirectMaxWindow; }

// One image and group, zero-padded: cg planes of `hp` rows of `row` values, the row longer than
// the padded input so that the last tile of a row reads zeros, never the next row.
struct PaddedImage {
    int64_t hp, row;
    int64_t size(const Conv& s) const { return s.cg * hp * row; }
};

template <class T> PaddedImage padded_image(const Conv& s) {
    const int64_t tile = Lanes<T>::n * kTileVectors;
    return {s.h + 2 * s.win.p[0], ceil_div(s.ow, tile) * tile + s.win.d[1] * (s.win.k[1] - 1)};
}

template <class T> void pad_image(const Conv& s, const PaddedImage& L, const T* x, T* xp) {
    std::fill(xp, xp + L.size(s), T(0));
    for (int64_t ci = 0; ci < s.cg; ++ci)
        for (int64_t iy = 0; iy < s.h; ++iy)
            std::memcpy(xp + (ci * L.hp + iy + s.win.p[0]) * L.row + s.win.p[1], x + (ci * s.h + iy) * s.w,
                        sizeof(T) * static_cast<size_t>(s.w));
}

// y rows o0 .. o0 + OB (of the group's og rows of p values) from the padded image xp and the
// group's weights w (og x k): a tile of OB channels x kTileVectors vectors along an output row.
template <class T, int OB>
void direct_rows(const Conv& s, const PaddedImage& L, const T* xp, const T* w, const T* bias, T* y, int64_t o0) {
    using V = typename Lanes<T>::V;
    constexpr int64_t n = Lanes<T>::n, tile = n * kTileVectors;
    const int64_t k = s.k(), kh = s.win.k[0], kw = s.win.k[1], dh = s.win.d[0], dw = s.win.d[1];
    for (int64_t oy = 0; oy < s.oh; ++oy)
        for (int64_t ox0 = 0; ox0 < s.ow; ox0 += tile) {
            V acc[OB][kTileVectors];
#pragma GCC unroll 4
            for (int b = 0; b < OB; ++b)
#pragma GCC unroll 2
                for (int l = 0; l < kTileVectors; ++l) acc[b][l] = V{} + (bias ? bias[o0 + b] : T(0));
            const T* wk = w + o0 * k;  // weight (o0 + b, tap) is wk[b k] for the current tap
            for (int64_t ci = 0; ci < s.cg; ++ci)
                for (int64_t i = 0; i < kh; ++i) {
                    const T* xr = xp + (ci * L.hp + oy + i * dh) * L.row + ox0;
                    for (int64_t j = 0; j < kw; ++j, ++wk) {
                        V xv[kTileVectors];
#pragma GCC unroll 2
                        for (int l = 0; l < kTileVectors; ++l) xv[l] = load_vector(xr + j * dw + l * n);
#pragma GCC unroll 4
                        for (int b = 0; b < OB; ++b) {
                            const V wv = V{} + wk[b * k];
#pragma GCC unroll 2
                            for (int l = 0; l < kTileVectors; ++l) acc[b][l] += wv * xv[l];
                        }
                    }
                }
            const int64_t valid = std::min(tile, s.ow - ox0);
            for (int b = 0; b < OB; ++b) {
                T* yr = y + (o0 + b) * s.p() + oy * s.ow + ox0;
                if (valid == tile) {
                    for (int l = 0; l < kTileVectors; ++l) store_vector(yr + l * n, acc[b][l]);
                } else {
                    T buf[tile];
                    for (int l = 0; l < kTileVectors; ++l) store_vector(buf + l * n, acc[b][l]);
                    std::copy(buf, buf + valid, yr);
                }
            }
        }
}

// All og output planes of one image and group (y: og rows of p values).
template <class T> void direct_image(const Conv& s, const PaddedImage& L, const T* xp, const T* w, const T* bias, T* y) {
    int64_t o = 0;
    for (; o + 4 <= s.og; o += 4) direct_rows<T, 4>(s, L, xp, w, bias, y, o);
    for (; o + 2 <= s.og; o += 2) direct_rows<T, 2>(s, L, xp, w, bias, y, o);
    for (; o < s.og; ++o) direct_rows<T, 1>(s, L, xp, w, bias, y, o);
}

// dW[o, t] += sum over the output pixels of G[o, oy, ox] xp[ci, oy + i dh, ox + j dw] for the
// channels o0 .. o0 + OB and the window taps t0 .. t0 + TB (t = (ci, i, j)), of one image and
// group: dot products along the output rows, OB x TB of them in vector registers. g holds the
// image's og gradient planes with rows of `row` >= ow values; a row's last vector reads past
// ow (the next row, or padding) and masks those lanes to 0 in both operands, so that neither a
// stray value nor an inf (0 * inf is nan) reaches the sums.
template <class T, int OB, int TB, int NC>
void direct_weight_rows(const Conv& s, const PaddedImage& L, const T* xp, const T* g, int64_t row, T* dw, int64_t o0,
                        int64_t t0) {
    using V = typename Lanes<T>::V;
    using Bits = typename Lanes<T>::Bits;
    constexpr int64_t n = Lanes<T>::n;
    const int64_t k = s.k(), kh = s.win.k[0], kw = s.win.k[1], plane = s.oh * row;
    int64_t off[TB];
    for (int t = 0; t < TB; ++t) {
        const int64_t tap = t0 + t, ci = tap / (kh * kw), i = tap / kw % kh, j = tap % kw;
        off[t] = (ci * L.hp + i * s.win.d[0]) * L.row + j * s.win.d[1];
    }
    // NC > 0: the row's NC vectors unrolled (a short loop's exit, mispredicted on every row, cost
    // as much as the products); NC = 0: a loop over them
    const int64_t chunks = NC > 0 ? NC : ceil_div(s.ow, n), rest = s.ow - (chunks - 1) * n;
    Bits mask;
    for (int64_t lane = 0; lane < n; ++lane) mask[lane] = lane < rest ? -1 : 0;
    V acc[OB][TB];
    for (int b = 0; b < OB; ++b)
        for (int t = 0; t < TB; ++t) acc[b][t] = V{};
    for (int64_t oy = 0; oy < s.oh; ++oy) {
        const T* gr = g + o0 * plane + oy * row;
        const T* xr = xp + oy * L.row;
#pragma GCC unroll 4
        for (int64_t c = 0; c < chunks; ++c) {
            V gv[OB], xv[TB];
#pragma GCC unroll 4
            for (int b = 0; b < OB; ++b) gv[b] = load_vector(gr + b * plane + c * n);
#pragma GCC unroll 2
            for (int t = 0; t < TB; ++t) {
                xv[t] = load_vector(xr + off[t] + c * n);
                if (c == chunks - 1) xv[t] = (V)((Bits)xv[t] & mask);
            }
            if (c == chunks - 1)
                for (int b = 0; b < OB; ++b) gv[b] = (V)((Bits)gv[b] & mask);
#pragma GCC unroll 4
            for (int b = 0; b < OB; ++b)
#pragma GCC unroll 2
                for (int t = 0; t < TB; ++t) acc[b][t] += gv[b] * xv[t];
        }
    }
    for (int b = 0; b < OB; ++b)
        for (int t = 0; t < TB; ++t) {
            T sum = T(0);
            for (int64_t lane = 0; lane < n; ++lane) sum += acc[b][t][lane];
            dw[(o0 + b) * k + t0 + t] += sum;
        }
}

template <class T, int OB, int NC>
void direct_weight_taps(const Conv& s, const PaddedImage& L, const T* xp, const T* g, int64_t row, T* dw, int64_t o) {
    int64_t t = 0;
    for (; t + 2 <= s.k(); t += 2) direct_weight_rows<T, OB, 2, NC>(s, L, xp, g, row, dw, o, t);
    for (; t < s.k(); ++t) direct_weight_rows<T, OB, 1, NC>(s, L, xp, g, row, dw, o, t);
}

template <class T, int NC>
void direct_weight_channels(const Conv& s, const PaddedImage& L, const T* xp, const T* g, int64_t row, T* dw) {
    int64_t o = 0;
    for (; o + 4 <= s.og; o += 4) direct_weight_taps<T, 4, NC>(s, L, xp, g, row, dw, o);
    for (; o + 2 <= s.og; o += 2) direct_weight_taps<T, 2, NC>(s, L, xp, g, row, dw, o);
    for (; o < s.og; ++o) direct_weight_taps<T, 1, NC>(s, L, xp, g, row, dw, o);
}

// The weight gradient of one image and group (og x k, added into dw) from its padded image xp
// and gradient planes g (rows of `row` values, zero past ow).
template <class T>
void direct_weight_grad(const Conv& s, const PaddedImage& L, const T* xp, const T* g, int64_t row, T* dw) {
    switch (ceil_div(s.ow, Lanes<T>::n)) {
        case 2: return direct_weight_channels<T, 2>(s, L, xp, g, row, dw);
        case 3: return direct_weight_channels<T, 3>(s, L, xp, g, row, dw);
        case 4: return direct_weight_channels<T, 4>(s, L, xp, g, row, dw);
        default: return direct_weight_channels<T, 0>(s, L, xp, g, row, dw);
    }
}

// ---- images on the engine's threads ----

// Multiply-adds below which a convolution stays on the calling thread: about 0.5 ms of work. A
// worker that another process keeps off its core holds up the end of the op for as long as it
// holds its chunk (milliseconds under load), so small ops do not risk it: LeNet's steps at batch
// 4 took 21 ms on 2 threads against 0.7 ms on 1 when its 4-image convolutions were split.
constexpr int64_t kConvParallelMin = int64_t{1} << 24;

// Whether for_chunks splits `chunks` pieces of `per_chunk` multiply-adds over threads.
bool splits(int64_t chunks, int64_t per_chunk) {
    return chunks > 1 && pool_threads() > 1 && chunks * std::max<int64_t>(per_chunk, 1) >= kConvParallelMin;
}

// Runs body(chunk) for chunk in [0, chunks), on the engine's threads when splits() says so.
void for_chunks(int64_t chunks, int64_t per_chunk, const std::function<void(int64_t)>& body) {
    if (!splits(chunks, per_chunk)) {
        for (int64_t q = 0; q < chunks; ++q) body(q);
        return;
    }
    const int64_t unit = std::max<int64_t>(per_chunk, 1);
    parallel_for(chunks * unit, unit, [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo / unit; q < hi / unit; ++q) body(q);
    });
}

// Images per chunk of the backward: each chunk adds its images' weight gradients into its own
// partial sum, and the partial sums are added in chunk order, so the result does not depend on
// the number of threads.
constexpr int64_t kImagesPerChunk = 8;

// Images per GEMM: a small output plane (p values) makes a thin product, so several images go
// into one (64% faster for LeNet's 10 x 10 planes); large planes, and 1x1 windows (whose input
// is the product's operand as it is), one image at a time. A function of the shapes alone, so the
// result does not depend on the number of threads.
int64_t images_per_gemm(const Conv& s) {
    if (s.pointwise()) return 1;
    return std::clamp<int64_t>(ceil_div(512, std::max<int64_t>(s.p(), 1)), 1, kImagesPerChunk);
}

// y[n, o, :] for the og output channels of group g of image n (og rows of p values).
template <class T> T* out_rows(const Conv& s, T* y, int64_t n, int64_t g) { return y + (n * s.o + g * s.og) * s.p(); }

}  // namespace

// ---- conv2d ----

Shapes shape_conv2d(const Call& c) {
    const Conv s = conv_geometry(c);
    return {Shape{s.n, s.o, s.oh, s.ow}};
}

// y[n, o] = b[o] + sum over (ci, i, j) of W[o, ci, i, j] x[n, g(o) cg + ci, oy sh + i dh - ph, ox sw + j dw - pw]:
// per block of images and group, Y_g (og x images p) = W_g (og x k) col (k x images p) with
// col = im2col(x), or the direct kernel per image.
void fwd_conv2d(Call& c) {
    const Conv s = conv_geometry(c);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        const T* wt = c.in[1].data<T>();
        const T* bias = c.in.size() == 3 ? c.in[2].data<T>() : nullptr;
        T* y = c.out[0].data<T>();
        const int64_t k = s.k(), p = s.p();
        const bool direct = use_direct(s);
        const int64_t bs = direct ? 1 : images_per_gemm(s);
        const int64_t blocks = ceil_div(s.n, bs), per_block = bs * s.o * p * std::max<int64_t>(k, 1);
        const PaddedImage L = padded_image<T>(s);
        for_chunks(blocks, per_block, [&](int64_t q) {
            const int64_t n0 = q * bs, nb = std::min(bs, s.n - n0), ld = nb * p;
            std::vector<T> buffer(static_cast<size_t>(direct ? L.size(s) : s.pointwise() ? 0 : k * ld));
            std::vector<T> block(static_cast<size_t>(nb > 1 ? s.og * ld : 0));
            for (int64_t g = 0; g < s.groups; ++g) {
                const T* wg = wt + g * s.og * k;
                const T* bg = bias ? bias + g * s.og : nullptr;
                const T* xg = x + (n0 * s.c + g * s.cg) * s.hw();
                if (direct) {
                    pad_image(s, L, xg, buffer.data());
                    direct_image(s, L, buffer.data(), wg, bg, out_rows(s, y, n0, g));
                    continue;
                }
                const T* col = xg;  // a 1x1 window reads the image itself (then nb is 1)
                if (!s.pointwise()) {
                    for (int64_t b = 0; b < nb; ++b) im2col(s, xg + b * s.c * s.hw(), buffer.data() + b * p, ld);
                    col = buffer.data();
                }
                if (nb == 1) {  // the image's output rows are the product itself
                    T* yg = out_rows(s, y, n0, g);
                    for (int64_t o = 0; o < s.og; ++o) std::fill(yg + o * p, yg + (o + 1) * p, bg ? bg[o] : T(0));
                    gemm<T>(false, false, s.og, p, k, T(1), wg, k, col, p, T(1), yg, p);
                    continue;
                }
                gemm<T>(false, false, s.og, ld, k, T(1), wg, k, col, ld, T(0), block.data(), ld);
                for (int64_t b = 0; b < nb; ++b) {
                    T* yg = out_rows(s, y, n0 + b, g);
                    for (int64_t o = 0; o < s.og; ++o) {
                        const T* from = block.data() + o * ld + b * p;
                        const T add = bg ? bg[o] : T(0);
                        for (int64_t i = 0; i < p; ++i) yg[o * p + i] = from[i] + add;
                    }
                }
            }
        });
    });
}

// With G_g the output gradient of a block of images and a group (og x images p): dL/dW_g = sum
// over blocks of G_g col^T (or the direct kernel's dot products per image), dL/dcol = W_g^T G_g
// scattered back to the pixels (col2im), dL/db[o] = the sum of G[:, o].
Grads bwd_conv2d(const Call& c, const Grads& grads, const Need& need) {
    const Conv s = conv_geometry(c);
    Grads r(c.in.size());
    const bool want_x = need[0], want_w = need[1];
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        const T* wt = c.in[1].data<T>();
        const T* gy = grads[0].data<T>();
        const int64_t k = s.k(), p = s.p(), wsize = s.o * k, bs = images_per_gemm(s);
        const bool direct = use_direct(s);
        const PaddedImage L = padded_image<T>(s);
        const int64_t grow = ceil_div(s.ow, Lanes<T>::n) * Lanes<T>::n;  // gradient rows, padded to vectors
        if (want_x) r[0] = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
        if (want_w) r[1] = Tensor::empty(c.in[1].shape(), c.in[1].dtype());
        T* dx = want_x ? r[0].data<T>() : nullptr;
        if (want_x || want_w) {
            const int64_t chunks = ceil_div(s.n, kImagesPerChunk);
            const int64_t per_chunk = kImagesPerChunk * s.o * p * std::max<int64_t>(k, 1);
            std::vector<T> partial(want_w ? static_cast<size_t>(std::max<int64_t>(chunks, 1) * wsize) : 0, T(0));
            for_chunks(chunks, per_chunk, [&](int64_t q) {
                std::vector<T> col(static_cast<size_t>(s.pointwise() ? 0 : k * bs * p));
                std::vector<T> block(static_cast<size_t>(bs > 1 ? s.og * bs * p : 0));
                T* dw = want_w ? partial.data() + q * wsize : nullptr;
                const int64_t last = std::min(s.n, (q + 1) * kImagesPerChunk);
                if (direct && want_w) {  // the weight gradient without im2col; the input's below
                    std::vector<T> xp(static_cast<size_t>(L.size(s)));
                    std::vector<T> gp(static_cast<size_t>(s.og * s.oh * grow), T(0));
                    for (int64_t n = q * kImagesPerChunk; n < last; ++n)
                        for (int64_t g = 0; g < s.groups; ++g) {
                            pad_image(s, L, x + (n * s.c + g * s.cg) * s.hw(), xp.data());
                            const T* gr = out_rows(s, gy, n, g);
                            int64_t row = s.ow;
                            if (n == s.n - 1) {  // the last vector of the last image's rows would read past the buffer
                                for (int64_t r = 0; r < s.og * s.oh; ++r)
                                    std::copy(gr + r * s.ow, gr + (r + 1) * s.ow, gp.data() + r * grow);
                                gr = gp.data();
                                row = grow;
                            }
                            direct_weight_grad(s, L, xp.data(), gr, row, dw + g * s.og * k);
                        }
                }
                for (int64_t n0 = q * kImagesPerChunk; n0 < last && (want_x || !direct); n0 += bs) {
                    const int64_t nb = std::min(bs, last - n0), ld = nb * p;
                    for (int64_t g = 0; g < s.groups; ++g) {
                        // G for the block as og rows of nb * p values
                        const T* gr = out_rows(s, gy, n0, g);
                        if (nb > 1) {
                            for (int64_t b = 0; b < nb; ++b)
                                for (int64_t o = 0; o < s.og; ++o)
                                    std::memcpy(block.data() + o * ld + b * p, out_rows(s, gy, n0 + b, g) + o * p,
                                                sizeof(T) * static_cast<size_t>(p));
                            gr = block.data();
                        }
                        const int64_t first = (n0 * s.c + g * s.cg) * s.hw();
                        if (want_w && !direct) {
                            const T* cols = x + first;
                            if (!s.pointwise()) {
                                for (int64_t b = 0; b < nb; ++b) im2col(s, x + first + b * s.c * s.hw(), col.data() + b * p, ld);
                                cols = col.data();
                            }
                            gemm<T>(false, true, s.og, k, ld, T(1), gr, ld, cols, ld, T(1), dw + g * s.og * k, k);
                        }
                        if (want_x) {
                            if (s.pointwise()) {
                                gemm<T>(true, false, k, p, s.og, T(1), wt + g * s.og * k, k, gr, p, T(0), dx + first, p);
                                continue;
                            }
                            gemm<T>(true, false, k, ld, s.og, T(1), wt + g * s.og * k, k, gr, ld, T(0), col.data(), ld);
                            for (int64_t b = 0; b < nb; ++b) col2im(s, col.data() + b * p, ld, dx + first + b * s.c * s.hw());
                        }
                    }
                }
            });
            if (want_w) {
                T* dw = r[1].data<T>();
                std::fill(dw, dw + wsize, T(0));
                for (int64_t q = 0; q < chunks; ++q)
                    for (int64_t i = 0; i < wsize; ++i) dw[i] += partial[static_cast<size_t>(q * wsize + i)];
            }
        }
        if (c.in.size() == 3 && need[2]) {
            // per channel: pairwise sums of each plane, added up in double
            std::vector<double> acc(static_cast<size_t>(s.o), 0.0);
            for (int64_t n = 0; n < s.n; ++n)
                for (int64_t o = 0; o < s.o; ++o) {
                    const T* plane = gy + (n * s.o + o) * p;
                    acc[static_cast<size_t>(o)] += pairwise_sum(p, [&](int64_t q) { return plane[q]; });
                }
            r[2] = Tensor::empty(Shape{s.o}, c.in[2].dtype());
            std::copy(acc.begin(), acc.end(), r[2].data<T>());
        }
    });
    return r;
}

// ---- pooling ----

namespace {

struct Pool {
    int64_t n, c, h, w, oh, ow;
    Window win;
    int64_t planes() const { return n * c; }
};

Pool pool_geometry(const Call& c, bool with_dilation) {
    const Tensor& x = c.in[0];
    require_4d(c, x, "input", "(N, C, H, W)");
    Pool s;
    s.win = window_attrs(c, "kernel_size", with_dilation);
    const bool ceil_mode = c.flag("ceil_mode");
    // PyTorch's rule: the padding cannot exceed half the (dilated) kernel, so that every window
    // holds at least one input value
    for (int i = 0; i < 2; ++i)
        if (s.win.p[i] > s.win.extent(i) / 2)
            fail(c, "padding " + pair_str(s.win.p) + " is more than half the " + (with_dilation ? "dilated " : "") +
                        "kernel " + pair_str({s.win.extent(0), s.win.extent(1)}));
    s.n = x.dim(0), s.c = x.dim(1), s.h = x.dim(2), s.w = x.dim(3);
    const Pair out = window_out(c, x, s.win, ceil_mode);
    s.oh = out[0], s.ow = out[1];
    return s;
}

// Calls f(iy, ix) for the pixels of the window of output (oy, ox) that lie in the input.
template <class F> inline void for_window(const Pool& s, int64_t oy, int64_t ox, F&& f) {
    const Window& w = s.win;
    const int64_t y0 = oy * w.s[0] - w.p[0], x0 = ox * w.s[1] - w.p[1];
    for (int64_t i = 0; i < w.k[0]; ++i) {
        const int64_t iy = y0 + i * w.d[0];
        if (iy < 0 || iy >= s.h) continue;
        for (int64_t j = 0; j < w.k[1]; ++j) {
            const int64_t ix = x0 + j * w.d[1];
            if (ix >= 0 && ix < s.w) f(iy * s.w + ix);
        }
    }
}

// The plane offset of the first maximum of the window (nan wins, as PyTorch), -1 for a window
// without input pixels.
template <class T> inline int64_t window_argmax(const Pool& s, const T* plane, int64_t oy, int64_t ox) {
    int64_t best = -1;
    T v = T(0);
    for_window(s, oy, ox, [&](int64_t at) {
        const T u = plane[at];
        if (best < 0 || u > v || (std::isnan(u) && !std::isnan(v))) {
            best = at;
            v = u;
        }
    });
    return best;
}

// True when the windows are 2x2 at stride 2 without padding and none hangs over the edge: each
// input pixel is then in at most one window.
bool is_2x2(const Pool& s) {
    const Window& w = s.win;
    return w.k[0] == 2 && w.k[1] == 2 && w.s[0] == 2 && w.s[1] == 2 && w.p[0] == 0 && w.p[1] == 0 && w.d[0] == 1 &&
           w.d[1] == 1 && s.oh == s.h / 2 && s.ow == s.w / 2;
}

// The maximum of a 2x2 window a, b, c, d, nan winning. Written as a chain of ifs, which the
// compiler turns into vector selects; a branch-free expression with | of comparisons it did not,
// and ran 8x slower.
template <class T> inline T max4(T a, T b, T c, T d) {
    T m = a;
    if (b > m || (std::isnan(b) && !std::isnan(m))) m = b;
    if (c > m || (std::isnan(c) && !std::isnan(m))) m = c;
    if (d > m || (std::isnan(d) && !std::isnan(m))) m = d;
    return m;
}

// Runs body(plane) for every (image, channel) plane, on the engine's threads for large inputs.
void for_planes(const Pool& s, const std::function<void(int64_t)>& body) {
    const int64_t per = std::max<int64_t>(s.h * s.w, 1);
    parallel_for(s.planes() * per, std::max<int64_t>(per, kParallelGrain / per * per), [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo / per; q < hi / per; ++q) body(q);
    });
}

}  // namespace

Shapes shape_max_pool2d(const Call& c) {
    const Pool s = pool_geometry(c, true);
    return {Shape{s.n, s.c, s.oh, s.ow}};
}

// y[n, c, oy, ox] = max over the window's pixels inside the input (padding never wins)
void fwd_max_pool2d(Call& c) {
    const Pool s = pool_geometry(c, true);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        T* y = c.out[0].data<T>();
        const bool fast = is_2x2(s);
        for_planes(s, [&](int64_t q) {
            const T* plane = x + q * s.h * s.w;
            T* out = y + q * s.oh * s.ow;
            if (fast) {
                for (int64_t oy = 0; oy < s.oh; ++oy) {
                    const T* r0 = plane + 2 * oy * s.w;
                    const T* r1 = r0 + s.w;
                    for (int64_t ox = 0; ox < s.ow; ++ox)
                        out[oy * s.ow + ox] = max4(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
                }
                return;
            }
            for (int64_t oy = 0; oy < s.oh; ++oy)
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t at = window_argmax(s, plane, oy, ox);
                    out[oy * s.ow + ox] = at < 0 ? -std::numeric_limits<T>::infinity() : plane[at];
                }
        });
    });
}
// dL/dx = g at each window's first maximum (found again from x, or from x and y for 2x2 windows),
// summed where windows overlap
Grads bwd_max_pool2d(const Call& c, const Grads& grads, const Need&) {
    const Pool s = pool_geometry(c, true);
    const bool fast = is_2x2(s);
    // the 2x2 windows write every pixel they cover; only a last odd row or column is left to zero
    Tensor r = fast ? Tensor::empty(c.in[0].shape(), c.in[0].dtype()) : Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        const T* y = c.out[0].data<T>();
        const T* g = grads[0].data<T>();
        T* dx = r.data<T>();
        for_planes(s, [&](int64_t q) {
            const T* plane = x + q * s.h * s.w;
            const T* gq = g + q * s.oh * s.ow;
            const T* yq = y + q * s.oh * s.ow;
            T* dq = dx + q * s.h * s.w;
            if (fast) {
                for (int64_t oy = 0; oy < s.oh; ++oy) {
                    const T* r0 = plane + 2 * oy * s.w;
                    const T* r1 = r0 + s.w;
                    T* __restrict d0 = dq + 2 * oy * s.w;
                    T* __restrict d1 = d0 + s.w;
                    // the first pixel equal to the window's maximum y (or the first nan) wins; written
                    // with bitwise & and | the loop runs on vectors (with branches it was 7x slower)
                    for (int64_t ox = 0; ox < s.ow; ++ox) {
                        const T m = yq[oy * s.ow + ox], gv = gq[oy * s.ow + ox];
                        const T a = r0[2 * ox], b = r0[2 * ox + 1], cc = r1[2 * ox];
                        const bool wa = (a == m) | (a != a);
                        const bool wb = !wa & ((b == m) | (b != b));
                        const bool wc = !(wa | wb) & ((cc == m) | (cc != cc));
                        d0[2 * ox] = wa ? gv : T(0);
                        d0[2 * ox + 1] = wb ? gv : T(0);
                        d1[2 * ox] = wc ? gv : T(0);
                        d1[2 * ox + 1] = !(wa | wb | wc) ? gv : T(0);
                    }
                    if (s.w % 2) d0[s.w - 1] = d1[s.w - 1] = T(0);
                }
                if (s.h % 2) std::fill(dq + (s.h - 1) * s.w, dq + s.h * s.w, T(0));
                return;
            }
            for (int64_t oy = 0; oy < s.oh; ++oy)
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t at = window_argmax(s, plane, oy, ox);
                    if (at >= 0) dq[at] += gq[oy * s.ow + ox];
                }
        });
    });
    return {r};
}

namespace {

// The divisor of average pooling's window (oy, ox), as PyTorch: the window clipped to the padded
// input (count_include_pad) or to the input, unless divisor_override is set; 0 for an empty window.
int64_t avg_divisor(const Call& c, const Pool& s, int64_t oy, int64_t ox) {
    const Window& w = s.win;
    const int64_t y0 = oy * w.s[0] - w.p[0], x0 = ox * w.s[1] - w.p[1];
    const int64_t y1 = std::min(y0 + w.k[0], s.h + w.p[0]), x1 = std::min(x0 + w.k[1], s.w + w.p[1]);
    const int64_t padded = (y1 - y0) * (x1 - x0);
    const int64_t inside = (std::min(y1, s.h) - std::max<int64_t>(y0, 0)) * (std::min(x1, s.w) - std::max<int64_t>(x0, 0));
    if (std::min(y1, s.h) <= std::max<int64_t>(y0, 0) || std::min(x1, s.w) <= std::max<int64_t>(x0, 0)) return 0;
    const int64_t override_by = c.integer("divisor_override");
    if (override_by != 0) return override_by;
    return c.flag("count_include_pad") ? padded : inside;
}

}  // namespace

Shapes shape_avg_pool2d(const Call& c) {
    const Pool s = pool_geometry(c, false);
    return {Shape{s.n, s.c, s.oh, s.ow}};
}

// y[n, c, oy, ox] = sum of the window's input pixels / its divisor (avg_divisor)
void fwd_avg_pool2d(Call& c) {
    const Pool s = pool_geometry(c, false);
    std::vector<int64_t> div(static_cast<size_t>(s.oh * s.ow));
    for (int64_t oy = 0; oy < s.oh; ++oy)
        for (int64_t ox = 0; ox < s.ow; ++ox) div[static_cast<size_t>(oy * s.ow + ox)] = avg_divisor(c, s, oy, ox);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        T* y = c.out[0].data<T>();
        for_planes(s, [&](int64_t q) {
            const T* plane = x + q * s.h * s.w;
            T* out = y + q * s.oh * s.ow;
            for (int64_t oy = 0; oy < s.oh; ++oy)
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t d = div[static_cast<size_t>(oy * s.ow + ox)];
                    T sum = T(0);
                    for_window(s, oy, ox, [&](int64_t at) { sum += plane[at]; });
                    out[oy * s.ow + ox] = d == 0 ? T(0) : sum / static_cast<T>(d);
                }
        });
    });
}
// dL/dx = g / divisor added to each pixel of the window
Grads bwd_avg_pool2d(const Call& c, const Grads& grads, const Need&) {
    const Pool s = pool_geometry(c, false);
    std::vector<int64_t> div(static_cast<size_t>(s.oh * s.ow));
    for (int64_t oy = 0; oy < s.oh; ++oy)
        for (int64_t ox = 0; ox < s.ow; ++ox) div[static_cast<size_t>(oy * s.ow + ox)] = avg_divisor(c, s, oy, ox);
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* g = grads[0].data<T>();
        T* dx = r.data<T>();
        for_planes(s, [&](int64_t q) {
            const T* gq = g + q * s.oh * s.ow;
            T* dq = dx + q * s.h * s.w;
            for (int64_t oy = 0; oy < s.oh; ++oy)
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t d = div[static_cast<size_t>(oy * s.ow + ox)];
                    if (d == 0) continue;
                    const T share = gq[oy * s.ow + ox] / static_cast<T>(d);
                    for_window(s, oy, ox, [&](int64_t at) { dq[at] += share; });
                }
        });
    });
    return {r};
}

// ---- adaptive average pooling ----

namespace {

struct Adaptive {
    int64_t n, c, h, w, oh, ow;
};

Adaptive adaptive_geometry(const Call& c) {
    const Tensor& x = c.in[0];
    require_4d(c, x, "input", "(N, C, H, W)");
    const Pair out = pair_attr(c, "output_size");
    if (out[0] < 0 || out[1] < 0) fail(c, "output_size must be non-negative, got " + pair_str(out));
    if ((x.dim(2) == 0 && out[0] > 0) || (x.dim(3) == 0 && out[1] > 0))
        fail(c, "cannot pool an empty plane of input shape " + shape_str(x.shape()) + " to output_size " + pair_str(out));
    return {x.dim(0), x.dim(1), x.dim(2), x.dim(3), out[0], out[1]};
}

// Output bin o of `out` bins over `size` pixels covers [floor(o size / out), ceil((o + 1) size / out)).
inline int64_t bin_start(int64_t o, int64_t size, int64_t out) { return o * size / out; }
inline int64_t bin_end(int64_t o, int64_t size, int64_t out) { return ((o + 1) * size + out - 1) / out; }

}  // namespace

Shapes shape_adaptive_avg_pool2d(const Call& c) {
    const Adaptive s = adaptive_geometry(c);
    return {Shape{s.n, s.c, s.oh, s.ow}};
}

// y[n, c, oy, ox] = mean of x over the bins (oy, ox)
void fwd_adaptive_avg_pool2d(Call& c) {
    const Adaptive s = adaptive_geometry(c);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        T* y = c.out[0].data<T>();
        for (int64_t q = 0; q < s.n * s.c; ++q) {
            const T* plane = x + q * s.h * s.w;
            for (int64_t oy = 0; oy < s.oh; ++oy) {
                const int64_t y0 = bin_start(oy, s.h, s.oh), y1 = bin_end(oy, s.h, s.oh);
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t x0 = bin_start(ox, s.w, s.ow), x1 = bin_end(ox, s.w, s.ow);
                    T sum = T(0);
                    for (int64_t iy = y0; iy < y1; ++iy)
                        for (int64_t ix = x0; ix < x1; ++ix) sum += plane[iy * s.w + ix];
                    y[(q * s.oh + oy) * s.ow + ox] = sum / static_cast<T>((y1 - y0) * (x1 - x0));
                }
            }
        }
    });
}
// dL/dx = g / (bin size) added to each pixel of the bin
Grads bwd_adaptive_avg_pool2d(const Call& c, const Grads& grads, const Need&) {
    const Adaptive s = adaptive_geometry(c);
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* g = grads[0].data<T>();
        T* dx = r.data<T>();
        for (int64_t q = 0; q < s.n * s.c; ++q) {
            T* plane = dx + q * s.h * s.w;
            for (int64_t oy = 0; oy < s.oh; ++oy) {
                const int64_t y0 = bin_start(oy, s.h, s.oh), y1 = bin_end(oy, s.h, s.oh);
                for (int64_t ox = 0; ox < s.ow; ++ox) {
                    const int64_t x0 = bin_start(ox, s.w, s.ow), x1 = bin_end(ox, s.w, s.ow);
                    const T share = g[(q * s.oh + oy) * s.ow + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
                    for (int64_t iy = y0; iy < y1; ++iy)
                        for (int64_t ix = x0; ix < x1; ++ix) plane[iy * s.w + ix] += share;
                }
            }
        }
    });
    return {r};
}

// ---- constant padding ----

namespace {

// pad lists (before, after) pairs from the last axis backwards, as torch.nn.functional.pad;
// negative amounts crop. Gives, per axis, the amount added before and the output size.
struct Padding {
    std::vector<int64_t> before;
    Shape out;
};

Padding padding_of(const Call& c) {
    const Tensor& x = c.in[0];
    const auto& pad = c.integers("pad");
    const auto nd = static_cast<size_t>(x.ndim());
    if (pad.size() % 2 != 0) fail(c, "pad must hold pairs (before, after), got " + std::to_string(pad.size()) + " values");
    if (pad.size() / 2 > nd)
        fail(c, "pad holds " + std::to_string(pad.size() / 2) + " pairs, more than the " + std::to_string(nd) +
                    " axes of shape " + shape_str(x.shape()));
    Padding p{std::vector<int64_t>(nd, 0), x.shape()};
    for (size_t k = 0; k < pad.size() / 2; ++k) {
        const size_t axis = nd - 1 - k;
        const int64_t lo = pad[2 * k], hi = pad[2 * k + 1];
        if (std::abs(lo) > kMaxWindowValue || std::abs(hi) > kMaxWindowValue)
            fail(c, "pad " + std::to_string(std::abs(lo) > kMaxWindowValue ? lo : hi) + " is too large");
        const int64_t size = x.dim(static_cast<int64_t>(axis)) + lo + hi;
        if (size < 0)
            fail(c, "padding (" + std::to_string(lo) + ", " + std::to_string(hi) + ") of axis " + std::to_string(axis) +
                        " of shape " + shape_str(x.shape()) + " gives a negative size " + std::to_string(size));
        p.before[axis] = lo;
        p.out[axis] = size;
    }
    numel_of(p.out);  // ValueError for a shape too large to count
    return p;
}

std::vector<int64_t> strides_of(const Shape& shape) {
    std::vector<int64_t> s(shape.size());
    int64_t step = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        s[i] = step;
        step *= shape[i];
    }
    return s;
}

// Copies the overlap of the input and the padded output between them: to the output (forward)
// or back to the input (backward).
template <class T> void copy_overlap(const Shape& in_shape, const Padding& p, const T* src, T* dst, bool to_output) {
    const size_t nd = in_shape.size();
    Shape extent(nd);
    int64_t in_off = 0, out_off = 0;
    const auto si = strides_of(in_shape), so = strides_of(p.out);
    for (size_t a = 0; a < nd; ++a) {
        const int64_t lo = std::max<int64_t>(0, -p.before[a]);
        const int64_t hi = std::min(in_shape[a], p.out[a] - p.before[a]);
        if (hi <= lo) return;
        extent[a] = hi - lo;
        in_off += lo * si[a];
        out_off += (lo + p.before[a]) * so[a];
    }
    const auto& s_src = to_output ? si : so;
    const auto& s_dst = to_output ? so : si;
    const T* from = src + (to_output ? in_off : out_off);
    T* into = dst + (to_output ? out_off : in_off);
    walk(extent, s_src, s_dst, [&](int64_t, int64_t a, int64_t b, int64_t n, int64_t, int64_t) {
        std::memcpy(into + b, from + a, sizeof(T) * static_cast<size_t>(n));
    });
}

}  // namespace

Shapes shape_pad(const Call& c) { return {padding_of(c).out}; }

// y = x placed at offset `before` in a tensor filled with `value` (cropped where before < 0)
void fwd_pad(Call& c) {
    const Padding p = padding_of(c);
    c.out[0].fill(c.real("value"));
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        copy_overlap<T>(c.in[0].shape(), p, c.in[0].data<T>(), c.out[0].data<T>(), true);
    });
}
// dL/dx = g at the input's positions (0 where the input was cropped away)
Grads bwd_pad(const Call& c, const Grads& grads, const Need&) {
    const Padding p = padding_of(c);
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        copy_overlap<T>(c.in[0].shape(), p, grads[0].data<T>(), r.data<T>(), false);
    });
    return {r};
}

}  // namespace tg
