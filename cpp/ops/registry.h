// The one table of ops: each row binds a name, its attributes, a shape rule, a forward and a
// backward kernel, and what the backward reads. Everything else (bindings, the Python classes,
// the docs and test checks) is driven from these rows.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "small_vector.h"
#include "tensor.h"

namespace tg {

// The constants an op takes besides its tensor inputs (no gradient flows to them), declared once
// per op in its row. The bindings fill them from keyword arguments by these declarations, and
// kernels read them by name (Call::integer("dim"), Call::axes("axis"), ...).
enum class AttrKind : uint8_t {
    integer,   // one int64
    integers,  // a list of int64 (a shape, a permutation)
    axes,      // None (all axes), one int or a list of ints
    real,      // one double
    flag,      // a bool
    choice,    // one of the names in `choices` ("mean|sum"), kept as its position
    indices,   // an int64 index array (Call::attrs.index): select, gather, cross-entropy targets
};

struct AttrSpec {
    const char* name;
    AttrKind kind;
    bool required;
    double fallback;      // the default of an optional integer, real, flag or choice (its position)
    const char* choices;  // choice: the allowed names separated by '|'
};

// Builders for the rows: integer("dim", 0) is optional with default 0, integer("dim") required.
inline AttrSpec integer(const char* n) { return {n, AttrKind::integer, true, 0, nullptr}; }
inline AttrSpec integer(const char* n, int64_t d) { return {n, AttrKind::integer, false, double(d), nullptr}; }
inline AttrSpec integers(const char* n) { return {n, AttrKind::integers, true, 0, nullptr}; }
inline AttrSpec axes(const char* n) { return {n, AttrKind::axes, false, 0, nullptr}; }  // default None
inline AttrSpec real(const char* n) { return {n, AttrKind::real, true, 0, nullptr}; }
inline AttrSpec real(const char* n, double d) { return {n, AttrKind::real, false, d, nullptr}; }
inline AttrSpec flag(const char* n, bool d) { return {n, AttrKind::flag, false, d ? 1.0 : 0.0, nullptr}; }
// The first choice is the default.
inline AttrSpec choice(const char* n, const char* choices) { return {n, AttrKind::choice, false, 0, choices}; }
inline AttrSpec indices(const char* n) { return {n, AttrKind::indices, true, 0, nullptr}; }

const char* attr_kind_name(AttrKind k);
// The names of a choice attribute, in order.
std::vector<std::string> choice_names(const AttrSpec& spec);

// One attribute's value: ints for integer/integers/axes/flag/choice, real for real; none for axes=None.
struct AttrValue {
    std::vector<int64_t> ints;
    double real = 0;
    bool none = false;
};

struct Attrs {
    std::vector<AttrValue> values;  // one per AttrSpec of the op's row, in the row's order
    Tensor index;                   // the indices attribute, if the op has one
};

struct OpDef;

// An op's input or output tensors, or their gradients: most ops have one or two (three, such as
// linear's, go to the heap: two keep an OpNode within glibc's per-thread cache, see tape.h).
using Tensors = SmallVector<Tensor, 2>;
// The output shapes a shape rule gives.
using Shapes = SmallVector<Shape, 2>;

// One application of an op: what its kernels see, kept on the tape for the backward.
struct Call {
    const OpDef* def = nullptr;  // the op's row (set by run_forward)
    Tensors in;                  // all of one float dtype (the tape promotes before the call)
    Tensors out;                 // allocated from the shape rule before the forward runs
    Attrs attrs;
    Tensor aux;  // extra state a forward keeps for its backward (e.g. argmax positions)

    const char* name() const;  // the op's name, as users call it: for error messages
    int64_t integer(const char* attr) const;
    const std::vector<int64_t>& integers(const char* attr) const;
    bool all_axes(const char* attr) const;  // an axes attribute given as None
    double real(const char* attr) const;
    bool flag(const char* attr) const;
    std::string_view choice(const char* attr) const;

  private:
    const AttrValue& value(const char* attr, AttrKind kind) const;
};

// Validates the inputs and attributes (ValueError/IndexError naming the op) and gives the output shapes.
using ShapeRule = Shapes (*)(const Call&);
using Forward = void (*)(Call&);
// Gradients of the inputs given those of the outputs; where need[i] is false the kernel may skip
// input i and return an undefined Tensor for it. Null for ops without a gradient (comparisons).
using Backward = Tensors (*)(const Call&, const Tensors& grads, const std::vector<bool>& need);

// What an op's backward reads, besides shapes, attributes and aux: checked against in-place
// changes (and tests overwrite what a row says is not read, to check the claim).
enum Saves : uint8_t { saves_none = 0, saves_in = 1, saves_out = 2, saves_both = 3 };

struct OpDef {
    const char* name;  // the name users call (vg.<name>), used in every message about the op
    int arity;         // number of tensor inputs; -1: one or more
    std::vector<AttrSpec> attrs;
    ShapeRule shape;
    Forward forward;  // null for views: the output shares the input's buffer with a new shape
    Backward backward;
    Saves saves;  // tensors the backward reads

    const AttrSpec* attr(std::string_view name) const;
};

// The rows (registry.cpp), with the kernels of the instruction set chosen at import (isa.cpp).
const std::vector<OpDef>& op_table();
// Index of an op by name; ValueError if there is none.
int op_index(const std::string& name);

}  // namespace tg
