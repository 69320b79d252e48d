// Element-wise kernels: binary ops with numpy broadcasting, comparisons, unary functions.
#include <cmath>
#include <limits>

#include "ops/common.h"
#include "ops/kernels.h"
#include "parallel.h"

namespace tg {

Shapes shape_broadcast(const Call& c) {
    return {broadcast_shape(c.in[0].shape(), c.in[1].shape(), c.name())};
}

Shapes shape_same(const Call& c) { return {c.in[0].shape()}; }

namespace {

// out = f(a, b) over the broadcast of the two inputs.
template <class F> void binary_fwd(Call& c, F f) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[1], c.out[0], [&](T a, T b) { return f(a, b); });
    });
}

// Gradients of a broadcasting binary op from its local derivatives: da(a, b, out) and db(a, b, out)
// are evaluated per output element, multiplied by g, then summed back to each input's shape.
template <class DA, class DB>
Grads binary_bwd(const Call& c, const Grads& g, const Need& need, DA da, DB db) {
    Grads r(2);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const Tensor& out = c.out[0];
        const T* pa = c.in[0].data<T>();
        const T* pb = c.in[1].data<T>();
        const T* po = out.data<T>();
        const T* pg = g[0].data<T>();
        const auto sa = broadcast_strides(c.in[0].shape(), out.shape());
        const auto sb = broadcast_strides(c.in[1].shape(), out.shape());
        auto local = [&](auto d) {
            Tensor t = Tensor::empty(out.shape(), out.dtype());
            T* pt = t.data<T>();
            walk(out.shape(), sa, sb, [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t s1, int64_t s2) {
                for (int64_t i = 0; i < n; ++i) pt[o + i] = pg[o + i] * d(pa[ia + i * s1], pb[ib + i * s2], po[o + i]);
            });
            return t;
        };
        if (need[0]) r[0] = sum_to(local(da), c.in[0].shape());
        if (need[1]) r[1] = sum_to(local(db), c.in[1].shape());
    });
    return r;
}

// out = f(x) for Eigen array expressions; f also gets a T so that it can write constants. Large
// tensors are done in chunks on the engine's threads (parallel_for, which never waits for a late
// thread; an OpenMP region did, and cost 12 ms per 0.1 ms kernel under load: thread_pools.py).
template <class F> void unary_fwd(Call& c, F f) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        parallel_for(c.out[0].numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
            vec<T>(c.out[0], lo, hi) = f(cvec<T>(c.in[0], lo, hi), T{});
        });
    });
}

// dL/dx = f(g, x, y, T) with y the output, all as Eigen arrays.
template <class F> Grads unary_bwd(const Call& c, const Grads& g, F f) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        parallel_for(r.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
            vec<T>(r, lo, hi) = f(cvec<T>(g[0], lo, hi), cvec<T>(c.in[0], lo, hi), cvec<T>(c.out[0], lo, hi), T{});
        });
    });
    return {r};
}

}  // namespace

// ---- binary, broadcasting ----

void fwd_add(Call& c) { binary_fwd(c, [](auto a, auto b) { return a + b; }); }
// dL/da = sum_to(g), dL/db = sum_to(g): no local derivative to multiply, so no pass over the data
Grads bwd_add(const Call& c, const Grads& g, const Need&) {
    return {sum_to(g[0], c.in[0].shape()), sum_to(g[0], c.in[1].shape())};
}

void fwd_subtract(Call& c) { binary_fwd(c, [](auto a, auto b) { return a - b; }); }
// dL/da = sum_to(g), dL/db = -sum_to(g)
Grads bwd_subtract(const Call& c, const Grads& g, const Need& need) {
    Tensor gb;
    if (need[1]) {
        gb = sum_to(g[0], c.in[1].shape()).clone();
        with_dtype(c, [&](auto tag) { vec<decltype(tag)>(gb) *= -1; });
    }
    return {sum_to(g[0], c.in[0].shape()), gb};
}

void fwd_multiply(Call& c) { binary_fwd(c, [](auto a, auto b) { return a * b; }); }
// dL/da = g * b, dL/db = g * a
Grads bwd_multiply(const Call& c, const Grads& g, const Need& need) {
    return binary_bwd(c, g, need, [](auto, auto b, auto) { return b; }, [](auto a, auto, auto) { return a; });
}

void fwd_divide(Call& c) { binary_fwd(c, [](auto a, auto b) { return a / b; }); }
// dL/da = g / b, dL/db = -g * (a / b) / b
Grads bwd_divide(const Call& c, const Grads& g, const Need& need) {
    return binary_bwd(c, g, need, [](auto, auto b, auto) { return 1 / b; },
                      [](auto, auto b, auto q) { return -q / b; });
}

// numpy computes a ** b with sqrt when b has one element equal to 0.5, so (-inf) ** 0.5 is nan
// (pow gives inf) and (-0.0) ** 0.5 is -0.0; an exponent of several elements goes through pow.
void fwd_power(Call& c) {
    bool half = false;
    if (c.in[1].numel() == 1)
        float_dispatch(c.in[1].dtype(), c.name(), [&](auto tag) { half = c.in[1].data<decltype(tag)>()[0] == decltype(tag)(0.5); });
    if (half) binary_fwd(c, [](auto a, auto) { return std::sqrt(a); });
    else binary_fwd(c, [](auto a, auto b) { return std::pow(a, b); });
}
// dL/da = g * b * a^(b-1), dL/db = g * a^b * log(a) (0 where a == 0, the limit for b > 0)
Grads bwd_power(const Call& c, const Grads& g, const Need& need) {
    return binary_bwd(
        c, g, need, [](auto a, auto b, auto) { return b == 0 ? decltype(a)(0) : b * std::pow(a, b - 1); },
        [](auto a, auto, auto p) { return a == 0 ? decltype(a)(0) : p * std::log(a); });
}

void fwd_maximum(Call& c) {
    binary_fwd(c, [](auto a, auto b) { return (a > b || std::isnan(a)) ? a : b; });
}
// dL/da = g where a > b, g/2 where a == b (ties share), else 0; dL/db likewise
Grads bwd_maximum(const Call& c, const Grads& g, const Need& need) {
    auto share = [](auto x, auto y) { return decltype(x)(x > y ? 1 : x == y ? 0.5 : 0); };
    return binary_bwd(c, g, need, [share](auto a, auto b, auto) { return share(a, b); },
                      [share](auto a, auto b, auto) { return share(b, a); });
}

void fwd_minimum(Call& c) {
    binary_fwd(c, [](auto a, auto b) { return (a < b || std::isnan(a)) ? a : b; });
}
// dL/da = g where a < b, g/2 where a == b, else 0; dL/db likewise
Grads bwd_minimum(const Call& c, const Grads& g, const Need& need) {
    auto share = [](auto x, auto y) { return decltype(x)(x < y ? 1 : x == y ? 0.5 : 0); };
    return binary_bwd(c, g, need, [share](auto a, auto b, auto) { return share(a, b); },
                      [share](auto a, auto b, auto) { return share(b, a); });
}

// Comparisons give 1.0 or 0.0 in the inputs' float dtype and have no gradient.
void fwd_equal(Call& c) { binary_fwd(c, [](auto a, auto b) { return decltype(a)(a == b); }); }
void fwd_not_equal(Call& c) { binary_fwd(c, [](auto a, auto b) { return decltype(a)(a != b); }); }
void fwd_less(Call& c) { binary_fwd(c, [](auto a, auto b) { return decltype(a)(a < b); }); }
void fwd_less_equal(Call& c) { binary_fwd(c, [](auto a, auto b) { return decltype(a)(a <= b); }); }
void fwd_greater(Call& c) { binary_fwd(c, [](auto a, auto b) { return decltype(a)(a > b); }); }
void fwd_greater_equal(Call& c) {
    binary_fwd(c, [](auto a, auto b) { return decltype(a)(a >= b); });
}

// ---- unary ----

void fwd_negative(Call& c) { unary_fwd(c, [](auto x, auto) { return -x; }); }
// dL/dx = -g
Grads bwd_negative(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto, auto, auto) { return -g; });
}

// Eigen's vectorised exp and log stop at the normal range (exp(-inf) gives 5.6e-309, log of a
// subnormal is off); elements outside it are redone with the C library, as numpy computes them.
template <class F> static void redo_outside_normal(Call& c, F outside, double (*exact)(double)) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        T* y = c.out[0].data<T>();
        for (int64_t i = 0, n = c.out[0].numel(); i < n; ++i)
            if (outside(x[i])) y[i] = static_cast<T>(exact(static_cast<double>(x[i])));
    });
}

void fwd_exp(Call& c) {
    unary_fwd(c, [](auto x, auto) { return x.exp(); });
    redo_outside_normal(c, [](auto v) { return exp_below_normal(v); }, [](double v) { return std::exp(v); });
}
// dL/dx = g * exp(x), reusing the output
Grads bwd_exp(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto, auto y, auto) { return g * y; });
}

void fwd_log(Call& c) {
    unary_fwd(c, [](auto x, auto) { return x.log(); });
    redo_outside_normal(c, [](auto v) { return v > 0 && v < std::numeric_limits<decltype(v)>::min(); },
                        [](double v) { return std::log(v); });
}
// dL/dx = g / x
Grads bwd_log(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto x, auto, auto) { return g / x; });
}

// log(1 + x), accurate for small |x|, where forming 1 + x first would round x away
void fwd_log1p(Call& c) { unary_fwd(c, [](auto x, auto) { return x.log1p(); }); }
// dL/dx = g / (1 + x)
Grads bwd_log1p(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto x, auto, auto t) { return g / (decltype(t)(1) + x); });
}

void fwd_sqrt(Call& c) { unary_fwd(c, [](auto x, auto) { return x.sqrt(); }); }
// dL/dx = g / (2 sqrt(x))
Grads bwd_sqrt(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto, auto y, auto t) { return g / (decltype(t)(2) * y); });
}

void fwd_abs(Call& c) { unary_fwd(c, [](auto x, auto) { return x.abs(); }); }
// dL/dx = g * sign(x) (0 at 0)
Grads bwd_abs(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto x, auto, auto) { return g * x.sign(); });
}

void fwd_square(Call& c) { unary_fwd(c, [](auto x, auto) { return x.square(); }); }
// dL/dx = 2 g x
Grads bwd_square(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto x, auto, auto t) { return decltype(t)(2) * g * x; });
}

// s = 1 / (1 + exp(-x)); exp overflowing to inf gives exactly 0, so no nan for large |x|.
void fwd_sigmoid(Call& c) {
    unary_fwd(c, [](auto x, auto t) { return decltype(t)(1) / (decltype(t)(1) + (-x).exp()); });
}
// dL/dx = g * s * (1 - s), s = sigmoid(x)
Grads bwd_sigmoid(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto, auto s, auto t) { return g * s * (decltype(t)(1) - s); });
}

void fwd_tanh(Call& c) { unary_fwd(c, [](auto x, auto) { return x.tanh(); }); }
// dL/dx = g * (1 - t^2), t = tanh(x)
Grads bwd_tanh(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto, auto y, auto t) { return g * (decltype(t)(1) - y.square()); });
}

void fwd_relu(Call& c) { unary_fwd(c, [](auto x, auto t) { return x.max(decltype(t)(0)); }); }
// dL/dx = g where x > 0, else 0
Grads bwd_relu(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g, [](auto g, auto x, auto, auto t) {
        using T = decltype(t);
        return (x > T(0)).select(g, T(0));
    });
}

// x where x > 0, slope * x elsewhere
void fwd_leaky_relu(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T slope = static_cast<T>(c.real("slope"));
        auto x = cvec<T>(c.in[0]);
        vec<T>(c.out[0]) = (x > T(0)).select(x, slope * x);
    });
}
// dL/dx = g where x > 0, slope * g elsewhere
Grads bwd_leaky_relu(const Call& c, const Grads& g, const Need&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        auto gv = cvec<T>(g[0]);
        vec<T>(r) = (cvec<T>(c.in[0]) > T(0)).select(gv, static_cast<T>(c.real("slope")) * gv);
    });
    return {r};
}

// log(1 + exp(x)) computed as max(x, 0) + log1p(exp(-|x|)): no overflow for large x. Where
// exp(-|x|) leaves the normal range, Eigen's exp is inexact (on AVX2, exp(-inf) is FLT_MIN, not 0):
// those elements are redone with the C library.
void fwd_softplus(Call& c) {
    unary_fwd(c, [](auto x, auto t) { return x.max(decltype(t)(0)) + (-x.abs()).exp().log1p(); });
    redo_outside_normal(c, [](auto v) { return -std::abs(v) < std::log(std::numeric_limits<decltype(v)>::min()); },
                        [](double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v))); });
}
// dL/dx = g * sigmoid(x)
Grads bwd_softplus(const Call& c, const Grads& g, const Need&) {
    return unary_bwd(c, g,
                     [](auto g, auto x, auto, auto t) { return g / (decltype(t)(1) + (-x).exp()); });
}

// min(max(x, lo), hi)
void fwd_clip(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        vec<T>(c.out[0]) = cvec<T>(c.in[0]).max(static_cast<T>(c.real("lo"))).min(static_cast<T>(c.real("hi")));
    });
}
// dL/dx = g where lo <= x <= hi, else 0
Grads bwd_clip(const Call& c, const Grads& g, const Need&) {
    Tensor r = Tensor::empty(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        auto x = cvec<T>(c.in[0]);
        vec<T>(r) = (x >= static_cast<T>(c.real("lo")) && x <= static_cast<T>(c.real("hi"))).select(cvec<T>(g[0]), T(0));
    });
    return {r};
}

Shapes shape_clip(const Call& c) {
    if (c.real("lo") > c.real("hi"))
        throw std::invalid_argument(std::string(c.name()) + ": lower bound " + std::to_string(c.real("lo")) +
                                    " is above upper bound " + std::to_string(c.real("hi")));
    return {c.in[0].shape()};
}

// Views (id, reshape-like ops) pass the gradient through with the input's shape.
Grads bwd_view(const Call& c, const Grads& g, const Need&) { return {g[0].view(c.in[0].shape())}; }

// ---- conversion ----

// The values in another float dtype (float32 <-> float64; the dtype itself: a copy).
void fwd_astype(Call& c) {
    const DType to = c.choice("dtype") == "float32" ? DType::f32 : DType::f64;
    c.out[0] = c.in[0].dtype() == to ? c.in[0].clone() : c.in[0].to(to);
}
// dL/dx = g converted back to x's dtype
Grads bwd_astype(const Call& c, const Grads& g, const Need&) {
    return {g[0].dtype() == c.in[0].dtype() ? g[0] : g[0].to(c.in[0].dtype())};
}

}  // namespace tg
