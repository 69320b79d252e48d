// Fused neural-network kernels: softmax, log-softmax and the losses, each one forward/backward pair.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

namespace {

// The last axis is the one normalised: rows = all other axes flattened.
int64_t cols_of(const Tensor& t) { return t.ndim() ? t.dim(t.ndim() - 1) : 1; }
int64_t rows_of(const Tensor& t) { return cols_of(t) ? t.numel() / cols_of(t) : 0; }

bool is_mean(const Call& c) { return c.choice("reduction") == "mean"; }

// Scale of the upstream scalar gradient for a loss over `count` terms.
template <class T> T loss_scale(const Call& c, const Tensor& g, int64_t count) {
    const T gv = static_cast<T>(g.item());
    return is_mean(c) ? gv / static_cast<T>(count) : gv;
}

// The loss from the sum of its terms (accumulated in double, pairwise_sum), rounded once.
template <class T> T finish(const Call& c, double total, int64_t count) {
    return static_cast<T>(is_mean(c) ? total / static_cast<double>(count) : total);
}

// log(v) clamped at -100 (PyTorch's convention: p = 0 gives a finite loss), exact for subnormal v,
// where a vectorised float log returns log(FLT_MIN).
double clamped_log(double v) { return std::max(std::log(v), -100.0); }
double clamped_log1m(double v) { return std::max(std::log1p(-v), -100.0); }  // log(1 - v), exact near 0

void require_same_shape(const char* op, const Tensor& a, const Tensor& b) {
    if (a.shape() != b.shape())
        throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(a.shape()) +
                                    " and target of shape " + shape_str(b.shape()) + " differ");
}

}  // namespace

Shapes shape_softmax(const Call& c) {
    const char* op = c.name();
    if (c.in[0].ndim() == 0) throw std::invalid_argument(std::string(op) + ": needs at least 1 dimension, got a scalar");
    return {c.in[0].shape()};
}

namespace {

// The row-wise steps of the softmax family, as plain loops over an n x m block: Eigen's row-wise
// reductions and broadcasts cost more than the arithmetic on short rows (a (128, 2) log-softmax
// took 4 us, an exp of all its elements 1 us). The kernels run them with m a compile-time constant
// when the rows are short (with_short_length, common.h): M is int64_t or an integral_constant.

// y = x - the maximum of x's row (y may be x); the maxima go to mx unless it is null.
template <class T, class M> void subtract_row_max(const T* x, T* y, int64_t n, M m, T* mx = nullptr) {
    for (int64_t i = 0; i < n; ++i) {
        const T* xi = x + i * m;
        T top = m ? xi[0] : T(0);
        for (int64_t j = 1; j < m; ++j) top = std::max(top, xi[j]);
        for (int64_t j = 0; j < m; ++j) y[i * m + j] = xi[j] - top;
        if (mx) mx[i] = top;
    }
}

// The sum of each row into s[0, n), in double and rounded once: pairwise_sum, which for rows of
// fewer than 8 adds them in order, as this does without its set-up.
template <class T, class M> void row_sums(const T* x, int64_t n, M m, T* s) {
    for (int64_t i = 0; i < n; ++i) {
        const T* xi = x + i * m;
        if (m < 8) {
            double sum = 0;
            for (int64_t j = 0; j < m; ++j) sum += static_cast<double>(xi[j]);
            s[i] = static_cast<T>(sum);
        } else {
            s[i] = static_cast<T>(pairwise_sum(m, [&](int64_t j) { return xi[j]; }));
        }
    }
}

// n values of a row-wise step: from the buffer cache (an Eigen array of 128 doubles went to
// malloc's large bins, which consolidate the freed small blocks first: 2600 instructions).
template <class T> Tensor per_row(int64_t n) {
    return Tensor::empty(Shape{n}, std::is_same_v<T, float> ? DType::f32 : DType::f64);
}

}  // namespace

// y = exp(x - max) / sum(exp(x - max)) along the last axis
void fwd_softmax(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = rows_of(c.in[0]);
        with_short_length(cols_of(c.in[0]), [&](auto m) {
            T* y = c.out[0].data<T>();
            subtract_row_max(c.in[0].data<T>(), y, n, m);
            exp_of(y, y, n * m);
            const Tensor sums = per_row<T>(n);
            const T* sum = sums.data<T>();
            row_sums(y, n, m, sums.data<T>());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < m; ++j) y[i * m + j] /= sum[i];
        });
    });
}
// dL/dx = y * (g - sum(g * y)) per row
Grads bwd_softmax(const Call& c, const Grads& g, const Need&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = rows_of(c.in[0]);
        with_short_length(cols_of(c.in[0]), [&](auto m) {
            const T *y = c.out[0].data<T>(), *pg = g[0].data<T>();
            T* pr = r.data<T>();
            for (int64_t i = 0; i < n * m; ++i) pr[i] = pg[i] * y[i];
            const Tensor dots = per_row<T>(n);
            const T* dot = dots.data<T>();
            row_sums(pr, n, m, dots.data<T>());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < m; ++j) pr[i * m + j] = y[i * m + j] * (pg[i * m + j] - dot[i]);
        });
    });
    return {r};
}

// y = x - max - log(sum(exp(x - max))) along the last axis
void fwd_log_softmax(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = rows_of(c.in[0]);
        with_short_length(cols_of(c.in[0]), [&](auto m) {
            T* y = c.out[0].data<T>();
            subtract_row_max(c.in[0].data<T>(), y, n, m);
            Tensor e = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
            exp_of(y, e.data<T>(), n * m);
            const Tensor sums = per_row<T>(n);
            T* lse = sums.data<T>();
            row_sums(e.data<T>(), n, m, lse);
            vec<T>(sums) = cvec<T>(sums).log();  // vectorised: a sum holds exp(0) = 1, never below the normal range
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < m; ++j) y[i * m + j] -= lse[i];
        });
    });
}
// dL/dx = g - exp(y) * sum(g) per row
Grads bwd_log_softmax(const Call& c, const Grads& g, const Need&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = rows_of(c.in[0]);
        with_short_length(cols_of(c.in[0]), [&](auto m) {
            const T* pg = g[0].data<T>();
            T* pr = r.data<T>();
            const Tensor sums = per_row<T>(n);
            const T* gsum = sums.data<T>();
            row_sums(pg, n, m, sums.data<T>());
            exp_of(c.out[0].data<T>(), pr, n * m);  // the softmax
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < m; ++j) pr[i * m + j] = pg[i * m + j] - pr[i * m + j] * gsum[i];
        });
    });
    return {r};
}

// cross_entropy(logits (n, C), targets (n,) in [0, C), reduction):
// mean or sum over rows of logsumexp(x_i) - x_i[t_i]. The softmax is kept in aux for the backward.
Shapes shape_cross_entropy(const Call& c) {
    const char* op = c.name();
    const Tensor &x = c.in[0], &t = c.attrs.index;
    if (x.ndim() != 2)
        throw std::invalid_argument(std::string(op) + ": expected logits of shape (n, classes), got " + shape_str(x.shape()));
    if (!t.defined() || t.dtype() != DType::i64) throw std::out_of_range(std::string(op) + ": targets must be integer class indices");
    if (t.ndim() != 1 || t.dim(0) != x.dim(0))
        throw std::invalid_argument(std::string(op) + ": expected " + std::to_string(x.dim(0)) +
                                    " targets for logits of shape " + shape_str(x.shape()) + ", got shape " + shape_str(t.shape()));
    const int64_t* p = t.data<int64_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
        if (p[i] < 0 || p[i] >= x.dim(1))
            throw std::out_of_range(std::string(op) + ": target " + std::to_string(p[i]) + " in row " + std::to_string(i) +
                                    " is not a class index in [0, " + std::to_string(x.dim(1)) + ")");
    return {Shape{}};
}

void fwd_cross_entropy(Call& c) {
    const Tensor& x = c.in[0];
    c.aux = Tensor::empty(x.shape(), x.dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = x.dim(0);
        with_short_length(x.dim(1), [&](auto m) {
            const T* px = x.data<T>();
            T* p = c.aux.data<T>();
            const Tensor maxima = per_row<T>(n), sums = per_row<T>(n);
            const T *mx = maxima.data<T>(), *s = sums.data<T>();
            subtract_row_max(px, p, n, m, maxima.data<T>());
            exp_of(p, p, n * m);
            row_sums(p, n, m, sums.data<T>());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < m; ++j) p[i * m + j] /= s[i];
            const int64_t* t = c.attrs.index.data<int64_t>();
            // (max - x_t) + log(sum): forming logsumexp first would cancel (1e30 + log 2 - 1e30 = 0)
            const double total = pairwise_sum(n, [&](int64_t i) {
                return (static_cast<double>(mx[i]) - px[i * m + t[i]]) + std::log(static_cast<double>(s[i]));
            });
            *c.out[0].data<T>() = finish<T>(c, total, n);
        });
    });
}
// dL/dx = g * (softmax(x) - onehot(t)) (divided by n for the mean)
Grads bwd_cross_entropy(const Call& c, const Grads& g, const Need&) {
    Tensor r = c.aux.clone();
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = r.dim(0), m = r.dim(1);
        const int64_t* t = c.attrs.index.data<int64_t>();
        auto rm = mat<T>(r, n, m);
        for (int64_t i = 0; i < n; ++i) rm(i, t[i]) -= T(1);
        rm *= loss_scale<T>(c, g[0], n);
    });
    return {r};
}

Shapes shape_pair_loss(const Call& c) {
    const char* op = c.name();
    require_same_shape(op, c.in[0], c.in[1]);
    return {Shape{}};
}

// binary_cross_entropy(p, y) = -(y log p + (1 - y) log(1 - p)), each log clamped at -100 so p = 0 or
// 1 gives a finite loss
void fwd_binary_cross_entropy(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T *p = c.in[0].data<T>(), *y = c.in[1].data<T>();
        const double total = pairwise_sum(c.in[0].numel(), [&](int64_t i) {
            const double yi = y[i];
            return -(yi * clamped_log(p[i]) + (1 - yi) * clamped_log1m(p[i]));
        });
        *c.out[0].data<T>() = finish<T>(c, total, c.in[0].numel());
    });
}
// dL/dp = g (p - y) / max(p (1 - p), 1e-12), dL/dy = g (log(1 - p) - log p) (logs clamped)
Grads bwd_binary_cross_entropy(const Call& c, const Grads& g, const Need& need) {
    Grads r(2);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T s = loss_scale<T>(c, g[0], c.in[0].numel());
        auto p = cvec<T>(c.in[0]);
        auto y = cvec<T>(c.in[1]);
        if (need[0]) {
            r[0] = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
            vec<T>(r[0]) = s * (p - y) / (p * (T(1) - p)).max(T(1e-12));
        }
        if (need[1]) {
            r[1] = Tensor::empty(c.in[1].shape(), c.in[1].dtype());
            const T* pp = c.in[0].data<T>();
            T* out = r[1].data<T>();
            for (int64_t i = 0; i < c.in[0].numel(); ++i)
                out[i] = static_cast<T>(s * (clamped_log1m(pp[i]) - clamped_log(pp[i])));
        }
    });
    return r;
}

// binary_cross_entropy_with_logits(z, y) = max(z, 0) - z y + log(1 + exp(-|z|)): stable for any z
void fwd_binary_cross_entropy_with_logits(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T *z = c.in[0].data<T>(), *y = c.in[1].data<T>();
        const double total = pairwise_sum(c.in[0].numel(), [&](int64_t i) {
            const double zi = z[i];
            return std::max(zi, 0.0) - zi * y[i] + std::log1p(std::exp(-std::abs(zi)));
        });
        *c.out[0].data<T>() = finish<T>(c, total, c.in[0].numel());
    });
}
// dL/dz = g (sigmoid(z) - y), dL/dy = -g z
Grads bwd_binary_cross_entropy_with_logits(const Call& c, const Grads& g, const Need& need) {
    Grads r(2);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T s = loss_scale<T>(c, g[0], c.in[0].numel());
        auto z = cvec<T>(c.in[0]);
        if (need[0]) {
            r[0] = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
            vec<T>(r[0]) = s * (T(1) / (T(1) + (-z).exp()) - cvec<T>(c.in[1]));
        }
        if (need[1]) {
            r[1] = Tensor::empty(c.in[1].shape(), c.in[1].dtype());
            vec<T>(r[1]) = -s * z;
        }
    });
    return r;
}

// mse_loss(p, t) = mean or sum of (p - t)^2
void fwd_mse_loss(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T *p = c.in[0].data<T>(), *t = c.in[1].data<T>();
        const double total = pairwise_sum(c.in[0].numel(), [&](int64_t i) {
            const double d = static_cast<double>(p[i]) - t[i];
            return d * d;
        });
        *c.out[0].data<T>() = finish<T>(c, total, c.in[0].numel());
    });
}
// dL/dp = 2 g (p - t), dL/dt = -2 g (p - t)
Grads bwd_mse_loss(const Call& c, const Grads& g, const Need& need) {
    Grads r(2);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T s = T(2) * loss_scale<T>(c, g[0], c.in[0].numel());
        auto d = cvec<T>(c.in[0]) - cvec<T>(c.in[1]);
        if (need[0]) {
            r[0] = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
            vec<T>(r[0]) = s * d;
        }
        if (need[1]) {
            r[1] = Tensor::empty(c.in[1].shape(), c.in[1].dtype());
            vec<T>(r[1]) = -s * d;
        }
    });
    return r;
}

}  // namespace tg
