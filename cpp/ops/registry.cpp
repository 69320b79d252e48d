#include "ops/registry.h"

#include <cstring>

#include "isa.h"
#include "ops/kernels.h"

namespace tg {

// The table with this copy's kernels (compiled once per instruction set: isa.h); op_table() is
// the copy isa.cpp picked.
std::vector<OpDef> TG_ISA::op_rows() {
    constexpr int any = -1;
    const auto reduction = choice("reduction", "mean|sum");
    // name, inputs, attributes, shape rule, forward (null: a view), backward (null: no gradient),
    // what the backward reads
    return {
        // element-wise, broadcasting
        {"add", 2, {}, shape_broadcast, fwd_add, bwd_add, saves_none},
        {"subtract", 2, {}, shape_broadcast, fwd_subtract, bwd_subtract, saves_none},
        {"multiply", 2, {}, shape_broadcast, fwd_multiply, bwd_multiply, saves_in},
        {"divide", 2, {}, shape_broadcast, fwd_divide, bwd_divide, saves_both},
        {"power", 2, {}, shape_broadcast, fwd_power, bwd_power, saves_both},
        {"maximum", 2, {}, shape_broadcast, fwd_maximum, bwd_maximum, saves_in},
        {"minimum", 2, {}, shape_broadcast, fwd_minimum, bwd_minimum, saves_in},
        {"equal", 2, {}, shape_broadcast, fwd_equal, nullptr, saves_none},
        {"not_equal", 2, {}, shape_broadcast, fwd_not_equal, nullptr, saves_none},
        {"less", 2, {}, shape_broadcast, fwd_less, nullptr, saves_none},
        {"less_equal", 2, {}, shape_broadcast, fwd_less_equal, nullptr, saves_none},
        {"greater", 2, {}, shape_broadcast, fwd_greater, nullptr, saves_none},
        {"greater_equal", 2, {}, shape_broadcast, fwd_greater_equal, nullptr, saves_none},
        // element-wise, unary
        {"negative", 1, {}, shape_same, fwd_negative, bwd_negative, saves_none},
        {"exp", 1, {}, shape_same, fwd_exp, bwd_exp, saves_out},
        {"log", 1, {}, shape_same, fwd_log, bwd_log, saves_in},
        {"log1p", 1, {}, shape_same, fwd_log1p, bwd_log1p, saves_in},
        {"astype", 1, {choice("dtype", "float32|float64")}, shape_same, fwd_astype, bwd_astype, saves_none},
        {"sqrt", 1, {}, shape_same, fwd_sqrt, bwd_sqrt, saves_out},
        {"abs", 1, {}, shape_same, fwd_abs, bwd_abs, saves_in},
        {"square", 1, {}, shape_same, fwd_square, bwd_square, saves_in},
        {"sigmoid", 1, {}, shape_same, fwd_sigmoid, bwd_sigmoid, saves_out},
        {"tanh", 1, {}, shape_same, fwd_tanh, bwd_tanh, saves_out},
        {"relu", 1, {}, shape_same, fwd_relu, bwd_relu, saves_in},
        {"leaky_relu", 1, {real("slope", 0.01)}, shape_same, fwd_leaky_relu, bwd_leaky_relu, saves_in},
        {"softplus", 1, {}, shape_same, fwd_softplus, bwd_softplus, saves_in},
        {"clip", 1, {real("lo"), real("hi")}, shape_clip, fwd_clip, bwd_clip, saves_in},
        {"id", 1, {}, shape_same, nullptr, bwd_view, saves_none},
        // reductions over axes (None: all of them)
        {"sum", 1, {axes("axis"), flag("keepdims", false)}, shape_reduce, fwd_sum, bwd_sum, saves_none},
        {"mean", 1, {axes("axis"), flag("keepdims", false)}, shape_reduce, fwd_mean, bwd_mean, saves_none},
        {"max", 1, {axes("axis"), flag("keepdims", false)}, shape_reduce_nonempty, fwd_max, bwd_max, saves_none},
        {"min", 1, {axes("axis"), flag("keepdims", false)}, shape_reduce_nonempty, fwd_min, bwd_min, saves_none},
        {"logsumexp", 1, {axes("axis"), flag("keepdims", false)}, shape_reduce, fwd_logsumexp, bwd_logsumexp, saves_both},
        {"var", 1, {axes("axis"), flag("keepdims", false), real("ddof", 0)}, shape_reduce, fwd_var, bwd_var, saves_in},
        {"row_sum", 1, {}, shape_row_reduce, fwd_row_sum, bwd_row_sum, saves_none},
        {"row_max", 1, {}, shape_row_max, fwd_row_max, bwd_row_max, saves_none},
        {"normalize", 1, {}, shape_matrix, fwd_normalize, bwd_normalize, saves_in},
        // linear algebra
        {"matmul", 2, {}, shape_matmul, fwd_matmul, bwd_matmul, saves_in},
        {"batch_mm", 2, {}, shape_batch_mm, fwd_batch_mm, bwd_batch_mm, saves_in},
        {"linear", any, {}, shape_linear, fwd_linear, bwd_linear, saves_in},
        // shape
        {"reshape", 1, {integers("shape")}, shape_reshape, nullptr, bwd_view, saves_none},
        {"squeeze", 1, {integer("dim", 0)}, shape_squeeze, nullptr, bwd_view, saves_none},
        {"unsqueeze", 1, {integer("dim", 0)}, shape_unsqueeze, nullptr, bwd_view, saves_none},
        {"expand", 1, {integer("dim"), integer("repeats")}, shape_expand, fwd_broadcast, bwd_broadcast, saves_none},
        {"broadcast_to", 1, {integers("shape")}, shape_broadcast_to, fwd_broadcast, bwd_broadcast, saves_none},
        {"transpose", 1, {integers("axes")}, shape_transpose, fwd_transpose, bwd_transpose, saves_none},
        {"concatenate", any, {integer("axis", 0)}, shape_concatenate, fwd_concatenate, bwd_concatenate, saves_none},
        {"select", 1, {indices("indices")}, shape_select, fwd_select, bwd_select, saves_none},
        {"getitem", 1, {integer("offset"), integers("shape"), integers("strides")}, shape_getitem, fwd_getitem,
         bwd_getitem, saves_none},
        {"gather", 1, {indices("indices")}, shape_gather, fwd_gather, bwd_gather, saves_none},
        {"setitem", 2, {indices("indices")}, shape_setitem, fwd_setitem, bwd_setitem, saves_none},
        // neural-network layers and losses (fused)
        {"softmax", 1, {}, shape_softmax, fwd_softmax, bwd_softmax, saves_out},
        {"log_softmax", 1, {}, shape_softmax, fwd_log_softmax, bwd_log_softmax, saves_out},
        {"cross_entropy", 1, {indices("targets"), reduction}, shape_cross_entropy, fwd_cross_entropy,
         bwd_cross_entropy, saves_none},
        {"binary_cross_entropy", 2, {reduction}, shape_pair_loss, fwd_binary_cross_entropy,
         bwd_binary_cross_entropy, saves_in},
        {"binary_cross_entropy_with_logits", 2, {reduction}, shape_pair_loss, fwd_binary_cross_entropy_with_logits,
         bwd_binary_cross_entropy_with_logits, saves_in},
        {"mse_loss", 2, {reduction}, shape_pair_loss, fwd_mse_loss, bwd_mse_loss, saves_in},
        // convolution and pooling on NCHW images (pairs are (height, width))
        {"conv2d", any, {integers("stride"), integers("padding"), integers("dilation"), integer("groups", 1)},
         shape_conv2d, fwd_conv2d, bwd_conv2d, saves_in},
        {"max_pool2d", 1, {integers("kernel_size"), integers("stride"), integers("padding"), integers("dilation"),
                           flag("ceil_mode", false)},
         shape_max_pool2d, fwd_max_pool2d, bwd_max_pool2d, saves_both},
        {"avg_pool2d", 1, {integers("kernel_size"), integers("stride"), integers("padding"), flag("ceil_mode", false),
                           flag("count_include_pad", true), integer("divisor_override", 0)},
         shape_avg_pool2d, fwd_avg_pool2d, bwd_avg_pool2d, saves_none},
        {"adaptive_avg_pool2d", 1, {integers("output_size")}, shape_adaptive_avg_pool2d, fwd_adaptive_avg_pool2d,
         bwd_adaptive_avg_pool2d, saves_none},
        {"pad", 1, {integers("pad"), real("value", 0)}, shape_pad, fwd_pad, bwd_pad, saves_none},
    };
}

int op_index(const std::string& name) {
    const auto& table = op_table();
    for (size_t i = 0; i < table.size(); ++i)
        if (name == table[i].name) return static_cast<int>(i);
    throw std::invalid_argument("unknown op '" + name + "'");
}

const AttrSpec* OpDef::attr(std::string_view n) const {
    for (const auto& a : attrs)
        if (n == a.name) return &a;
    return nullptr;
}

const char* attr_kind_name(AttrKind k) {
    switch (k) {
        case AttrKind::integer: return "integer";
        case AttrKind::integers: return "integers";
        case AttrKind::axes: return "axes";
        case AttrKind::real: return "real";
        case AttrKind::flag: return "flag";
        case AttrKind::choice: return "choice";
        case AttrKind::indices: return "indices";
    }
    return "?";
}

std::vector<std::string> choice_names(const AttrSpec& spec) {
    std::vector<std::string> names;
    std::string_view rest = spec.choices ? spec.choices : "";
    while (!rest.empty()) {
        const size_t bar = rest.find('|');
        names.emplace_back(rest.substr(0, bar));
        rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    }
    return names;
}

const char* Call::name() const { return def ? def->name : "?"; }

// An attribute the kernel reads but the row does not declare is a bug in the engine, not in the
// user's call: a logic_error (the test suite runs every op, so it cannot go unnoticed).
const AttrValue& Call::value(const char* attr, AttrKind kind) const {
    for (size_t i = 0; def && i < def->attrs.size(); ++i) {
        const AttrSpec& spec = def->attrs[i];
        if (std::strcmp(spec.name, attr) != 0) continue;
        // an axes attribute that is not None reads as its list of integers
        const bool compatible = spec.kind == kind || (kind == AttrKind::integers && spec.kind == AttrKind::axes);
        if (!compatible || i >= attrs.values.size()) break;
        return attrs.values[i];
    }
    throw std::logic_error(std::string(name()) + ": kernel reads attribute '" + attr + "' as " + attr_kind_name(kind) +
                           ", which its row does not declare");
}

int64_t Call::integer(const char* attr) const { return value(attr, AttrKind::integer).ints.at(0); }
const std::vector<int64_t>& Call::integers(const char* attr) const { return value(attr, AttrKind::integers).ints; }
bool Call::all_axes(const char* attr) const { return value(attr, AttrKind::axes).none; }
double Call::real(const char* attr) const { return value(attr, AttrKind::real).real; }
bool Call::flag(const char* attr) const { return value(attr, AttrKind::flag).ints.at(0) != 0; }
std::string_view Call::choice(const char* attr) const {
    const int64_t k = value(attr, AttrKind::choice).ints.at(0);
    std::string_view rest = def->attr(attr)->choices;
    for (int64_t i = 0; i < k; ++i) rest = rest.substr(rest.find('|') + 1);
    return rest.substr(0, rest.find('|'));
}

}  // namespace tg
