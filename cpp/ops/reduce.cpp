// Reductions: sum of all elements, and the row-wise ops of vugrad's course (row_sum, row_max, normalize).
#include <cmath>

#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

static void require_matrix(const char* op, const Tensor& x) {
    if (x.ndim() != 2)
        throw std::invalid_argument(std::string(op) + ": expected a matrix (2 dimensions), got shape " +
                                    shape_str(x.shape()));
}

std::vector<Shape> shape_scalar(const char*, const Call&) { return {Shape{}}; }

std::vector<Shape> shape_matrix(const char* op, const Call& c) {
    require_matrix(op, c.in[0]);
    return {c.in[0].shape()};
}

std::vector<Shape> shape_row_reduce(const char* op, const Call& c) {
    require_matrix(op, c.in[0]);
    return {Shape{c.in[0].dim(0)}};
}

std::vector<Shape> shape_row_max(const char* op, const Call& c) {
    require_matrix(op, c.in[0]);
    if (c.in[0].dim(1) == 0 && c.in[0].dim(0) > 0)
        throw std::invalid_argument(std::string(op) + ": rows of shape " + shape_str(c.in[0].shape()) +
                                    " are empty and have no maximum");
    return {Shape{c.in[0].dim(0)}};
}

void fwd_sum(Call& c) {
    with_dtype(c, "sum", [&](auto tag) {
        using T = decltype(tag);
        *c.out[0].data<T>() = cvec<T>(c.in[0]).sum();
    });
}
// dL/dx = g everywhere (g is a scalar)
Grads bwd_sum(const Call& c, const Grads& g, const Need&) {
    return {Tensor::full(c.in[0].shape(), g[0].dtype(), g[0].item())};
}

void fwd_row_sum(Call& c) {
    with_dtype(c, "row_sum", [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        mat<T>(c.out[0], x.dim(0), 1) = cmat<T>(x, x.dim(0), x.dim(1)).rowwise().sum();
    });
}
// dL/dx[i, j] = g[i]
Grads bwd_row_sum(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::empty(x.shape(), x.dtype());
    with_dtype(c, "row_sum", [&](auto tag) {
        using T = decltype(tag);
        mat<T>(r, x.dim(0), x.dim(1)).colwise() = cmat<T>(g[0], x.dim(0), 1).col(0);
    });
    return {r};
}

void fwd_row_max(Call& c) {
    const auto& x = c.in[0];
    const int64_t n = x.dim(0), m = x.dim(1);
    c.aux = Tensor::empty({n}, DType::i64);
    with_dtype(c, "row_max", [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* po = c.out[0].data<T>();
        int64_t* arg = c.aux.data<int64_t>();
        for (int64_t i = 0; i < n; ++i) {  // first maximum wins, and nan propagates, as in numpy
            const T* row = px + i * m;
            int64_t best = 0;
            for (int64_t j = 1; j < m && !std::isnan(row[best]); ++j)
                if (row[j] > row[best] || std::isnan(row[j])) best = j;
            arg[i] = best;
            po[i] = row[best];
        }
    });
}
// dL/dx[i, j] = g[i] where j is the row's argmax, 0 elsewhere
Grads bwd_row_max(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::zeros(x.shape(), x.dtype());
    with_dtype(c, "row_max", [&](auto tag) {
        using T = decltype(tag);
        const int64_t* arg = c.aux.data<int64_t>();
        for (int64_t i = 0, n = x.dim(0); i < n; ++i) r.data<T>()[i * x.dim(1) + arg[i]] = g[0].data<T>()[i];
    });
    return {r};
}

void fwd_normalize(Call& c) {
    with_dtype(c, "normalize", [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        auto xm = cmat<T>(x, x.dim(0), x.dim(1)).array();
        Vec<T> s = xm.rowwise().sum();
        mat<T>(c.out[0], x.dim(0), x.dim(1)).array() = xm.colwise() / s;
    });
}
// y = x / s with s the row sums: dL/dx[i, j] = g[i, j] / s[i] - sum_k(g[i, k] x[i, k]) / s[i]^2
Grads bwd_normalize(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::empty(x.shape(), x.dtype());
    with_dtype(c, "normalize", [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = x.dim(0), m = x.dim(1);
        auto xm = cmat<T>(x, n, m).array();
        auto gm = cmat<T>(g[0], n, m).array();
        Vec<T> s = xm.rowwise().sum();
        Vec<T> dot = (gm * xm).rowwise().sum();
        Vec<T> corr = dot / (s * s);
        mat<T>(r, n, m).array() = (gm.colwise() / s).colwise() - corr;
    });
    return {r};
}

}  // namespace tg
