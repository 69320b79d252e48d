#include "optim.h"

#include <cmath>

#include "fpmode.h"
#include "isa.h"
#include "ops/common.h"
#include "parallel.h"

namespace tg {

// Each update is one pass of Eigen expressions over the parameter and its state: no temporary
// the size of the parameter (a 2.5M-element layer would otherwise allocate 20 MB per step). Large
// parameters are updated in chunks on the engine's threads (parallel_for); every element's
// arithmetic is the same whichever thread does it. The operations are PyTorch's, in its order and
// with its scalars computed in double and rounded once, so float32 states match torch.optim's bit
// for bit (this file is compiled without FMA contraction, which would round differently).

// d = g + wd p; buf = momentum buf + (1 - dampening) d (buf = d at first);
// p += -lr (nesterov ? d + momentum buf : buf)
void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, bool first, const SgdConfig& c) {
    float_dispatch(p.dtype(), "sgd", [&](auto tag) {
        using T = decltype(tag);
        const T neg_lr = static_cast<T>(-c.lr), wd = static_cast<T>(c.weight_decay), mom = static_cast<T>(c.momentum);
        const T keep = static_cast<T>(1 - c.dampening);
        parallel_for(p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
            auto pv = vec<T>(p, lo, hi);
            auto gv = cvec<T>(g, lo, hi);
            if (c.momentum == 0) {
                if (c.weight_decay == 0) pv += neg_lr * gv;
                else pv += neg_lr * (gv + wd * pv);
                return;
            }
            auto b = vec<T>(buf, lo, hi);
            if (first) b = gv + wd * pv;
            else b = mom * b + keep * (gv + wd * pv);
            if (c.nesterov) pv += neg_lr * ((gv + wd * pv) + mom * b);
            else pv += neg_lr * b;
        });
    });
}

// g' = g + wd p (Adam) or p *= 1 - lr wd (AdamW); m += (1 - b1) (g' - m); v = b2 v + ((1 - b2) g') g';
// p += (-(lr / (1 - b1^t)) m) / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t step,
                 const AdamConfig& c) {
    float_dispatch(p.dtype(), "adam", [&](auto tag) {
        using T = decltype(tag);
        const T b2 = static_cast<T>(c.beta2), wd = static_cast<T>(c.weight_decay);
        const T one_minus_b1 = static_cast<T>(1 - c.beta1), one_minus_b2 = static_cast<T>(1 - c.beta2);
        const double t = static_cast<double>(step);
        const T neg_step_size = static_cast<T>(-(c.lr / (1 - std::pow(c.beta1, t))));
        const T root_correct2 = static_cast<T>(std::sqrt(1 - std::pow(c.beta2, t)));
        const T eps = static_cast<T>(c.eps), shrink = static_cast<T>(1 - c.lr * c.weight_decay);
        parallel_for(p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
            auto pv = vec<T>(p, lo, hi);
            auto gv = cvec<T>(g, lo, hi);
            auto mv = vec<T>(m, lo, hi);
            auto vv = vec<T>(v, lo, hi);
            if (c.decoupled || c.weight_decay == 0) {
                if (c.decoupled) pv *= shrink;
                mv = mv + one_minus_b1 * (gv - mv);
                vv = vv * b2 + (one_minus_b2 * gv) * gv;
            } else {
                mv = mv + one_minus_b1 * ((gv + wd * pv) - mv);
                vv = vv * b2 + (one_minus_b2 * (gv + wd * pv)) * (gv + wd * pv);
            }
            pv += (neg_step_size * mv) / (vv.sqrt() / root_correct2 + eps);
        });
    });
}

// g' = g + wd p; sq = alpha sq + ((1 - alpha) g') g'; step = g' / (sqrt(sq) + eps);
// with momentum: buf = momentum buf + step, p += -lr buf; else p += -lr step
void rmsprop_update(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf, const RmspropConfig& c) {
    float_dispatch(p.dtype(), "rmsprop", [&](auto tag) {
        using T = decltype(tag);
        const T wd = static_cast<T>(c.weight_decay), eps = static_cast<T>(c.eps), neg_lr = static_cast<T>(-c.lr);
        const T alpha = static_cast<T>(c.alpha), one_minus_alpha = static_cast<T>(1 - c.alpha);
        parallel_for(p.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
            auto pv = vec<T>(p, lo, hi);
            auto gv = cvec<T>(g, lo, hi);
            auto s = vec<T>(sq, lo, hi);
            s = s * alpha + (one_minus_alpha * (gv + wd * pv)) * (gv + wd * pv);
            if (c.momentum != 0) {
                auto b = vec<T>(buf, lo, hi);
                b = b * static_cast<T>(c.momentum) + (gv + wd * pv) / (s.sqrt() + eps);
                pv += neg_lr * b;
            } else {
                pv += (neg_lr * (gv + wd * pv)) / (s.sqrt() + eps);
            }
        });
    });
}

OptimUpdates TG_ISA::optim_updates() { return {sgd_update, adam_update, rmsprop_update}; }

namespace {

// Checks the parameters and their states before any is updated, so that a bad one changes none.
void check_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states, const char* name) {
    for (const auto& kind : states)
        if (kind.size() != params.size())
            throw std::invalid_argument(std::string(name) + ": " + std::to_string(kind.size()) + " state arrays for " +
                                        std::to_string(params.size()) + " parameters");
    for (size_t i = 0; i < params.size(); ++i) {
        const Node& p = *params[i];
        if (p.source)
            throw std::invalid_argument(std::string(name) + ": parameter " + std::to_string(i) +
                                        " was made by an op; optimisers update leaves");
        if (p.grad.defined() && p.grad.shape() != p.value.shape())
            throw std::invalid_argument(std::string(name) + ": gradient of parameter " + std::to_string(i) +
                                        " has shape " + shape_str(p.grad.shape()) + ", its value " +
                                        shape_str(p.value.shape()));
        for (const auto& kind : states) {
            const Tensor& t = kind[i];
            if (t.defined() && (t.shape() != p.value.shape() || t.dtype() != p.value.dtype()))
                throw std::invalid_argument(std::string(name) + ": state of parameter " + std::to_string(i) +
                                            " must have shape " + shape_str(p.value.shape()) + " and dtype " +
                                            dtype_name(p.value.dtype()));
        }
    }
}

// Runs update(value, gradient in the value's dtype, i) for each parameter with a gradient, then
// moves its version on.
template <class F> void each_update(const std::vector<NodePtr>& params, F&& update) {
    FlushScope flush;  // set_flush_denormal: lr * g is subnormal for the smallest gradients
    for (size_t i = 0; i < params.size(); ++i) {
        Node& p = *params[i];
        if (!p.grad.defined()) continue;
        update(p.value, p.grad.to(p.value.dtype()), i);
        p.value.bump_version();
    }
}

}  // namespace

void sgd_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
              const std::vector<bool>& first, const SgdConfig& c) {
    check_step(params, states, "SGD");
    each_update(params, [&](const Tensor& value, const Tensor& grad, size_t i) {
        optim_updates().sgd(value, grad, states.at(0)[i], first.at(i), c);
    });
}

void adam_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
               const std::vector<int64_t>& steps, const AdamConfig& c) {
    check_step(params, states, c.decoupled ? "AdamW" : "Adam");
    each_update(params, [&](const Tensor& value, const Tensor& grad, size_t i) {
        optim_updates().adam(value, grad, states.at(0)[i], states.at(1)[i], steps.at(i), c);
    });
}

void rmsprop_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
                  const RmspropConfig& c) {
    check_step(params, states, "RMSprop");
    each_update(params, [&](const Tensor& value, const Tensor& grad, size_t i) {
        optim_updates().rmsprop(value, grad, states.at(0)[i], states.at(1)[i], c);
    });
}

}  // namespace tg
