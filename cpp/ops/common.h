// Helpers shared by the kernel families: Eigen views of tensors and numpy broadcasting.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "ops/registry.h"

namespace tg {

template <class T> using Vec = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T> using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T> Eigen::Map<Vec<T>> vec(const Tensor& t) { return {t.data<T>(), t.numel()}; }
template <class T> Eigen::Map<const Vec<T>> cvec(const Tensor& t) { return {t.data<T>(), t.numel()}; }
// Elements [lo, hi) of t (the chunks of parallel_for).
template <class T> Eigen::Map<Vec<T>> vec(const Tensor& t, int64_t lo, int64_t hi) { return {t.data<T>() + lo, hi - lo}; }
template <class T> Eigen::Map<const Vec<T>> cvec(const Tensor& t, int64_t lo, int64_t hi) {
    return {t.data<T>() + lo, hi - lo};
}
template <class T> Eigen::Map<Mat<T>> mat(const Tensor& t, int64_t rows, int64_t cols) {
    return {t.data<T>(), rows, cols};
}
template <class T> Eigen::Map<const Mat<T>> cmat(const Tensor& t, int64_t rows, int64_t cols) {
    return {t.data<T>(), rows, cols};
}

// Runs f(T{}) for the float type of the call's first input.
template <class F> void with_dtype(const Call& c, F&& f) {
    float_dispatch(c.in[0].dtype(), c.name(), f);
}

// numpy's broadcast of two shapes; ValueError naming `op` when they are incompatible.
Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);

// Element strides of `shape` read as broadcast to `out` (right-aligned; 0 on broadcast axes).
std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out);

// Walks `out` row by row (the last axis is a row) and calls
// row(out_offset, a_offset, b_offset, n, a_stride, b_stride) with the operands' offsets for that row.
template <class Row>
void walk(const Shape& out, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb, Row&& row) {
    const int64_t total = numel_of(out);
    if (total == 0) return;
    const size_t nd = out.size();
    if (nd == 0) {
        row(int64_t{0}, int64_t{0}, int64_t{0}, int64_t{1}, int64_t{0}, int64_t{0});
        return;
    }
    const int64_t n = out[nd - 1];
    std::vector<int64_t> idx(nd, 0);
    int64_t oa = 0, ob = 0;
    for (int64_t o = 0; o < total; o += n) {
        row(o, oa, ob, n, sa[nd - 1], sb[nd - 1]);
        for (size_t d = nd - 1; d-- > 0;) {  // odometer step over the outer axes
            if (++idx[d] < out[d]) {
                oa += sa[d];
                ob += sb[d];
                break;
            }
            oa -= sa[d] * (out[d] - 1);
            ob -= sb[d] * (out[d] - 1);
            idx[d] = 0;
        }
    }
}

// out = f(a, b) with numpy broadcasting to `out_shape`.
template <class T, class F>
void broadcast_apply(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = out.data<T>();
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
        for (int64_t i = 0, n = out.numel(); i < n; ++i) po[i] = f(pa[i], pb[i]);
        return;
    }
    walk(out.shape(), broadcast_strides(a.shape(), out.shape()), broadcast_strides(b.shape(), out.shape()),
         [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t sa, int64_t sb) {
             for (int64_t i = 0; i < n; ++i) po[o + i] = f(pa[ia + i * sa], pb[ib + i * sb]);
         });
}

// Calls f with n as a compile-time constant (std::integral_constant) when it is 1 to 8, else with n
// itself: loops over rows that short (a softmax over 2 classes, a bias of 8 units) are then
// unrolled, where a loop of unknown length spends more on its vectorised set-up and remainder than on
// the row (a (128, 2) log-softmax's row steps took 70 instructions a row). The arithmetic, and its
// order, is the same either way.
template <class F> decltype(auto) with_short_length(int64_t n, F&& f) {
    switch (n) {
        case 1: return f(std::integral_constant<int64_t, 1>{});
        case 2: return f(std::integral_constant<int64_t, 2>{});
        case 3: return f(std::integral_constant<int64_t, 3>{});
        case 4: return f(std::integral_constant<int64_t, 4>{});
        case 5: return f(std::integral_constant<int64_t, 5>{});
        case 6: return f(std::integral_constant<int64_t, 6>{});
        case 7: return f(std::integral_constant<int64_t, 7>{});
        case 8: return f(std::integral_constant<int64_t, 8>{});
        default: return f(n);
    }
}

// sum_{i < n} term(i) with an error that grows as log n, not n: pairwise halving down to blocks of
// 128 terms, each summed into 8 accumulators (numpy's scheme), all in double, so float32 sums of
// millions of elements stay exact where a float accumulator stops at 2^24.
template <class F> double pairwise_sum(int64_t n, F&& term, int64_t first = 0) {
    if (n <= 128) {
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; ++j) acc[j] += static_cast<double>(term(first + i + j));
        double total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < n; ++i) total += static_cast<double>(term(first + i));
        return total;
    }
    const int64_t half = (n / 2 + 7) / 8 * 8;
    return pairwise_sum(half, term, first) + pairwise_sum(n - half, term, first + half);
}

// The inputs whose exp lies below the normal range (v < log of the smallest normal number), where
// Eigen's vectorised exp stops (it gives 5.6e-309 for exp(-inf), not 0): the C library computes
// those elements, as numpy does.
template <class T> T exp_normal_floor() {
    static const T lowest = std::log(std::numeric_limits<T>::min());
    return lowest;
}
template <class T> bool exp_below_normal(T v) { return v < exp_normal_floor<T>(); }

// y = exp(x) over n contiguous elements (y may be x). Flat passes, which Eigen vectorises: an exp
// inside a row-wise expression (a softmax's) calls the C library once per element instead. In
// chunks, so that the inputs below the normal range are still at hand when y is x.
template <class T> void exp_of(const T* x, T* y, int64_t n) {
    constexpr int64_t kChunk = 256;
    T below[kChunk];
    for (int64_t lo = 0; lo < n; lo += kChunk) {
        const int64_t len = std::min(kChunk, n - lo);
        const T lowest = exp_normal_floor<T>();  // in a register: the scan is then vectorised
        int any = 0;
        for (int64_t i = 0; i < len; ++i) any |= x[lo + i] < lowest;
        if (any) std::copy(x + lo, x + lo + len, below);
        Eigen::Map<Vec<T>>(y + lo, len) = Eigen::Map<const Vec<T>>(x + lo, len).exp();
        if (any)
            for (int64_t i = 0; i < len; ++i)
                if (exp_below_normal(below[i])) y[lo + i] = static_cast<T>(std::exp(static_cast<double>(below[i])));
    }
}

// The gradient-reduction rule of every broadcasting op: sums g over the axes along which `shape`
// was broadcast, giving a tensor of `shape` (g itself when nothing was broadcast).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace tg
