// Reductions over axes (sum, mean, max, min, logsumexp, var) and the row-wise ops of vugrad's
// course (row_sum, row_max, normalize).
#include <cmath>
#include <limits>

#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

namespace {

void require_matrix(const char* op, const Tensor& x) {
    if (x.ndim() != 2)
        throw std::invalid_argument(std::string(op) + ": expected a matrix (2 dimensions), got shape " +
                                    shape_str(x.shape()));
}

// A reduction over the axes of the attribute `axis` (None: all; () reduces over none, as numpy's
// axis=()). `kept` is x's shape with the reduced axes set to 1 (the output with keepdims),
// `count` the number of elements each output reduces.
struct Reduction {
    Shape kept, out;
    int64_t count = 1;
};

Reduction reduction(const Call& c) {
    const Tensor& x = c.in[0];
    const bool all = c.all_axes("axis");
    std::vector<bool> reduced(static_cast<size_t>(x.ndim()), all);
    if (!all)
        for (int64_t axis : c.integers("axis")) {
            const auto a = static_cast<size_t>(normalize_axis(axis, x.ndim(), c.name()));
            if (reduced[a]) throw std::invalid_argument(std::string(c.name()) + ": duplicate value in axis");
            reduced[a] = true;
        }
    Reduction r;
    for (size_t a = 0; a < reduced.size(); ++a) {
        r.kept.push_back(reduced[a] ? 1 : x.shape()[a]);
        if (reduced[a]) r.count *= x.shape()[a];
        else r.out.push_back(x.shape()[a]);
    }
    if (c.flag("keepdims")) r.out = r.kept;
    return r;
}

// Calls f(ix, ik) for every element ix of a tensor of `shape`, with ik the offset of the element of
// the reduced (kept) tensor it falls into. Visits ix in increasing order.
template <class F> void for_each_reduced(const Shape& shape, const Shape& kept, F f) {
    const auto s = broadcast_strides(kept, shape);
    walk(shape, s, s, [&](int64_t o, int64_t k, int64_t, int64_t n, int64_t sk, int64_t) {
        for (int64_t i = 0; i < n; ++i) f(o + i, k + i * sk);
    });
}

// Max (or min) over the reduced axes into `out` (kept shape), with the flat input index of the
// first extreme element in `arg`; nan wins, as in numpy.
template <class T, bool Max> void extreme(const Tensor& x, const Shape& kept, const Tensor& out, const Tensor& arg) {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    int64_t* pa = arg.data<int64_t>();
    std::fill(pa, pa + arg.numel(), int64_t{-1});
    for_each_reduced(x.shape(), kept, [&](int64_t i, int64_t k) {
        const T v = px[i];
        const bool better = Max ? v > po[k] : v < po[k];
        if (pa[k] < 0 || (!std::isnan(po[k]) && (better || std::isnan(v)))) {
            po[k] = v;
            pa[k] = i;
        }
    });
}

}  // namespace

Shapes shape_reduce(const Call& c) { return {reduction(c).out}; }

// Max and min have no identity element: reducing an empty axis to a non-empty output is an error.
Shapes shape_reduce_nonempty(const Call& c) {
    Reduction r = reduction(c);
    if (r.count == 0)  // as numpy: even when the output is empty, (0, 0) over axis 1
        throw std::invalid_argument(std::string(c.name()) + ": cannot reduce an empty axis of shape " +
                                    shape_str(c.in[0].shape()) + " (no identity element)");
    return {r.out};
}

void fwd_sum(Call& c) {
    const Reduction r = reduction(c);
    Tensor s = sum_to(c.in[0], r.kept);
    std::copy_n(static_cast<const char*>(s.raw()), s.nbytes(), static_cast<char*>(c.out[0].raw()));
}
// dL/dx = g broadcast back over the reduced axes
Grads bwd_sum(const Call& c, const Grads& g, const Need&) {
    const Reduction r = reduction(c);
    Tensor out = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g[0].data<T>();
        T* po = out.data<T>();
        for_each_reduced(out.shape(), r.kept, [&](int64_t i, int64_t k) { po[i] = pg[k]; });
    });
    return {out};
}

void fwd_mean(Call& c) {
    const Reduction r = reduction(c);
    Tensor s = sum_to(c.in[0], r.kept);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        vec<T>(c.out[0]) = cvec<T>(s) / static_cast<T>(r.count);
    });
}
// dL/dx = g / count, broadcast back over the reduced axes
Grads bwd_mean(const Call& c, const Grads& g, const Need& need) {
    Grads r = bwd_sum(c, g, need);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        vec<T>(r[0]) /= static_cast<T>(reduction(c).count);
    });
    return r;
}

template <bool Max> static void fwd_extreme(Call& c) {
    const Reduction r = reduction(c);
    c.aux = Tensor::empty(r.kept, DType::i64);
    with_dtype(c, [&](auto tag) { extreme<decltype(tag), Max>(c.in[0], r.kept, c.out[0], c.aux); });
}
// dL/dx = g at the first arg-max (arg-min) of each reduced group, 0 elsewhere
static Grads bwd_extreme(const Call& c, const Grads& g) {
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t* arg = c.aux.data<int64_t>();
        for (int64_t k = 0; k < c.aux.numel(); ++k) r.data<T>()[arg[k]] += g[0].data<T>()[k];
    });
    return {r};
}
void fwd_max(Call& c) { fwd_extreme<true>(c); }
Grads bwd_max(const Call& c, const Grads& g, const Need&) { return bwd_extreme(c, g); }
void fwd_min(Call& c) { fwd_extreme<false>(c); }
Grads bwd_min(const Call& c, const Grads& g, const Need&) { return bwd_extreme(c, g); }

// log(sum(exp(x))) = m + log(sum(exp(x - m))) with m the max: no overflow.
void fwd_logsumexp(Call& c) {
    const Reduction r = reduction(c);
    const Tensor& x = c.in[0];
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        Tensor m = Tensor::empty(r.kept, x.dtype());
        Tensor arg = Tensor::empty(r.kept, DType::i64);
        if (r.count > 0) extreme<T, true>(x, r.kept, m, arg);
        else m.fill(-std::numeric_limits<double>::infinity());
        std::vector<double> s(static_cast<size_t>(m.numel()), 0.0);  // wide accumulators
        const T *px = x.data<T>(), *pm = m.data<T>();
        for_each_reduced(x.shape(), r.kept, [&](int64_t i, int64_t k) { s[k] += std::exp(px[i] - pm[k]); });
        T* po = c.out[0].data<T>();
        for (int64_t k = 0; k < m.numel(); ++k)
            po[k] = std::isinf(pm[k]) ? pm[k] : static_cast<T>(pm[k] + std::log(s[k]));
    });
}
// dL/dx = g * exp(x - logsumexp(x)) (the softmax over the reduced axes)
Grads bwd_logsumexp(const Call& c, const Grads& g, const Need&) {
    const Reduction r = reduction(c);
    Tensor out = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T *px = c.in[0].data<T>(), *pl = c.out[0].data<T>(), *pg = g[0].data<T>();
        T* po = out.data<T>();
        for_each_reduced(out.shape(), r.kept, [&](int64_t i, int64_t k) { po[i] = pg[k] * std::exp(px[i] - pl[k]); });
    });
    return {out};
}

// numpy's divisor for the variance: count - ddof, but never below 0 (0 gives nan or inf, as numpy).
static double var_divisor(const Reduction& r, const Call& c) { return std::max(static_cast<double>(r.count) - c.real("ddof"), 0.0); }

// sum((x - mean)^2) / (count - ddof); the mean is kept in aux for the backward.
void fwd_var(Call& c) {
    const Reduction r = reduction(c);
    const Tensor& x = c.in[0];
    c.aux = sum_to(x, r.kept).clone();
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        vec<T>(c.aux) /= static_cast<T>(r.count);
        const T *px = x.data<T>(), *pm = c.aux.data<T>();
        std::vector<double> ss(static_cast<size_t>(c.aux.numel()), 0.0);  // wide accumulators
        for_each_reduced(x.shape(), r.kept, [&](int64_t i, int64_t k) {
            const double d = static_cast<double>(px[i]) - pm[k];
            ss[k] += d * d;
        });
        T* po = c.out[0].data<T>();
        for (size_t k = 0; k < ss.size(); ++k) po[k] = static_cast<T>(ss[k] / var_divisor(r, c));
    });
}
// dL/dx = g * 2 (x - mean) / (count - ddof)
Grads bwd_var(const Call& c, const Grads& g, const Need&) {
    const Reduction r = reduction(c);
    Tensor out = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T scale = T(2) / static_cast<T>(var_divisor(r, c));
        const T *px = c.in[0].data<T>(), *pm = c.aux.data<T>(), *pg = g[0].data<T>();
        T* po = out.data<T>();
        for_each_reduced(out.shape(), r.kept, [&](int64_t i, int64_t k) { po[i] = pg[k] * scale * (px[i] - pm[k]); });
    });
    return {out};
}

// ---- vugrad's row-wise ops on matrices ----

Shapes shape_matrix(const Call& c) {
    require_matrix(c.name(), c.in[0]);
    return {c.in[0].shape()};
}

Shapes shape_row_reduce(const Call& c) {
    require_matrix(c.name(), c.in[0]);
    return {Shape{c.in[0].dim(0)}};
}

Shapes shape_row_max(const Call& c) {
    require_matrix(c.name(), c.in[0]);
    if (c.in[0].dim(1) == 0 && c.in[0].dim(0) > 0)  // (no rows at all: an empty result, as row_sum's)
        throw std::invalid_argument(std::string(c.name()) + ": rows of shape " + shape_str(c.in[0].shape()) +
                                    " are empty and have no maximum");
    return {Shape{c.in[0].dim(0)}};
}

// Row sums of an (n, m) matrix, each pairwise in double: the same bits wherever the buffer starts
// (Eigen's vectorised sums start their packets where the alignment lets them: rowwise().sum()
// gave other bits for a row at another offset in the baseline copy, tests/test_differential.py).
template <class T, class F> Vec<T> row_sums(int64_t n, int64_t m, F&& term) {
    Vec<T> s(n);
    for (int64_t i = 0; i < n; ++i) s[i] = static_cast<T>(pairwise_sum(m, [&](int64_t j) { return term(i, j); }));
    return s;
}

void fwd_row_sum(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        auto xm = cmat<T>(x, x.dim(0), x.dim(1));
        mat<T>(c.out[0], x.dim(0), 1) = row_sums<T>(x.dim(0), x.dim(1), [&](int64_t i, int64_t j) { return xm(i, j); });
    });
}
// dL/dx[i, j] = g[i]
Grads bwd_row_sum(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::empty(x.shape(), x.dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        mat<T>(r, x.dim(0), x.dim(1)).colwise() = cmat<T>(g[0], x.dim(0), 1).col(0);
    });
    return {r};
}

void fwd_row_max(Call& c) {
    const auto& x = c.in[0];
    c.aux = Tensor::empty({x.dim(0), 1}, DType::i64);
    with_dtype(c, [&](auto tag) {
        extreme<decltype(tag), true>(x, {x.dim(0), 1}, c.out[0], c.aux);
    });
}
// dL/dx[i, j] = g[i] where j is the row's first argmax, 0 elsewhere
Grads bwd_row_max(const Call& c, const Grads& g, const Need&) { return bwd_extreme(c, g); }

void fwd_normalize(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        auto xm = cmat<T>(x, x.dim(0), x.dim(1)).array();
        const Vec<T> s = row_sums<T>(x.dim(0), x.dim(1), [&](int64_t i, int64_t j) { return xm(i, j); });
        mat<T>(c.out[0], x.dim(0), x.dim(1)).array() = xm.colwise() / s;
    });
}
// y = x / s with s the row sums: dL/dx[i, j] = g[i, j] / s[i] - sum_k(g[i, k] x[i, k]) / s[i]^2,
// computed as (g[i, j] - sum_k(g[i, k] y[i, k])) / s[i]: s^2 would overflow for row sums above
// 1.8e19 in float32 (softmax of logits near 45) and underflow below 1e-19.
Grads bwd_normalize(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::empty(x.shape(), x.dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = x.dim(0), m = x.dim(1);
        auto xm = cmat<T>(x, n, m).array();
        auto gm = cmat<T>(g[0], n, m).array();
        const Vec<T> s = row_sums<T>(n, m, [&](int64_t i, int64_t j) { return xm(i, j); });
        const Vec<T> dot = row_sums<T>(n, m, [&](int64_t i, int64_t j) { return gm(i, j) * (xm(i, j) / s[i]); });
        mat<T>(r, n, m).array() = (gm.colwise() - dot).colwise() / s;
    });
    return {r};
}

}  // namespace tg
