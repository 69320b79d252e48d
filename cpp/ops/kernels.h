// Declarations of the kernel pairs and shape rules that registry.cpp puts in the op table.
#pragma once

#include "ops/registry.h"

namespace tg {

using Grads = std::vector<Tensor>;
using Need = std::vector<bool>;

// shape rules
std::vector<Shape> shape_broadcast(const char*, const Call&);
std::vector<Shape> shape_same(const char*, const Call&);
std::vector<Shape> shape_scalar(const char*, const Call&);
std::vector<Shape> shape_row_reduce(const char*, const Call&);
std::vector<Shape> shape_row_max(const char*, const Call&);
std::vector<Shape> shape_matrix(const char*, const Call&);
std::vector<Shape> shape_matmul(const char*, const Call&);
std::vector<Shape> shape_batch_mm(const char*, const Call&);
std::vector<Shape> shape_expand(const char*, const Call&);
std::vector<Shape> shape_select(const char*, const Call&);
std::vector<Shape> shape_squeeze(const char*, const Call&);
std::vector<Shape> shape_unsqueeze(const char*, const Call&);

// elementwise.cpp
void fwd_add(Call&);     Grads bwd_add(const Call&, const Grads&, const Need&);
void fwd_sub(Call&);     Grads bwd_sub(const Call&, const Grads&, const Need&);
void fwd_mul(Call&);     Grads bwd_mul(const Call&, const Grads&, const Need&);
void fwd_div(Call&);     Grads bwd_div(const Call&, const Grads&, const Need&);
void fwd_pow(Call&);     Grads bwd_pow(const Call&, const Grads&, const Need&);
void fwd_neg(Call&);     Grads bwd_neg(const Call&, const Grads&, const Need&);
void fwd_exp(Call&);     Grads bwd_exp(const Call&, const Grads&, const Need&);
void fwd_log(Call&);     Grads bwd_log(const Call&, const Grads&, const Need&);
void fwd_sigmoid(Call&); Grads bwd_sigmoid(const Call&, const Grads&, const Need&);
Grads bwd_view(const Call&, const Grads&, const Need&);

// reduce.cpp
void fwd_sum(Call&);       Grads bwd_sum(const Call&, const Grads&, const Need&);
void fwd_row_sum(Call&);   Grads bwd_row_sum(const Call&, const Grads&, const Need&);
void fwd_row_max(Call&);   Grads bwd_row_max(const Call&, const Grads&, const Need&);
void fwd_normalize(Call&); Grads bwd_normalize(const Call&, const Grads&, const Need&);

// linalg.cpp
void fwd_matmul(Call&);   Grads bwd_matmul(const Call&, const Grads&, const Need&);
void fwd_batch_mm(Call&); Grads bwd_batch_mm(const Call&, const Grads&, const Need&);

// shape.cpp
void fwd_expand(Call&); Grads bwd_expand(const Call&, const Grads&, const Need&);
void fwd_select(Call&); Grads bwd_select(const Call&, const Grads&, const Need&);

}  // namespace tg
