#include "ops/registry.h"

#include "ops/kernels.h"

namespace tg {

const std::vector<OpDef>& op_table() {
    // name, inputs, integer attributes, shape rule, forward (null: a view), backward
    static const std::vector<OpDef> table = {
        {"add", 2, 0, shape_broadcast, fwd_add, bwd_add},
        {"sub", 2, 0, shape_broadcast, fwd_sub, bwd_sub},
        {"mul", 2, 0, shape_broadcast, fwd_mul, bwd_mul},
        {"div", 2, 0, shape_broadcast, fwd_div, bwd_div},
        {"pow", 2, 0, shape_broadcast, fwd_pow, bwd_pow},
        {"neg", 1, 0, shape_same, fwd_neg, bwd_neg},
        {"exp", 1, 0, shape_same, fwd_exp, bwd_exp},
        {"log", 1, 0, shape_same, fwd_log, bwd_log},
        {"sigmoid", 1, 0, shape_same, fwd_sigmoid, bwd_sigmoid},
        {"id", 1, 0, shape_same, nullptr, bwd_view},
        {"sum", 1, 0, shape_scalar, fwd_sum, bwd_sum},
        {"row_sum", 1, 0, shape_row_reduce, fwd_row_sum, bwd_row_sum},
        {"row_max", 1, 0, shape_row_max, fwd_row_max, bwd_row_max},
        {"normalize", 1, 0, shape_matrix, fwd_normalize, bwd_normalize},
        {"matmul", 2, 0, shape_matmul, fwd_matmul, bwd_matmul},
        {"batch_mm", 2, 0, shape_batch_mm, fwd_batch_mm, bwd_batch_mm},
        {"expand", 1, 2, shape_expand, fwd_expand, bwd_expand},
        {"select", 1, 0, shape_select, fwd_select, bwd_select},
        {"squeeze", 1, 1, shape_squeeze, nullptr, bwd_view},
        {"unsqueeze", 1, 1, shape_unsqueeze, nullptr, bwd_view},
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
