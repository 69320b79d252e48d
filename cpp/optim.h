// Optimiser updates, applied in place to a parameter tensor from its gradient and its state.
#pragma once

#include "tensor.h"

namespace tg {

struct SgdConfig {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
};
struct AdamConfig {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;  // AdamW: weight decay applied to the parameter, not added to the gradient
};
struct RmspropConfig {
    double lr, alpha, eps, weight_decay, momentum;
};

// `first`: the momentum buffer is new and takes the gradient itself (as PyTorch does).
void sgd_update(const Tensor& p, const Tensor& g, const Tensor& buf, bool first, const SgdConfig& c);
// `step`: 1 for the first update (bias correction).
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, int64_t step,
                 const AdamConfig& c);
void rmsprop_update(const Tensor& p, const Tensor& g, const Tensor& sq, const Tensor& buf, const RmspropConfig& c);

}  // namespace tg
