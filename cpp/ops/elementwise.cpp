// Element-wise kernels: binary ops with numpy broadcasting, unary functions.
#include <cmath>

#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
    const size_t nd = std::max(a.size(), b.size());
    Shape out(nd);
    for (size_t i = 0; i < nd; ++i) {
        const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
        const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
        if (da != db && da != 1 && db != 1)
            throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                        " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
    std::vector<int64_t> strides(out.size(), 0);
    int64_t step = 1;
    const size_t offset = out.size() - shape.size();
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i + offset] = shape[i] == 1 ? 0 : step;
        step *= shape[i];
    }
    return strides;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
    if (g.shape() == shape) return g;
    Tensor r = Tensor::zeros(shape, g.dtype());
    float_dispatch(g.dtype(), "sum_to", [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g.data<T>();
        T* pr = r.data<T>();
        const auto sr = broadcast_strides(shape, g.shape());
        walk(g.shape(), sr, sr, [&](int64_t o, int64_t ir, int64_t, int64_t n, int64_t s, int64_t) {
            if (s == 0) {
                T acc = 0;
                for (int64_t i = 0; i < n; ++i) acc += pg[o + i];
                pr[ir] += acc;
            } else {
                for (int64_t i = 0; i < n; ++i) pr[ir + i * s] += pg[o + i];
            }
        });
    });
    return r;
}

std::vector<Shape> shape_broadcast(const char* op, const Call& c) {
    return {broadcast_shape(c.in[0].shape(), c.in[1].shape(), op)};
}

std::vector<Shape> shape_same(const char*, const Call& c) { return {c.in[0].shape()}; }

// ---- binary ----

void fwd_add(Call& c) {
    with_dtype(c, "add", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a + b; });
    });
}
// dL/da = sum_to(g), dL/db = sum_to(g)
std::vector<Tensor> bwd_add(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    return {sum_to(g[0], c.in[0].shape()), sum_to(g[0], c.in[1].shape())};
}

void fwd_sub(Call& c) {
    with_dtype(c, "sub", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a - b; });
    });
}
// dL/da = sum_to(g), dL/db = -sum_to(g)
std::vector<Tensor> bwd_sub(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>& need) {
    Tensor gb;
    if (need[1]) {
        gb = sum_to(g[0], c.in[1].shape()).clone();
        with_dtype(c, "sub", [&](auto tag) { vec<decltype(tag)>(gb) *= -1; });
    }
    return {sum_to(g[0], c.in[0].shape()), gb};
}

void fwd_mul(Call& c) {
    with_dtype(c, "mul", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a * b; });
    });
}
// dL/da = sum_to(g * b), dL/db = sum_to(g * a)
std::vector<Tensor> bwd_mul(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>& need) {
    std::vector<Tensor> r(2);
    with_dtype(c, "mul", [&](auto tag) {
        using T = decltype(tag);
        auto times = [](T x, T y) { return x * y; };
        if (need[0]) r[0] = sum_to(broadcast_new<T>(g[0], c.in[1], times), c.in[0].shape());
        if (need[1]) r[1] = sum_to(broadcast_new<T>(g[0], c.in[0], times), c.in[1].shape());
    });
    return r;
}

void fwd_div(Call& c) {
    with_dtype(c, "div", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a / b; });
    });
}
// dL/da = sum_to(g / b), dL/db = sum_to(-g * out / b)
std::vector<Tensor> bwd_div(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>& need) {
    std::vector<Tensor> r(2);
    with_dtype(c, "div", [&](auto tag) {
        using T = decltype(tag);
        if (need[0])
            r[0] = sum_to(broadcast_new<T>(g[0], c.in[1], [](T x, T y) { return x / y; }), c.in[0].shape());
        if (need[1]) {
            Tensor t = broadcast_new<T>(c.out[0], c.in[1], [](T q, T b) { return -q / b; });
            vec<T>(t) *= cvec<T>(g[0]);
            r[1] = sum_to(t, c.in[1].shape());
        }
    });
    return r;
}

void fwd_pow(Call& c) {
    with_dtype(c, "pow", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return std::pow(a, b); });
    });
}
// dL/da = sum_to(g * b * a^(b-1)), dL/db = sum_to(g * a^b * log(a)), taken as 0 where a == 0
std::vector<Tensor> bwd_pow(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>& need) {
    std::vector<Tensor> r(2);
    with_dtype(c, "pow", [&](auto tag) {
        using T = decltype(tag);
        if (need[0]) {
            Tensor t = broadcast_new<T>(c.in[0], c.in[1], [](T a, T b) { return b == 0 ? T(0) : b * std::pow(a, b - 1); });
            vec<T>(t) *= cvec<T>(g[0]);
            r[0] = sum_to(t, c.in[0].shape());
        }
        if (need[1]) {
            Tensor t = broadcast_new<T>(c.in[0], c.out[0], [](T a, T p) { return a == 0 ? T(0) : p * std::log(a); });
            vec<T>(t) *= cvec<T>(g[0]);
            r[1] = sum_to(t, c.in[1].shape());
        }
    });
    return r;
}

// ---- unary ----

void fwd_neg(Call& c) {
    with_dtype(c, "neg", [&](auto tag) { vec<decltype(tag)>(c.out[0]) = -cvec<decltype(tag)>(c.in[0]); });
}
// dL/dx = -g
std::vector<Tensor> bwd_neg(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, "neg", [&](auto tag) { vec<decltype(tag)>(r) = -cvec<decltype(tag)>(g[0]); });
    return {r};
}

void fwd_exp(Call& c) {
    with_dtype(c, "exp", [&](auto tag) { vec<decltype(tag)>(c.out[0]) = cvec<decltype(tag)>(c.in[0]).exp(); });
}
// dL/dx = g * exp(x), reusing the output
std::vector<Tensor> bwd_exp(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, "exp", [&](auto tag) {
        using T = decltype(tag);
        vec<T>(r) = cvec<T>(g[0]) * cvec<T>(c.out[0]);
    });
    return {r};
}

void fwd_log(Call& c) {
    with_dtype(c, "log", [&](auto tag) { vec<decltype(tag)>(c.out[0]) = cvec<decltype(tag)>(c.in[0]).log(); });
}
// dL/dx = g / x
std::vector<Tensor> bwd_log(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, "log", [&](auto tag) {
        using T = decltype(tag);
        vec<T>(r) = cvec<T>(g[0]) / cvec<T>(c.in[0]);
    });
    return {r};
}

// s = 1 / (1 + exp(-x)); exp overflowing to inf gives exactly 0, so no nan for large |x|.
void fwd_sigmoid(Call& c) {
    with_dtype(c, "sigmoid", [&](auto tag) {
        using T = decltype(tag);
        vec<T>(c.out[0]) = T(1) / (T(1) + (-cvec<T>(c.in[0])).exp());
    });
}
// dL/dx = g * s * (1 - s), s = sigmoid(x)
std::vector<Tensor> bwd_sigmoid(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, "sigmoid", [&](auto tag) {
        using T = decltype(tag);
        auto s = cvec<T>(c.out[0]);
        vec<T>(r) = cvec<T>(g[0]) * s * (T(1) - s);
    });
    return {r};
}

// Views (id, reshape-like ops) pass the gradient through with the input's shape.
std::vector<Tensor> bwd_view(const Call& c, const std::vector<Tensor>& g, const std::vector<bool>&) {
    return {g[0].view(c.in[0].shape())};
}

}  // namespace tg
