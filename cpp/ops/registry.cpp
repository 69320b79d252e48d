#include "ops/registry.h"

#include "ops/kernels.h"

namespace tg {

const std::vector<OpDef>& op_table() {
    constexpr int any = -1;
    // name, inputs, integer attrs, real attrs, shape rule, forward (null: a view), backward (null: no
    // gradient), what the backward reads
    static const std::vector<OpDef> table = {
        // element-wise, broadcasting
        {"add", 2, 0, 0, shape_broadcast, fwd_add, bwd_add, saves_none},
        {"sub", 2, 0, 0, shape_broadcast, fwd_sub, bwd_sub, saves_none},
        {"mul", 2, 0, 0, shape_broadcast, fwd_mul, bwd_mul, saves_in},
        {"div", 2, 0, 0, shape_broadcast, fwd_div, bwd_div, saves_both},
        {"pow", 2, 0, 0, shape_broadcast, fwd_pow, bwd_pow, saves_both},
        {"maximum", 2, 0, 0, shape_broadcast, fwd_maximum, bwd_maximum, saves_in},
        {"minimum", 2, 0, 0, shape_broadcast, fwd_minimum, bwd_minimum, saves_in},
        {"equal", 2, 0, 0, shape_broadcast, fwd_equal, nullptr, saves_none},
        {"not_equal", 2, 0, 0, shape_broadcast, fwd_not_equal, nullptr, saves_none},
        {"less", 2, 0, 0, shape_broadcast, fwd_less, nullptr, saves_none},
        {"less_equal", 2, 0, 0, shape_broadcast, fwd_less_equal, nullptr, saves_none},
        {"greater", 2, 0, 0, shape_broadcast, fwd_greater, nullptr, saves_none},
        {"greater_equal", 2, 0, 0, shape_broadcast, fwd_greater_equal, nullptr, saves_none},
        // element-wise, unary
        {"neg", 1, 0, 0, shape_same, fwd_neg, bwd_neg, saves_none},
        {"exp", 1, 0, 0, shape_same, fwd_exp, bwd_exp, saves_out},
        {"log", 1, 0, 0, shape_same, fwd_log, bwd_log, saves_in},
        {"sqrt", 1, 0, 0, shape_same, fwd_sqrt, bwd_sqrt, saves_out},
        {"abs", 1, 0, 0, shape_same, fwd_abs, bwd_abs, saves_in},
        {"square", 1, 0, 0, shape_same, fwd_square, bwd_square, saves_in},
        {"sigmoid", 1, 0, 0, shape_same, fwd_sigmoid, bwd_sigmoid, saves_out},
        {"tanh", 1, 0, 0, shape_same, fwd_tanh, bwd_tanh, saves_out},
        {"relu", 1, 0, 0, shape_same, fwd_relu, bwd_relu, saves_in},
        {"leaky_relu", 1, 0, 1, shape_same, fwd_leaky_relu, bwd_leaky_relu, saves_in},
        {"softplus", 1, 0, 0, shape_same, fwd_softplus, bwd_softplus, saves_in},
        {"clip", 1, 0, 2, shape_clip, fwd_clip, bwd_clip, saves_in},
        {"id", 1, 0, 0, shape_same, nullptr, bwd_view, saves_none},
        // reductions: ints = {keepdims, axis...}
        {"sum", 1, any, 0, shape_reduce, fwd_sum, bwd_sum, saves_none},
        {"mean", 1, any, 0, shape_reduce, fwd_mean, bwd_mean, saves_none},
        {"max", 1, any, 0, shape_reduce_nonempty, fwd_max, bwd_max, saves_none},
        {"min", 1, any, 0, shape_reduce_nonempty, fwd_min, bwd_min, saves_none},
        {"logsumexp", 1, any, 0, shape_reduce, fwd_logsumexp, bwd_logsumexp, saves_both},
        {"var", 1, any, 1, shape_reduce, fwd_var, bwd_var, saves_in},
        {"row_sum", 1, 0, 0, shape_row_reduce, fwd_row_sum, bwd_row_sum, saves_none},
        {"row_max", 1, 0, 0, shape_row_max, fwd_row_max, bwd_row_max, saves_none},
        {"normalize", 1, 0, 0, shape_matrix, fwd_normalize, bwd_normalize, saves_in},
        // linear algebra
        {"matmul", 2, 0, 0, shape_matmul, fwd_matmul, bwd_matmul, saves_in},
        {"batch_mm", 2, 0, 0, shape_batch_mm, fwd_batch_mm, bwd_batch_mm, saves_in},
        {"linear", any, 0, 0, shape_linear, fwd_linear, bwd_linear, saves_in},
        // shape
        {"reshape", 1, any, 0, shape_reshape, nullptr, bwd_view, saves_none},
        {"squeeze", 1, 1, 0, shape_squeeze, nullptr, bwd_view, saves_none},
        {"unsqueeze", 1, 1, 0, shape_unsqueeze, nullptr, bwd_view, saves_none},
        {"expand", 1, 2, 0, shape_expand, fwd_broadcast, bwd_broadcast, saves_none},
        {"broadcast_to", 1, any, 0, shape_broadcast_to, fwd_broadcast, bwd_broadcast, saves_none},
        {"transpose", 1, any, 0, shape_transpose, fwd_transpose, bwd_transpose, saves_none},
        {"concatenate", any, 1, 0, shape_concatenate, fwd_concatenate, bwd_concatenate, saves_none},
        {"select", 1, 0, 0, shape_select, fwd_select, bwd_select, saves_none},
        {"strided", 1, any, 0, shape_strided, fwd_strided, bwd_strided, saves_none},
        {"gather", 1, 0, 0, shape_gather, fwd_gather, bwd_gather, saves_none},
        // neural-network layers and losses (fused); losses: ints = {reduction: 0 mean, 1 sum}
        {"softmax", 1, 0, 0, shape_softmax, fwd_softmax, bwd_softmax, saves_out},
        {"log_softmax", 1, 0, 0, shape_softmax, fwd_log_softmax, bwd_log_softmax, saves_out},
        {"cross_entropy", 1, 1, 0, shape_cross_entropy, fwd_cross_entropy, bwd_cross_entropy, saves_none},
        {"binary_cross_entropy", 2, 1, 0, shape_pair_loss, fwd_binary_cross_entropy, bwd_binary_cross_entropy, saves_in},
        {"binary_cross_entropy_with_logits", 2, 1, 0, shape_pair_loss, fwd_bce_with_logits, bwd_bce_with_logits, saves_in},
        {"mse_loss", 2, 1, 0, shape_pair_loss, fwd_mse_loss, bwd_mse_loss, saves_in},
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
