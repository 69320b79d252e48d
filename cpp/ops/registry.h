// The one table of ops: each row binds a name, a shape rule, a forward and a backward kernel.
#pragma once

#include <string>
#include <vector>

#include "tensor.h"

namespace tg {

// Constants an op takes besides its tensor inputs; no gradient flows to them.
struct Attrs {
    std::vector<int64_t> ints;  // axes, shapes, flags
    std::vector<double> reals;  // slopes, bounds
    Tensor index;               // int64 indices (select, gather, cross-entropy targets)
};

// One application of an op: what its kernels see, kept on the tape for the backward.
struct Call {
    std::vector<Tensor> in;   // all of one float dtype (the tape promotes before the call)
    std::vector<Tensor> out;  // allocated from the shape rule before the forward runs
    Attrs attrs;
    Tensor aux;  // extra state a forward keeps for its backward (e.g. argmax positions)
};

// Validates the inputs and attributes (ValueError/IndexError naming the op) and gives the output shapes.
using ShapeRule = std::vector<Shape> (*)(const char* op, const Call&);
using Forward = void (*)(Call&);
// Gradients of the inputs given those of the outputs; where need[i] is false the kernel may skip
// input i and return an undefined Tensor for it. Null for ops without a gradient (comparisons).
using Backward = std::vector<Tensor> (*)(const Call&, const std::vector<Tensor>& grads,
                                         const std::vector<bool>& need);

// What an op's backward reads, besides shapes and aux: checked against in-place changes.
enum Saves : uint8_t { saves_none = 0, saves_in = 1, saves_out = 2, saves_both = 3 };

struct OpDef {
    const char* name;
    int arity;   // number of tensor inputs; -1: one or more
    int n_ints;  // number of integer attributes (attrs.ints); -1: any number
    int n_reals; // number of real attributes (attrs.reals)
    ShapeRule shape;
    Forward forward;  // null for views: the output shares the input's buffer with a new shape
    Backward backward;
    Saves saves;  // tensors the backward reads
};

const std::vector<OpDef>& op_table();
// Index of an op by name; ValueError if there is none.
int op_index(const std::string& name);

}  // namespace tg
