// Declarations of the kernel pairs and shape rules that registry.cpp puts in the op table.
#pragma once

#include "ops/registry.h"

namespace tg {

using Grads = Tensors;
using Need = std::vector<bool>;

#define TG_KERNELS(name)  \
    void fwd_##name(Call&); \
    Grads bwd_##name(const Call&, const Grads&, const Need&)

// elementwise.cpp
Shapes shape_broadcast(const Call&);
Shapes shape_same(const Call&);
Shapes shape_clip(const Call&);
TG_KERNELS(add); TG_KERNELS(subtract); TG_KERNELS(multiply); TG_KERNELS(divide); TG_KERNELS(power);
TG_KERNELS(maximum); TG_KERNELS(minimum);
void fwd_equal(Call&); void fwd_not_equal(Call&); void fwd_less(Call&);
void fwd_less_equal(Call&); void fwd_greater(Call&); void fwd_greater_equal(Call&);
TG_KERNELS(astype); TG_KERNELS(negative); TG_KERNELS(exp); TG_KERNELS(log); TG_KERNELS(log1p); TG_KERNELS(sqrt); TG_KERNELS(abs); TG_KERNELS(square);
TG_KERNELS(sigmoid); TG_KERNELS(tanh); TG_KERNELS(relu); TG_KERNELS(leaky_relu); TG_KERNELS(softplus);
TG_KERNELS(clip);
Grads bwd_view(const Call&, const Grads&, const Need&);

// reduce.cpp
Shapes shape_reduce(const Call&);
Shapes shape_reduce_nonempty(const Call&);
Shapes shape_row_reduce(const Call&);
Shapes shape_row_max(const Call&);
Shapes shape_matrix(const Call&);
TG_KERNELS(sum); TG_KERNELS(mean); TG_KERNELS(max); TG_KERNELS(min); TG_KERNELS(logsumexp); TG_KERNELS(var);
TG_KERNELS(row_sum); TG_KERNELS(row_max); TG_KERNELS(normalize);

// linalg.cpp
Shapes shape_matmul(const Call&);
Shapes shape_batch_mm(const Call&);
Shapes shape_linear(const Call&);
TG_KERNELS(matmul); TG_KERNELS(batch_mm); TG_KERNELS(linear);

// shape.cpp
Shapes shape_reshape(const Call&);
Shapes shape_squeeze(const Call&);
Shapes shape_unsqueeze(const Call&);
Shapes shape_expand(const Call&);
Shapes shape_broadcast_to(const Call&);
Shapes shape_transpose(const Call&);
Shapes shape_concatenate(const Call&);
Shapes shape_select(const Call&);
Shapes shape_getitem(const Call&);
Shapes shape_gather(const Call&);
Shapes shape_setitem(const Call&);
TG_KERNELS(broadcast); TG_KERNELS(transpose); TG_KERNELS(concatenate);
TG_KERNELS(select); TG_KERNELS(getitem); TG_KERNELS(gather); TG_KERNELS(setitem);

// nn.cpp
Shapes shape_softmax(const Call&);
Shapes shape_cross_entropy(const Call&);
Shapes shape_pair_loss(const Call&);
TG_KERNELS(softmax); TG_KERNELS(log_softmax); TG_KERNELS(cross_entropy);
TG_KERNELS(binary_cross_entropy); TG_KERNELS(binary_cross_entropy_with_logits); TG_KERNELS(mse_loss);

// conv.cpp
Shapes shape_conv2d(const Call&);
Shapes shape_max_pool2d(const Call&);
Shapes shape_avg_pool2d(const Call&);
Shapes shape_adaptive_avg_pool2d(const Call&);
Shapes shape_pad(const Call&);
TG_KERNELS(conv2d); TG_KERNELS(max_pool2d); TG_KERNELS(avg_pool2d); TG_KERNELS(adaptive_avg_pool2d); TG_KERNELS(pad);

#undef TG_KERNELS

}  // namespace tg
