// Optimiser updates, applied in place to a parameter tensor from its gradient and its state.
#pragma once

#include <string>
#include <vector>

#include "tape.h"
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

// One optimiser step over a list of parameters: `states[k][i]` is state k (a momentum buffer, a
// moment estimate) of parameter i, a tensor of its shape and dtype, or undefined where unused.
// Checks every parameter first (a leaf, a gradient of its shape), then updates in place each one
// that has a gradient, bumping its version. `name` is the optimiser's, for error messages.
void sgd_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
              const std::vector<bool>& first, const SgdConfig& c);
void adam_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
               const std::vector<int64_t>& steps, const AdamConfig& c);
void rmsprop_step(const std::vector<NodePtr>& params, const std::vector<std::vector<Tensor>>& states,
                  const RmspropConfig& c);

}  // namespace tg
