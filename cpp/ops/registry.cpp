#include "ops/registry.h"

#include "ops/kernels.h"

namespace tg {

const std::vector<OpDef>& op_table() {
    constexpr int any = -1;
    // name, inputs, integer attrs, real attrs, shape rule, forward (null: a view), backward (null: no gradient)
    static const std::vector<OpDef> table = {
        // element-wise, broadcasting
        {"add", 2, 0, 0, shape_broadcast, fwd_add, bwd_add},
        {"sub", 2, 0, 0, shape_broadcast, fwd_sub, bwd_sub},
        {"mul", 2, 0, 0, shape_broadcast, fwd_mul, bwd_mul},
        {"div", 2, 0, 0, shape_broadcast, fwd_div, bwd_div},
        {"pow", 2, 0, 0, shape_broadcast, fwd_pow, bwd_pow},
        {"maximum", 2, 0, 0, shape_broadcast, fwd_maximum, bwd_maximum},
        {"minimum", 2, 0, 0, shape_broadcast, fwd_minimum, bwd_minimum},
        {"equal", 2, 0, 0, shape_broadcast, fwd_equal, nullptr},
        {"not_equal", 2, 0, 0, shape_broadcast, fwd_not_equal, nullptr},
        {"less", 2, 0, 0, shape_broadcast, fwd_less, nullptr},
        {"less_equal", 2, 0, 0, shape_broadcast, fwd_less_equal, nullptr},
        {"greater", 2, 0, 0, shape_broadcast, fwd_greater, nullptr},
        {"greater_equal", 2, 0, 0, shape_broadcast, fwd_greater_equal, nullptr},
        // element-wise, unary
        {"neg", 1, 0, 0, shape_same, fwd_neg, bwd_neg},
        {"exp", 1, 0, 0, shape_same, fwd_exp, bwd_exp},
        {"log", 1, 0, 0, shape_same, fwd_log, bwd_log},
        {"sqrt", 1, 0, 0, shape_same, fwd_sqrt, bwd_sqrt},
        {"abs", 1, 0, 0, shape_same, fwd_abs, bwd_abs},
        {"square", 1, 0, 0, shape_same, fwd_square, bwd_square},
        {"sigmoid", 1, 0, 0, shape_same, fwd_sigmoid, bwd_sigmoid},
        {"tanh", 1, 0, 0, shape_same, fwd_tanh, bwd_tanh},
        {"relu", 1, 0, 0, shape_same, fwd_relu, bwd_relu},
        {"leaky_relu", 1, 0, 1, shape_same, fwd_leaky_relu, bwd_leaky_relu},
        {"softplus", 1, 0, 0, shape_same, fwd_softplus, bwd_softplus},
        {"clip", 1, 0, 2, shape_clip, fwd_clip, bwd_clip},
        {"id", 1, 0, 0, shape_same, nullptr, bwd_view},
        // reductions: ints = {keepdims, axis...}
        {"sum", 1, any, 0, shape_reduce, fwd_sum, bwd_sum},
        {"mean", 1, any, 0, shape_reduce, fwd_mean, bwd_mean},
        {"max", 1, any, 0, shape_reduce_nonempty, fwd_max, bwd_max},
        {"min", 1, any, 0, shape_reduce_nonempty, fwd_min, bwd_min},
        {"logsumexp", 1, any, 0, shape_reduce, fwd_logsumexp, bwd_logsumexp},
        {"var", 1, any, 1, shape_reduce, fwd_var, bwd_var},
        {"row_sum", 1, 0, 0, shape_row_reduce, fwd_row_sum, bwd_row_sum},
        {"row_max", 1, 0, 0, shape_row_max, fwd_row_max, bwd_row_max},
        {"normalize", 1, 0, 0, shape_matrix, fwd_normalize, bwd_normalize},
        // linear algebra
        {"matmul", 2, 0, 0, shape_matmul, fwd_matmul, bwd_matmul},
        {"batch_mm", 2, 0, 0, shape_batch_mm, fwd_batch_mm, bwd_batch_mm},
        {"linear", any, 0, 0, shape_linear, fwd_linear, bwd_linear},
        // shape
        {"reshape", 1, any, 0, shape_reshape, nullptr, bwd_view},
        {"squeeze", 1, 1, 0, shape_squeeze, nullptr, bwd_view},
        {"unsqueeze", 1, 1, 0, shape_unsqueeze, nullptr, bwd_view},
        {"expand", 1, 2, 0, shape_expand, fwd_broadcast, bwd_broadcast},
        {"broadcast_to", 1, any, 0, shape_broadcast_to, fwd_broadcast, bwd_broadcast},
        {"transpose", 1, any, 0, shape_transpose, fwd_transpose, bwd_transpose},
        {"concatenate", any, 1, 0, shape_concatenate, fwd_concatenate, bwd_concatenate},
        {"select", 1, 0, 0, shape_select, fwd_select, bwd_select},
        {"strided", 1, any, 0, shape_strided, fwd_strided, bwd_strided},
        {"gather", 1, 0, 0, shape_gather, fwd_gather, bwd_gather},
        // neural-network layers and losses (fused); losses: ints = {reduction: 0 mean, 1 sum}
        {"softmax", 1, 0, 0, shape_softmax, fwd_softmax, bwd_softmax},
        {"log_softmax", 1, 0, 0, shape_softmax, fwd_log_softmax, bwd_log_softmax},
        {"cross_entropy", 1, 1, 0, shape_cross_entropy, fwd_cross_entropy, bwd_cross_entropy},
        {"binary_cross_entropy", 2, 1, 0, shape_pair_loss, fwd_binary_cross_entropy, bwd_binary_cross_entropy},
        {"binary_cross_entropy_with_logits", 2, 1, 0, shape_pair_loss, fwd_bce_with_logits, bwd_bce_with_logits},
        {"mse_loss", 2, 1, 0, shape_pair_loss, fwd_mse_loss, bwd_mse_loss},
    };
    return table;
}

int op_index(const std::string& name) {
    const auto& table = op_table();
    for (size_t i = 0; i < table.size(); ++i)
        if (name == table[i].name) return static_cast<int>(i);
    throw std::invalid_argument("unknown op '" + name + "'");
}

}  // namespace tg
