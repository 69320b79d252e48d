// Bindings of the PyTorch dialect's core: its tensors (leaves that keep integer and boolean
// dtypes), and in-place changes, which a graph records as PyTorch does: the tensor keeps its
// identity and memory, takes the new value, and gets the in-place op as its source.
#include <pybind11/stl.h>

#include <cstring>

#include "bindings/graph.h"
#include "bindings/modules.h"
#include "jit.h"

namespace tg {

namespace {

using namespace py_convert;
using namespace pybind11::literals;

// A numpy view of the tensor's memory that Python may write (the in-place methods write there and
// then bump the version).
py::array writable(const Node& n) {
    jit::refuse("changes a tensor in place", "use an optimiser (tapegrad.optim) for the update");
    return to_numpy(n.value, true);
}

// Makes the Python object `obj` stand for node `to` from now on (its attributes stay with it). The
// node it stood for lives on for the graph that holds it, and gets a Python object of its own if
// Python asks for it again (e.g. through op_node.inputs).
void rebind(py::handle obj, const NodePtr& to) {
    auto* inst = reinterpret_cast<py::detail::instance*>(obj.ptr());
    const py::detail::type_info* tinfo = py::detail::get_type_info(typeid(Node));
    py::detail::value_and_holder vh = inst->get_value_and_holder(tinfo);
    py::detail::deregister_instance(inst, vh.value_ptr(), tinfo);
    vh.holder<NodePtr>() = to;
    vh.value_ptr() = to.get();
    py::detail::register_instance(inst, to.get(), tinfo);
}

// target <- compute(target), in place. Without recording (the result has no source: nothing
// required grad, or no_grad), the result is written into target's memory. Recording, the node
// target stood for keeps its place in the graph with a copy of its old value (what compute read),
// and target becomes the result node, whose value is target's own memory, overwritten: ops that
// saved that memory find its version changed at backward and say so. `name` is the method as
// users call it ("add_", "__setitem__").
void inplace(py::handle target, py::object compute, const std::string& name) {
    jit::refuse("changes a tensor in place (" + name + ")", "use an optimiser (tapegrad.optim) for the update");
    const NodePtr y = target.cast<NodePtr>();
    if (y->requires_grad && !y->source && grad_enabled())
        throw GraphError(name + ": a leaf tensor that requires grad cannot be changed in place while grad mode is "
                         "on (its gradient would be lost); do it under `with tapegrad.no_grad():` or through .data");
    const Tensor memory = y->value;
    const bool may_record = grad_enabled();
    if (may_record) y->value = memory.clone();  // what compute reads, and what the old node keeps
    NodePtr r;
    try {
        r = compute(target).cast<NodePtr>();
    } catch (...) {
        y->value = memory;
        throw;
    }
    const bool recorded = r->source != nullptr;
    if (!recorded) y->value = memory;
    auto fail = [&](const std::string& why, bool type) {
        y->value = memory;
        if (type) throw DTypeError(name + ": " + why);
        throw std::invalid_argument(name + ": " + why);
    };
    if (r->value.shape() != memory.shape())
        fail("the result has shape " + shape_str(r->value.shape()) + ", which does not match the tensor's shape " +
             shape_str(memory.shape()), false);
    if (r->value.dtype() != memory.dtype() && (recorded || (is_float(r->value.dtype()) && !is_float(memory.dtype()))))
        fail(std::string("the result has dtype ") + dtype_name(r->value.dtype()) + ", which cannot be written into a " +
             dtype_name(memory.dtype()) + " tensor" + (recorded ? " on a graph (convert the other operand first)" : ""),
             true);
    const Tensor result = r->value.to(memory.dtype());
    if (result.raw() != memory.raw()) std::memcpy(memory.raw(), result.raw(), memory.nbytes());
    memory.bump_version();
    if (!recorded) return;
    r->value = memory;
    r->name = y->name;
    r->retain = y->retain;
    r->torch = y->torch || r->torch;
    rebind(target, r);
}

}  // namespace

void bind_dialect(py::module_& m) {
    m.def(
        "tensor_leaf",
        [](py::object data, bool requires_grad, bool share) {
            Tensor t = torch_tensor(data, share);
            if (requires_grad && !is_float(t.dtype()))
                throw GraphError(std::string("tensor: only tensors of a floating point dtype can require gradients, "
                                             "got ") + dtype_name(t.dtype()) + " (pass dtype=tapegrad.float32)");
            auto n = std::make_shared<Node>(std::move(t), requires_grad);
            n->torch = true;
            return n;
        },
        py::arg("data"), py::arg("requires_grad") = false, py::arg("share") = false,
        "A PyTorch-dialect leaf holding `data` (copied unless share and it is a C-contiguous, writeable array "
        "of the kept dtype: floats keep their width, integers become int64, booleans bool).");
    m.def("writable", &writable, py::arg("node"),
          "A writeable numpy view of the node's memory (for in-place methods, which then bump its version).");
    m.def("inplace", &inplace, py::arg("target"), py::arg("compute"), py::arg("name"),
          "target <- compute(target) in place: written into its memory, and recorded on the graph (target "
          "becomes the result node, keeping its identity) when the result has a source.");
}

}  // namespace tg
