// Bindings of the graph: TensorNode and OpNode, op application (native and Python ops), the
// raw-array forward/backward of native ops, and the op table as Python sees it (TensorNode's
// operators and constructor and the one-input functions are in fast_calls.cpp).
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/graph.h"
#include "bindings/modules.h"
#include "jit.h"

namespace tg {

namespace {

using namespace py_convert;
using namespace pybind11::literals;

// Forward kernels on at least this many elements run with the GIL released; below it the
// release/acquire pair costs more than it frees.
constexpr int64_t kReleaseGilElements = 1 << 14;

// Python classes of the native ops, by op index (set by the Python layer at import).
std::vector<PyObject*>& op_classes() {
    static std::vector<PyObject*> classes(op_table().size(), nullptr);
    return classes;
}

}  // namespace

const OpDef& def_of(int op) { return op_table().at(static_cast<size_t>(op)); }

namespace {

bool large(const Nodes& inputs) {
    for (const auto& n : inputs)
        if (n->value.numel() >= kReleaseGilElements) return true;
    return false;
}

// The folder of the tapegrad package: frames from files inside it are the library's own.
const std::string& package_dir() {
    static const std::string dir = [] {
        py::object os = py::module_::import("os");
        std::string init = py::str(py::module_::import("tapegrad").attr("__file__"));
        return std::string(py::str(os.attr("path").attr("dirname")(os.attr("path").attr("realpath")(init)))) + "/";
    }();
    return dir;
}

// In anomaly mode, op nodes remember the Python stack that created them, for the error message.
void remember_trace(const Nodes& outputs) {
    if (anomaly_enabled() && !outputs.empty() && outputs[0]->source) {
        // The user's frames nearest the call: the package's own are dropped, the last six kept.
        py::object os = py::module_::import("os");
        py::list frames = py::module_::import("traceback").attr("extract_stack")();
        py::list mine;
        for (auto f : frames) {
            std::string file = py::str(os.attr("path").attr("realpath")(f.attr("filename")));
            if (file.rfind(package_dir(), 0) != 0) mine.append(f);
        }
        const size_t n = py::len(mine), first = n > 6 ? n - 6 : 0;
        std::string trace;
        py::list kept;
        for (size_t i = first; i < n; ++i) kept.append(mine[i]);
        for (auto line : py::module_::import("traceback").attr("format_list")(kept)) trace += py::str(line);
        outputs[0]->source->trace = trace;
    }
}

}  // namespace

Nodes apply_op(int op, Nodes inputs, Attrs attrs) {
    Nodes out;
    if (large(inputs)) {
        py::gil_scoped_release nogil;
        out = tg::apply(op, std::move(inputs), std::move(attrs));
    } else {
        out = tg::apply(op, std::move(inputs), std::move(attrs));
    }
    remember_trace(out);
    return out;
}

NodePtr new_leaf(py::handle value, py::handle source, py::handle name, bool requires_grad) {
    if (node_or_null(value)) throw DTypeError("TensorNode: value must be an array, not a TensorNode (use its .value)");
    if (!source.is_none()) throw std::invalid_argument("TensorNode: source is set by ops; create leaves with source=None");
    auto n = std::make_shared<Node>(to_tensor(value, "TensorNode", true), requires_grad);
    if (!name.is_none()) n->name = py::str(name);
    return n;
}

py::typing::List<Node> node_list(const Nodes& nodes) {
    py::typing::List<Node> out(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) out[i] = node_object(nodes[i]);
    return out;
}

py::object nodes_out(const Nodes& nodes) {
    if (nodes.size() == 1) return node_object(nodes[0]);
    return node_list(nodes);
}

// Input i of op `def`: the node of a TensorNode, or a DTypeError naming the op.
NodePtr input_node(const OpDef& def, py::handle x, size_t i) {
    if (NodePtr n = node_or_null(x)) return n;
    throw DTypeError(std::string(def.name) + ": all inputs must be TensorNodes; input " + std::to_string(i) + " is " +
                     type_name(x) + " (constants go in as keyword arguments)");
}

Nodes node_inputs(const OpDef& def, py::handle inputs) {
    Nodes nodes;
    size_t i = 0;
    for (auto x : inputs) nodes.push_back(input_node(def, x, i++));
    return nodes;
}

namespace {

// A Python Op on the tape: its backward is the class's static backward(context, *grads).
struct PythonOp : ExternalOp {
    py::object cls, context;
    PythonOp(py::object c, py::object ctx) : cls(std::move(c)), context(std::move(ctx)) {}
    ~PythonOp() override {
        py::gil_scoped_acquire gil;
        cls = py::object();
        context = py::object();
    }
    std::string name() const override {
        py::gil_scoped_acquire gil;
        return py::str(cls.attr("__name__"));
    }
    void release() override {
        py::gil_scoped_acquire gil;
        context = py::dict();
    }
    Tensors backward(const Tensors& grads) override {
        py::gil_scoped_acquire gil;
        const std::string op = py::str(cls.attr("__name__"));
        py::tuple args(grads.size() + 1);
        args[0] = context;
        for (size_t k = 0; k < grads.size(); ++k) args[k + 1] = to_numpy(grads[k]);
        // vg.Function maps the gradients of forward's arguments to its node inputs in _tape_backward.
        py::object res = (py::hasattr(cls, "_tape_backward") ? cls.attr("_tape_backward") : cls.attr("backward"))(*args);
        Tensors out;
        if (!py::isinstance<py::tuple>(res) && !py::isinstance<py::list>(res)) res = py::make_tuple(res);
        for (auto g : res) out.push_back(g.is_none() ? Tensor() : to_tensor(g, op + ".backward", false));
        return out;
    }
};

// A native op's forward run on raw arrays (vg.Sigmoid.forward(context, array)): what backward needs.
struct NativeContext {
    int op;
    Call call;
};

// The op's Python class name (vg.Add -> "Add"), as vugrad prints it; the engine name otherwise.
std::string op_label(const OpNode& o) {
    if (o.external) return o.name();
    PyObject* cls = op_classes()[static_cast<size_t>(o.op)];
    return cls ? std::string(py::str(py::handle(cls).attr("__name__"))) : o.name();
}

std::string node_repr(const Node& n) {
    std::string s = "TensorNode[";
    if (!n.name.empty()) s += n.name + ", ";
    s += "size " + shape_str(n.value.shape()) + ", " + dtype_name(n.value.dtype()) + ", source " +
         (n.source ? op_label(*n.source) : "None") + "]";
    return s;
}


const char* saves_name(Saves s) {
    switch (s) {
        case saves_none: return "none";
        case saves_in: return "inputs";
        case saves_out: return "outputs";
        default: return "both";
    }
}

// An op's attributes by name, as Python values (indices as an array, None once released).
py::dict attrs_dict(const Call& c) {
    py::dict d;
    for (size_t i = 0; i < c.def->attrs.size() && i < c.attrs.values.size(); ++i) {
        const AttrSpec& spec = c.def->attrs[i];
        const AttrValue& v = c.attrs.values[i];
        py::object value;
        switch (spec.kind) {
            case AttrKind::integer: value = py::int_(v.ints.at(0)); break;
            case AttrKind::integers: value = py::tuple(py::cast(v.ints)); break;
            case AttrKind::axes: value = v.none ? py::object(py::none()) : py::object(py::tuple(py::cast(v.ints))); break;
            case AttrKind::real: value = py::float_(v.real); break;
            case AttrKind::flag: value = py::bool_(v.ints.at(0) != 0); break;
            case AttrKind::choice: value = py::str(std::string(c.choice(spec.name))); break;
            case AttrKind::indices:
                value = c.attrs.index.defined() ? py::object(to_numpy(c.attrs.index, false)) : py::object(py::none());
                break;
        }
        d[spec.name] = value;
    }
    return d;
}

// The op table as Python sees it: one dict per row.
py::list table_rows() {
    py::list rows;
    for (const OpDef& d : op_table()) {
        py::list attrs;
        for (const AttrSpec& a : d.attrs) {
            py::object fallback = py::none();
            if (!a.required && a.kind == AttrKind::choice) fallback = py::str(choice_names(a).at(0));
            else if (!a.required && a.kind == AttrKind::real) fallback = py::float_(a.fallback);
            else if (!a.required && a.kind == AttrKind::flag) fallback = py::bool_(a.fallback != 0);
            else if (!a.required && a.kind == AttrKind::integer) fallback = py::int_(static_cast<int64_t>(a.fallback));
            attrs.append(py::dict("name"_a = a.name, "kind"_a = attr_kind_name(a.kind), "required"_a = a.required,
                                  "default"_a = fallback, "choices"_a = choice_names(a)));
        }
        rows.append(py::dict("name"_a = d.name, "arity"_a = d.arity, "attrs"_a = attrs,
                             "differentiable"_a = d.backward != nullptr, "view"_a = d.forward == nullptr,
                             "saves"_a = saves_name(d.saves)));
    }
    return rows;
}

// A PyTorch-dialect gradient: None, or a tensor without a graph sharing the gradient's memory
// (so p.grad.zero_() and p.grad.data.sub_(...) change the gradient itself).
py::object torch_grad(const Node& n) {
    if (!n.grad.defined()) {
        if (n.source && !n.retain && n.source->differentiated)
            PyErr_WarnEx(PyExc_UserWarning,
                         "the .grad of a tensor made by an op is not kept by backward (it is None); call "
                         ".retain_grad() on it before backward to keep it",
                         1);
        return py::none();
    }
    auto g = std::make_shared<Node>(n.grad, false);
    g->torch = true;
    return py::cast(g);
}

}  // namespace

void bind_nodes(py::module_& m) {
    // Both classes exist before their members are bound, so that each one's signatures name the other.
    py::class_<OpNode, OpNodePtr> op_node(m, "OpNode", "One application of an op in the graph (a diamond node).");
    py::class_<Node, NodePtr> node(m, "TensorNode", py::dynamic_attr(),
                                   "A value in the computation graph, linked to the op that produced it.");
    remember_node_class(node);
    op_node
        .def_property_readonly(
            "op",
            [](const OpNode& o) -> py::object {
                if (o.external) return static_cast<PythonOp*>(o.external.get())->cls;
                PyObject* cls = op_classes()[static_cast<size_t>(o.op)];
                return cls ? py::reinterpret_borrow<py::object>(cls) : py::str(o.name());
            },
            "The op class (e.g. vg.Add) whose forward produced the outputs.")
        .def_property_readonly("name", &OpNode::name, "The op's name (the engine's, or the Python op class's).")
        .def_property_readonly(
            "inputs",
            [](const OpNode& o) { return node_list(o.inputs); },
            "The TensorNodes the op was applied to.")
        .def_property_readonly(
            "outputs",
            [](const OpNode& o) {
                py::list out;
                for (const auto& w : o.outputs) {
                    auto n = w.lock();
                    out.append(n ? node_object(n) : py::none());
                }
                return out;
            },
            "The TensorNodes the op produced (None for an output that no longer exists).")
        .def_property_readonly(
            "context",
            [](const OpNode& o) -> py::object {
                if (o.external) return static_cast<PythonOp*>(o.external.get())->context;
                py::dict d;
                py::list ins, outs;
                for (const auto& t : o.call.in) ins.append(to_numpy(t));
                for (const auto& t : o.call.out) outs.append(to_numpy(t));
                d["inputs"] = ins;
                d["outputs"] = outs;
                if (o.call.def && !o.call.def->attrs.empty()) d["attrs"] = attrs_dict(o.call);
                if (o.call.aux.defined()) d["aux"] = to_numpy(o.call.aux);
                return d;
            },
            "What the op saved for its backward (for Python ops: the dict its forward filled).")
        .def("__repr__", [](const OpNode& o) { return "OpNode[" + op_label(o) + "]"; }, "OpNode[op class name].");

    node.def_property(
            // Read-only for nodes made by ops: their values may be saved for the backward.
            "value",
            [](const NodePtr& np) {
                const Node& n = *np;
                // While vg.jit records, values that change from call to call (what ops made, the
                // arguments) cannot be read, and the others (parameters, buffers) only read.
                // An argument's value may be read (read-only), as an array that the step then uses
                // like an array argument (class labels for a loss, say).
                if (jit::Recorder* r = jit::recording()) {
                    py::array view = to_numpy(n.value, false);
                    if (n.source || (r->is_argument(np) && !r->argument_view(np, view_info(view))))
                        jit::refuse("reads the value of " + std::string(n.source ? "a node made by an op" : "a leaf made from an argument") +
                                    " as an array (.value)", "return the node and read it after the call");
                    return view;
                }
                return to_numpy(n.value, !n.source);
            },
            [](Node& n, py::object v) {
                jit::refuse("assigns a node's value (.value = ...)", "use an optimiser (vg.optim) for the update");
                if (n.source)
                    throw std::invalid_argument("TensorNode.value: the value of a node made by an op (" + op_label(*n.source) +
                                                ") cannot be replaced: its op may have saved it for backward; "
                                                "make a new leaf instead (vg.TensorNode(array))");
                if (py::isinstance<py::array>(v)) {
                    auto a = py::reinterpret_borrow<py::array>(v);
                    // `p.value -= lr * p.grad` assigns back the view it just changed in place.
                    if (a.data() == n.value.raw() && Shape(a.shape(), a.shape() + a.ndim()) == n.value.shape() &&
                        a.dtype().is(numpy_dtype(n.value.dtype()))) {
                        n.value.bump_version();
                        return;
                    }
                }
                n.value = to_tensor(v, "TensorNode.value", true);
            },
            "The node's array (shares memory with the engine: in-place changes reach it).")
        .def_property(
            "grad",
            [](Node& n) -> py::object {
                jit::refuse("reads a gradient (.grad)", "use an optimiser (vg.optim) for the update, and read "
                            "gradients after the call");
                if (n.torch) return torch_grad(n);
                if (n.source && n.source->differentiated && !n.retain && !n.grad.defined())
                    PyErr_WarnEx(PyExc_UserWarning,
                                 "this node's gradient was not kept: backward keeps the gradients of the nodes "
                                 "Python holds while it runs, and this one was reached only through the graph "
                                 "(zeros are returned); hold the node in a variable, or call node.retain_grad(), "
                                 "before backward",
                                 1);
                if (!n.grad.defined() || n.grad.shape() != n.value.shape())
                    n.grad = Tensor::zeros(n.value.shape(), n.value.dtype());
                return to_numpy(n.grad);
            },
            [](const NodePtr& np, py::object g) {
                Node& n = *np;
                if (g.is_none()) {
                    if (jit::Recorder* r = jit::recording()) r->on_node(jit::Action::clear_grad, np);
                    n.grad = Tensor();
                    return;
                }
                jit::refuse("assigns a gradient (.grad = ...)", "");
                // A tensor assigned as the gradient is kept as it is, as PyTorch does (p.grad = t; t.zero_()
                // then zeros p.grad); arrays are copied.
                const NodePtr gn = node_or_null(g);
                Tensor t = gn ? gn->value : to_tensor(g, "TensorNode.grad", false);
                if (t.shape() != n.value.shape())
                    throw std::invalid_argument("TensorNode.grad: gradient of shape " + shape_str(t.shape()) +
                                                " does not match value of shape " + shape_str(n.value.shape()));
                if (t.dtype() != n.value.dtype() && n.torch)
                    throw DTypeError(std::string("TensorNode.grad: assigned a gradient of dtype ") + dtype_name(t.dtype()) +
                                     " to a tensor of dtype " + dtype_name(n.value.dtype()));
                n.grad = t.to(n.value.dtype());
            },
            "Gradient of the loss with respect to the value. vugrad's TensorNode: an array (zeros before "
            "backward); PyTorch's tensors: a tensor sharing the gradient's memory, or None before a backward "
            "reaches the node (and for nodes made by ops, unless retain_grad()).")
        .def_readwrite("source", &Node::source, "The OpNode that produced this node (None for leaves).")
        .def_property(
            "name",
            [](const Node& n) -> py::object {
                if (n.name.empty()) return py::none();
                return py::str(n.name);
            },
            [](Node& n, py::object v) { n.name = v.is_none() ? "" : std::string(py::str(v)); },
            "An optional label, shown by repr and in pictures of the graph.")
        .def_property(
            "requires_grad", [](const Node& n) { return n.requires_grad; },
            [](Node& n, bool wanted) {
                jit::refuse("sets requires_grad", "set it before the call");
                if (n.torch && n.source && !wanted)
                    throw GraphError("requires_grad: you can only change requires_grad of leaf tensors (this one was "
                                     "made by " + op_label(*n.source) + "); use .detach() for a tensor without a graph");
                if (wanted && !is_float(n.value.dtype()))
                    throw GraphError(std::string("requires_grad: only tensors of a floating point dtype can require "
                                                 "gradients; this one is ") + dtype_name(n.value.dtype()) +
                                     " (make it with dtype=tapegrad.float32 or call .float())");
                n.requires_grad = wanted;
            },
            "Whether gradients flow to this node (leaves: whether .grad is filled).")
        .def_property_readonly("dialect", [](const Node& n) { return n.torch ? "pytorch" : "vugrad"; },
                               "'vugrad' for vg.TensorNode and what is made from it only, 'pytorch' for the "
                               "tensors of tapegrad.tensor and the other factories and anything computed from one.")
        .def_property_readonly("is_leaf", [](const Node& n) { return !n.source; },
                               "True for nodes not made by an op (no source).")
        .def("retain_grad",
             [](const NodePtr& n) {
                 if (jit::Recorder* r = jit::recording()) r->on_node(jit::Action::retain, n);
                 n->retain = true;
             },
             "Keep this node's gradient after backward even though an op made it.")
        .def(
            "detach",
            [](const NodePtr& n) {
                auto d = std::make_shared<Node>(n->value, false);
                d->name = n->name;
                d->torch = n->torch;
                if (jit::Recorder* r = jit::recording()) r->detached(n, d);
                return d;
            },
            "A new leaf sharing this node's value, cut off from the graph (no gradient).")
        .def_property_readonly("_has_grad", [](const Node& n) { return n.grad.defined(); },
                               "Whether a gradient is stored (reading .grad would create zeros).")
        .def_property_readonly("_version", [](const Node& n) { return n.value.version(); },
                               "Counter of in-place changes to the value through the library.")
        .def("_bump_version",
             [](const Node& n) {
                 jit::refuse("changes a node's value in place", "use an optimiser (vg.optim) for the update");
                 n.value.bump_version();
             },
             "Count an in-place change of the value made outside the library.")
        .def_property_readonly("shape", [](const Node& n) { return shape_tuple(n.value.shape()); },
                               "The value's shape, a tuple of ints.")
        .def_property_readonly("ndim", [](const Node& n) { return n.value.ndim(); }, "The value's number of axes.")
        .def_property_readonly("dtype", [](const Node& n) { return numpy_dtype(n.value.dtype()); },
                               "The value's numpy dtype (float32 or float64).")
        .def(
            "size",
            [](const Node& n, py::object dim) -> py::object {
                py::tuple shape = shape_tuple(n.value.shape());
                if (dim.is_none()) return shape;
                return py::int_(n.value.dim(normalize_axis(dim.cast<int64_t>(), n.value.ndim(), "size")));
            },
            py::arg("dim") = py::none(), "The shape as a tuple, or the size of one dimension.")
        .def("__len__",
             [](const Node& n) {
                 if (n.value.ndim() == 0) throw DTypeError("len() of a 0-d TensorNode");
                 return n.value.dim(0);
             },
             "The size of the first axis.")
        .def(
            "item",
            [](const Node& n) -> py::object {
                jit::refuse("reads a value with .item()", "return the node and read it after the call");
                const double value = n.value.item();  // ValueError unless one element
                switch (n.value.dtype()) {
                    case DType::i64: return py::int_(*n.value.data<int64_t>());  // exact beyond 2^53
                    case DType::b8: return py::bool_(value != 0);
                    default: return py::float_(value);
                }
            },
            "The value of a one-element tensor as a Python number: a float, or an int or bool for integer and "
            "boolean tensors.")
        .def(
            "backward",
            [](const NodePtr& n, py::object gradient, py::object retain_graph) {
                Tensor seed;
                if (!gradient.is_none()) {
                    const NodePtr gn = node_or_null(gradient);
                    seed = gn ? gn->value : to_tensor(gradient, "backward", false);
                }
                if (n->torch && !n->requires_grad)
                    throw GraphError("backward: this tensor does not require grad and has no grad_fn (no input of the "
                                     "ops that made it requires grad, or it was made under no_grad)");
                if (n->torch && !seed.defined() && n->value.numel() != 1)
                    throw GraphError("backward: grad can be implicitly created only for scalar outputs; this tensor "
                                     "has shape " + shape_str(n->value.shape()) + " (pass gradient=)");
                const bool retain = !retain_graph.is_none() && retain_graph.cast<bool>();
                py::gil_scoped_release nogil;
                tg::backward(n, retain, seed);
            },
            py::arg("gradient") = py::none(), py::arg("retain_graph") = py::none(),
            "Backpropagate from this node with `gradient` as its gradient (default 1: one-element nodes only). "
            "Leaves that require grad add the gradient to .grad; the graph's saved values are freed unless "
            "retain_graph=True.")
        .def("zero_grad", &tg::zero_grad, "Set the gradients of this node and all nodes below it to zero.")
        .def(
            "clear",
            [](const NodePtr& n) {
                jit::refuse("disconnects a graph (clear())", "");
                tg::clear(n);
            },
            "Disconnect the graph below this node so it can be freed.")
        .def(
            "_fill_grad_zero",
            [](const NodePtr& n) {
                if (jit::Recorder* r = jit::recording()) r->on_node(jit::Action::fill_grad, n);
                if (n->grad.defined()) n->grad.fill(0.0);
            },
            "Overwrite the stored gradient (if any) with zeros in place.")
        .def("__repr__", &node_repr, "TensorNode[name, size (shape), dtype, source Op].")
        .def("__str__", &node_repr, "As repr.");


    py::class_<NativeContext>(m, "NativeContext", "What a native op's forward on raw arrays keeps for backward.")
        .def_property_readonly("op", [](const NativeContext& c) { return def_of(c.op).name; }, "The op's name.")
        .def_property_readonly("index", [](const NativeContext& c) { return c.op; }, "The op's row in op_table().")
        .def_property_readonly(
            "inputs",
            [](const NativeContext& c) {
                py::list ins;
                for (const auto& t : c.call.in) ins.append(to_numpy(t, false));
                return ins;
            },
            "The arrays the forward was given.");
    m.def(
        "set_trace",
        [](py::object sink) {
            if (sink.is_none()) {
                tg::set_trace({});
                return;
            }
            std::shared_ptr<void> held = hold(sink);
            tg::set_trace([held](const std::string& line) {
                py::gil_scoped_acquire gil;
                py::reinterpret_borrow<py::object>(static_cast<PyObject*>(held.get()))(line);
            });
        },
        "Trace mode for this thread: backward calls sink(line) for each op it runs (None: off).");

    m.def("op_table", &table_rows, "The engine's op table: one dict per row (name, arity, attrs, ...).");
    m.def(
        "register_op_class",
        [](int op, py::object cls) {
            PyObject*& slot = op_classes().at(static_cast<size_t>(op));
            Py_XDECREF(slot);
            slot = cls.release().ptr();  // kept for the life of the process
        },
        py::arg("op"), py::arg("cls"), "The Python class of row `op` (OpNode.op returns it).");
    m.def(
        "apply",
        [](int op, py::sequence inputs, py::dict kwargs) {
            const OpDef& def = def_of(op);
            return nodes_out(apply_op(op, node_inputs(def, inputs), make_attrs(def, kwargs)));
        },
        py::arg("op"), py::arg("inputs"), py::arg("kwargs"),
        "Applies op (a row of op_table()) to TensorNodes, with its attributes as keyword arguments.");
    m.def(
        "apply_plain",
        [](int op, py::args inputs) {
            const OpDef& def = def_of(op);
            return nodes_out(apply_op(op, node_inputs(def, inputs), make_attrs(def, py::none())));
        },
        py::arg("op"), "apply(op, nodes, {}) for ops called without attributes: the short path of Op.do_forward.");
    m.def(
        "forward",
        [](int op, py::sequence arrays, py::dict kwargs) {
            const OpDef& def = def_of(op);
            NativeContext ctx{op, {}};
            for (auto a : arrays) ctx.call.in.push_back(to_tensor(a, def.name, true));
            ctx.call.attrs = make_attrs(def, kwargs);
            run_forward(op, ctx.call);
            py::list outs;
            for (const auto& t : ctx.call.out) outs.append(to_numpy(t));
            return py::make_tuple(outs, std::move(ctx));
        },
        py::arg("op"), py::arg("arrays"), py::arg("kwargs"),
        "Runs a native op's forward on raw arrays; returns the outputs and a context for backward.");
    m.def(
        "backward",
        [](const NativeContext& ctx, py::sequence grads) {
            const char* name = def_of(ctx.op).name;
            Tensors g;
            for (auto a : grads) g.push_back(to_tensor(a, name, false));
            py::list out;
            for (const auto& t : run_backward(ctx.op, ctx.call, g)) out.append(to_numpy(t));
            return out;
        },
        py::arg("context"), py::arg("grads"), "Runs a native op's backward for a context of forward().");
    m.def(
        "record",
        [](py::object cls, py::object context, py::sequence inputs, py::object outputs) {
            const std::string name = py::str(cls.attr("__name__"));
            Nodes nodes;
            for (auto x : inputs) nodes.push_back(x.cast<NodePtr>());
            const bool many = py::isinstance<py::tuple>(outputs);
            Tensors outs;
            for (auto o : many ? py::tuple(outputs) : py::make_tuple(outputs)) {
                // An array the op made itself is adopted; a view of other memory (an input, say) is copied.
                const bool owns = py::isinstance<py::array>(o) && o.attr("base").is_none();
                outs.push_back(to_tensor(o, name + ".forward", owns));
            }
            auto res = tg::record(std::make_unique<PythonOp>(cls, context), nodes, std::move(outs));
            remember_trace(res);
            return many ? py::object(node_list(res)) : node_object(res[0]);
        },
        py::arg("cls"), py::arg("context"), py::arg("inputs"), py::arg("outputs"),
        "Puts a Python Op's application on the tape.");
}

}  // namespace tg
