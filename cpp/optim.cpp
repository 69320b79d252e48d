#include "optim.h"

#include <cmath>

#include "ops/common.h"

namespace tg {

// d = g + wd p; buf = momentum buf + (1 - dampening) d (buf = d at first); p -= lr (nesterov ? d + momentum buf : buf)
void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, bool first, const SgdConfig& c) {
    float_dispatch(p.dtype(), "sgd", [&](auto tag) {
        using T = decltype(tag);
        auto pv = vec<T>(p);
        Vec<T> d = cvec<T>(g) + static_cast<T>(c.weight_decay) * pv;
        if (c.momentum != 0) {
            auto b = vec<T>(buf);
            if (first) b = d;
            else b = static_cast<T>(c.momentum) * b + static_cast<T>(1 - c.dampening) * d;
            if (c.nesterov) d += static_cast<T>(c.momentum) * b;
            else d = b;
        }
        pv -= static_cast<T>(c.lr) * d;
    });
}

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t step,
                 const AdamConfig& c) {
    float_dispatch(p.dtype(), "adam", [&](auto tag) {
        using T = decltype(tag);
        auto pv = vec<T>(p);
        Vec<T> grad = cvec<T>(g);
        if (c.decoupled) pv *= static_cast<T>(1 - c.lr * c.weight_decay);
        else if (c.weight_decay != 0) grad += static_cast<T>(c.weight_decay) * pv;
        auto mv = vec<T>(m);
        auto vv = vec<T>(v);
        mv = static_cast<T>(c.beta1) * mv + static_cast<T>(1 - c.beta1) * grad;
        vv = static_cast<T>(c.beta2) * vv + static_cast<T>(1 - c.beta2) * grad.square();
        const double t = static_cast<double>(step);
        const T correct1 = static_cast<T>(1 - std::pow(c.beta1, t));
        const T correct2 = static_cast<T>(1 - std::pow(c.beta2, t));
        pv -= static_cast<T>(c.lr) * (mv / correct1) / ((vv / correct2).sqrt() + static_cast<T>(c.eps));
    });
}

// g += wd p; sq = alpha sq + (1 - alpha) g^2; step = g / (sqrt(sq) + eps);
// with momentum: buf = momentum buf + step, p -= lr buf; else p -= lr step
void rmsprop_update(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf, const RmspropConfig& c) {
    float_dispatch(p.dtype(), "rmsprop", [&](auto tag) {
        using T = decltype(tag);
        auto pv = vec<T>(p);
        Vec<T> grad = cvec<T>(g) + static_cast<T>(c.weight_decay) * pv;
        auto s = vec<T>(sq);
        s = static_cast<T>(c.alpha) * s + static_cast<T>(1 - c.alpha) * grad.square();
        Vec<T> step = grad / (s.sqrt() + static_cast<T>(c.eps));
        if (c.momentum != 0) {
            auto b = vec<T>(buf);
            b = static_cast<T>(c.momentum) * b + step;
            pv -= static_cast<T>(c.lr) * b;
        } else {
            pv -= static_cast<T>(c.lr) * step;
        }
    });
}

}  // namespace tg
