// pybind11 bindings: numpy <-> Tensor without copies where possible, the node classes, op calls.
// No math here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gemm.h"
#include "ops/registry.h"
#include "optim.h"
#include "parallel.h"
#include "tape.h"

namespace py = pybind11;
using namespace py::literals;
using namespace tg;

namespace {

// Forward kernels on at least this many elements run with the GIL released; below it the
// release/acquire pair costs more than it frees.
constexpr int64_t kReleaseGilElements = 1 << 14;

// Python classes of the native ops, by op index (set by the Python layer at import).
std::vector<PyObject*>& op_classes() {
    static std::vector<PyObject*> classes(op_table().size(), nullptr);
    return classes;
}

py::dtype numpy_dtype(DType dt) {
    switch (dt) {
        case DType::f32: return py::dtype::of<float>();
        case DType::f64: return py::dtype::of<double>();
        default: return py::dtype::of<int64_t>();
    }
}

// A numpy array over the tensor's buffer (no copy); the array keeps the buffer alive.
py::array to_numpy(const Tensor& t, bool writeable = true) {
    auto* keep = new std::shared_ptr<Buffer>(t.buffer());
    py::capsule base(keep, [](void* p) { delete static_cast<std::shared_ptr<Buffer>*>(p); });
    std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t step = static_cast<py::ssize_t>(dtype_size(t.dtype()));
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i] = step;
        step *= shape[i];
    }
    py::array a(numpy_dtype(t.dtype()), shape, strides, t.raw(), base);
    if (!writeable) py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

// A reference to a Python object that may be dropped on any thread (it takes the GIL to do so).
std::shared_ptr<void> hold(py::object obj) {
    return std::shared_ptr<void>(obj.release().ptr(), [](void* p) {
        py::gil_scoped_acquire gil;
        Py_DECREF(static_cast<PyObject*>(p));
    });
}

// Engine dtype for a numpy array's dtype: floats keep their width, integers and booleans become
// float64 (the default float type); anything else is a TypeError naming `what`.
DType float_dtype_for(const py::array& a, const std::string& what) {
    const char kind = a.dtype().kind();
    if (kind == 'f' && a.itemsize() == 4) return DType::f32;
    if (kind == 'f' && a.itemsize() == 8) return DType::f64;
    if (kind == 'f' || kind == 'i' || kind == 'u' || kind == 'b') return DType::f64;
    throw DTypeError(what + ": unsupported dtype " + std::string(py::str(a.dtype())) +
                     " (expected a float, integer or boolean array)");
}

// Tensor from anything numpy can read. With share, a C-contiguous, writeable float32/float64 array
// is used in place (like torch.from_numpy); otherwise the data is copied.
Tensor to_tensor(py::handle obj, const std::string& what, bool share) {
    py::array a = py::array::ensure(obj);
    if (!a) throw DTypeError(what + ": cannot convert " + std::string(py::str(py::type::of(obj))) + " to an array");
    const DType dt = float_dtype_for(a, what);
    Shape shape(a.shape(), a.shape() + a.ndim());
    const bool exact = (dt == DType::f32 && a.dtype().is(py::dtype::of<float>())) ||
                       (dt == DType::f64 && a.dtype().is(py::dtype::of<double>()));
    const bool contiguous = a.flags() & py::array::c_style;
    if (share && exact && contiguous && a.writeable())
        return Tensor::wrap(a.mutable_data(), shape, dt, hold(a));
    Tensor t = Tensor::empty(shape, dt);
    py::array dst(numpy_dtype(dt), std::vector<py::ssize_t>(shape.begin(), shape.end()), t.raw(), py::none());
    py::module_::import("numpy").attr("copyto")(dst, a, "casting"_a = "unsafe");
    return t;
}

// Integer index array (int64, contiguous copy); IndexError naming `op` for non-integers, as numpy.
Tensor to_index(py::handle obj, const std::string& op) {
    py::array a = py::array::ensure(obj);
    if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
        throw std::out_of_range(op + ": indices must be integers, got " +
                         (a ? std::string(py::str(a.dtype())) : std::string(py::str(py::type::of(obj)))));
    auto c = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    Tensor t = Tensor::empty(Shape(c.shape(), c.shape() + c.ndim()), DType::i64);
    std::copy(c.data(), c.data() + c.size(), t.data<int64_t>());
    return t;
}

NodePtr as_node(py::handle obj, const Node& like, const char* op) {
    if (py::isinstance<Node>(obj)) return obj.cast<NodePtr>();
    Tensor t;
    // Python numbers are "weak": they take the dtype of the node they meet (x * 0.5 stays float32).
    // numpy scalars (np.float64 subclasses float) are strong, as in numpy 2.
    if (PyFloat_CheckExact(obj.ptr()) || PyLong_CheckExact(obj.ptr()) || PyBool_Check(obj.ptr()))
        t = Tensor::full({}, like.value.dtype(), obj.cast<double>());
    else
        t = to_tensor(obj, op, false);
    return std::make_shared<Node>(std::move(t), false);
}

py::tuple shape_tuple(const Shape& shape) {
    py::tuple t(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
    return t;
}

py::object nodes_out(const std::vector<NodePtr>& nodes) {
    if (nodes.size() == 1) return py::cast(nodes[0]);
    return py::cast(nodes);
}

Attrs make_attrs(std::vector<int64_t> ints, std::vector<double> reals, py::handle index, const char* op) {
    Attrs a;
    a.ints = std::move(ints);
    a.reals = std::move(reals);
    if (!index.is_none()) a.index = to_index(index, op);
    return a;
}

bool large(const std::vector<NodePtr>& inputs) {
    for (const auto& n : inputs)
        if (n->value.numel() >= kReleaseGilElements) return true;
    return false;
}

// In anomaly mode, op nodes remember the Python stack that created them, for the error message.
void remember_trace(const std::vector<NodePtr>& outputs) {
    if (anomaly_enabled() && !outputs.empty() && outputs[0]->source) {
        // The user's frames nearest the call: tapegrad's own are dropped, the last six kept.
        py::list frames = py::module_::import("traceback").attr("format_stack")();
        std::vector<std::string> mine;
        for (auto f : frames) {
            std::string frame = py::str(f);
            if (frame.find("/tapegrad/") == std::string::npos) mine.push_back(frame);
        }
        std::string trace;
        for (size_t i = mine.size() > 6 ? mine.size() - 6 : 0; i < mine.size(); ++i) trace += mine[i];
        outputs[0]->source->trace = trace;
    }
}

std::vector<NodePtr> apply_op(int op, const std::vector<NodePtr>& inputs, Attrs attrs) {
    std::vector<NodePtr> out;
    if (large(inputs)) {
        py::gil_scoped_release nogil;
        out = tg::apply(op, inputs, std::move(attrs));
    } else {
        out = tg::apply(op, inputs, std::move(attrs));
    }
    remember_trace(out);
    return out;
}

// self <op> other, or other <op> self when reflected (2 - x calls x.__rsub__(2)).
NodePtr binary(int op, const NodePtr& self, py::handle other, bool reflected) {
    NodePtr o = as_node(other, *self, op_table()[static_cast<size_t>(op)].name);
    return apply_op(op, reflected ? std::vector<NodePtr>{o, self} : std::vector<NodePtr>{self, o}, {})[0];
}

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
    std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
        py::gil_scoped_acquire gil;
        const std::string op = py::str(cls.attr("__name__"));
        py::tuple args(grads.size() + 1);
        args[0] = context;
        for (size_t k = 0; k < grads.size(); ++k) args[k + 1] = to_numpy(grads[k]);
        // vg.Function maps the gradients of forward's arguments to its node inputs in _tape_backward.
        py::object res = (py::hasattr(cls, "_tape_backward") ? cls.attr("_tape_backward") : cls.attr("backward"))(*args);
        std::vector<Tensor> out;
        if (!py::isinstance<py::tuple>(res) && !py::isinstance<py::list>(res)) res = py::make_tuple(res);
        for (auto g : res) out.push_back(g.is_none() ? Tensor() : to_tensor(g, op + ".backward", false));
        return out;
    }
};

// One parameter's share of an optimiser step: its value, gradient and state tensors.
struct ParamWork {
    Tensor param, grad;
    std::vector<Tensor> state;
    bool active;  // has a gradient
};

// Checks and wraps the parameters and their state arrays (one list per kind of state, each entry
// an array of the parameter's shape and dtype, or None where that state is unused).
std::vector<ParamWork> optimiser_work(const std::vector<NodePtr>& params, std::vector<py::list> states,
                                      const std::string& name) {
    std::vector<ParamWork> work;
    for (size_t i = 0; i < params.size(); ++i) {
        const Node& p = *params[i];
        if (p.source) throw std::invalid_argument(name + ": parameter " + std::to_string(i) + " was made by an op; optimisers update leaves");
        ParamWork w{p.value, p.grad, {}, p.grad.defined()};
        if (w.active && w.grad.shape() != w.param.shape())
            throw std::invalid_argument(name + ": gradient of parameter " + std::to_string(i) + " has shape " +
                                        shape_str(w.grad.shape()) + ", its value " + shape_str(w.param.shape()));
        if (w.active) w.grad = w.grad.to(w.param.dtype());
        for (auto& list : states) {
            if (list.size() != params.size())
                throw std::invalid_argument(name + ": " + std::to_string(list.size()) + " state arrays for " +
                                            std::to_string(params.size()) + " parameters");
            py::object s = list[i];
            Tensor t;
            if (!s.is_none()) {
                // Shared (not copied) exactly when the array is a writeable, contiguous float array.
                const bool is_array = py::isinstance<py::array>(s);
                if (is_array) t = to_tensor(s, name, true);
                if (!is_array || t.raw() != py::reinterpret_borrow<py::array>(s).data() ||
                    t.shape() != w.param.shape() || t.dtype() != w.param.dtype())
                    throw std::invalid_argument(name + ": state of parameter " + std::to_string(i) +
                                                " must be a writeable contiguous array of shape " +
                                                shape_str(w.param.shape()) + " and dtype " + dtype_name(w.param.dtype()));
            }
            w.state.push_back(t);
        }
        work.push_back(std::move(w));
    }
    return work;
}

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

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "tapegrad's C++ engine: tensors, the tape and the op kernels";
    py::register_exception<DTypeError>(m, "DTypeError", PyExc_TypeError);
    py::register_exception<GraphError>(m, "GraphError", PyExc_RuntimeError);
    // The element-wise pool starts with the thread count OpenMP reports (OMP_NUM_THREADS, else
    // the cores), as the matrix products do.
    set_pool_threads(Eigen::nbThreads());

    py::class_<OpNode, OpNodePtr>(m, "OpNode", "One application of an op in the graph (a diamond node).")
        .def_property_readonly(
            "op",
            [](const OpNode& o) -> py::object {
                if (o.external) return static_cast<PythonOp*>(o.external.get())->cls;
                PyObject* cls = op_classes()[static_cast<size_t>(o.op)];
                return cls ? py::reinterpret_borrow<py::object>(cls) : py::str(o.name());
            },
            "The op class (e.g. vg.Add) whose forward produced the outputs.")
        .def_property_readonly("name", &OpNode::name)
        .def_readonly("inputs", &OpNode::inputs, "The TensorNodes the op was applied to.")
        .def_property_readonly(
            "outputs",
            [](const OpNode& o) {
                py::list out;
                for (const auto& w : o.outputs) {
                    auto n = w.lock();
                    out.append(n ? py::cast(n) : py::none());
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
                if (!o.call.attrs.ints.empty()) d["attrs"] = o.call.attrs.ints;
                if (o.call.aux.defined()) d["aux"] = to_numpy(o.call.aux);
                return d;
            },
            "What the op saved for its backward (for Python ops: the dict its forward filled).")
        .def("__repr__", [](const OpNode& o) { return "OpNode[" + op_label(o) + "]"; });

    py::class_<Node, NodePtr> node(m, "TensorNode", py::dynamic_attr(),
                                   "A value in the computation graph, linked to the op that produced it.");
    node.def(py::init([](py::object value, py::object source, py::object name, bool requires_grad) {
                 if (py::isinstance<Node>(value))
                     throw DTypeError("TensorNode: value must be an array, not a TensorNode (use its .value)");
                 if (!source.is_none())
                     throw std::invalid_argument("TensorNode: source is set by ops; create leaves with source=None");
                 auto n = std::make_shared<Node>(to_tensor(value, "TensorNode", true), requires_grad);
                 if (!name.is_none()) n->name = py::str(name);
                 return n;
             }),
             py::arg("value"), py::arg("source") = py::none(), py::arg("name") = py::none(),
             py::arg("requires_grad") = true)
        .def_property(
            // Read-only for nodes made by ops: their values may be saved for the backward.
            "value", [](const Node& n) { return to_numpy(n.value, !n.source); },
            [](Node& n, py::object v) {
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
            [](Node& n) {
                if (n.source && n.source->differentiated && !n.retain && !n.grad.defined())
                    PyErr_WarnEx(PyExc_UserWarning,
                                 "the gradient of a node made by an op is not kept after backward (zeros are "
                                 "returned); call node.retain_grad() before backward to keep it",
                                 1);
                if (!n.grad.defined() || n.grad.shape() != n.value.shape())
                    n.grad = Tensor::zeros(n.value.shape(), n.value.dtype());
                return to_numpy(n.grad);
            },
            [](Node& n, py::object g) {
                if (g.is_none()) {
                    n.grad = Tensor();
                    return;
                }
                Tensor t = to_tensor(g, "TensorNode.grad", false);
                if (t.shape() != n.value.shape())
                    throw std::invalid_argument("TensorNode.grad: gradient of shape " + shape_str(t.shape()) +
                                                " does not match value of shape " + shape_str(n.value.shape()));
                n.grad = t.to(n.value.dtype());
            },
            "Gradient of the loss with respect to the value (zeros before backward).")
        .def_readwrite("source", &Node::source, "The OpNode that produced this node (None for leaves).")
        .def_property(
            "name",
            [](const Node& n) -> py::object {
                if (n.name.empty()) return py::none();
                return py::str(n.name);
            },
            [](Node& n, py::object v) { n.name = v.is_none() ? "" : std::string(py::str(v)); })
        .def_readwrite("requires_grad", &Node::requires_grad,
                       "Whether gradients flow to this node (leaves: whether .grad is filled).")
        .def_property_readonly("is_leaf", [](const Node& n) { return !n.source; },
                               "True for nodes not made by an op (no source).")
        .def("retain_grad", [](Node& n) { n.retain = true; },
             "Keep this node's gradient after backward even though an op made it.")
        .def(
            "detach",
            [](const Node& n) {
                auto d = std::make_shared<Node>(n.value, false);
                d->name = n.name;
                return d;
            },
            "A new leaf sharing this node's value, cut off from the graph (no gradient).")
        .def_property_readonly("_has_grad", [](const Node& n) { return n.grad.defined(); },
                               "Whether a gradient is stored (reading .grad would create zeros).")
        .def_property_readonly("_version", [](const Node& n) { return n.value.version(); },
                               "Counter of in-place changes to the value through the library.")
        .def("_bump_version", [](const Node& n) { n.value.bump_version(); })
        .def_property_readonly("shape", [](const Node& n) { return shape_tuple(n.value.shape()); })
        .def_property_readonly("ndim", [](const Node& n) { return n.value.ndim(); })
        .def_property_readonly("dtype", [](const Node& n) { return numpy_dtype(n.value.dtype()); })
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
             })
        .def("item", [](const Node& n) { return n.value.item(); })
        .def(
            "backward",
            [](const NodePtr& n, bool retain_graph) {
                py::gil_scoped_release nogil;
                tg::backward(n, retain_graph);
            },
            py::arg("retain_graph") = false,
            "Backpropagate from this one-element node. Leaves that require grad add the gradient to .grad; "
            "the graph's saved values are freed unless retain_graph=True.")
        .def("zero_grad", &tg::zero_grad, "Set the gradients of this node and all nodes below it to zero.")
        .def("clear", &tg::clear, "Disconnect the graph below this node so it can be freed.")
        .def("__repr__", &node_repr)
        .def("__str__", &node_repr);

    // Operators; Python numbers and arrays mix in on either side.
    struct Operator {
        const char* method;
        const char* op;
        bool reflected;
    };
    for (const Operator& o : {Operator{"__add__", "add", false}, Operator{"__radd__", "add", true},
                              Operator{"__sub__", "sub", false}, Operator{"__rsub__", "sub", true},
                              Operator{"__mul__", "mul", false}, Operator{"__rmul__", "mul", true},
                              Operator{"__truediv__", "div", false}, Operator{"__rtruediv__", "div", true},
                              Operator{"__pow__", "pow", false}, Operator{"__rpow__", "pow", true},
                              Operator{"__matmul__", "matmul", false}, Operator{"__rmatmul__", "matmul", true},
                              Operator{"matmul", "matmul", false}}) {
        const int op = op_index(o.op);
        const bool reflected = o.reflected;
        node.def(o.method, [op, reflected](const NodePtr& a, py::object b) { return binary(op, a, b, reflected); });
    }
    const int neg = op_index("neg");
    node.def("__neg__", [neg](const NodePtr& a) { return apply_op(neg, {a}, {})[0]; });
    // numpy arrays on the left defer to our reflected operators instead of looping over elements.
    node.attr("__array_ufunc__") = py::none();

    py::class_<NativeContext>(m, "NativeContext", "What a native op's forward on raw arrays keeps for backward.")
        .def_property_readonly("op", [](const NativeContext& c) { return op_table()[c.op].name; });

    m.def("op_names", [] {
        std::vector<std::string> names;
        for (const auto& d : op_table()) names.push_back(d.name);
        return names;
    });
    m.def("register_op_class", [](int op, py::object cls) {
        PyObject*& slot = op_classes().at(static_cast<size_t>(op));
        Py_XDECREF(slot);
        slot = cls.release().ptr();  // kept for the life of the process
    });
    m.def(
        "apply",
        [](int op, py::sequence inputs, std::vector<int64_t> ints, std::vector<double> reals, py::object index) {
            const char* name = op_table().at(static_cast<size_t>(op)).name;
            std::vector<NodePtr> nodes;
            for (size_t i = 0; i < inputs.size(); ++i) {
                py::object x = inputs[i];
                if (!py::isinstance<Node>(x))
                    throw DTypeError(std::string(name) + ": all inputs must be TensorNodes; input " +
                                     std::to_string(i) + " is " + std::string(py::str(py::type::of(x).attr("__name__"))));
                nodes.push_back(x.cast<NodePtr>());
            }
            return nodes_out(apply_op(op, nodes, make_attrs(std::move(ints), std::move(reals), index, name)));
        },
        py::arg("op"), py::arg("inputs"), py::arg("ints"), py::arg("reals"), py::arg("index"));
    m.def(
        "apply1", [](int op, const NodePtr& x) { return nodes_out(apply_op(op, {x}, {})); },
        "apply(op, node) for one-input ops without constants: the shortest path, for unary functions.");
    m.def(
        "apply_plain",
        [](int op, py::args inputs) {
            const char* name = op_table().at(static_cast<size_t>(op)).name;
            std::vector<NodePtr> nodes;
            nodes.reserve(inputs.size());
            for (size_t i = 0; i < inputs.size(); ++i) {
                if (!py::isinstance<Node>(inputs[i]))
                    throw DTypeError(std::string(name) + ": all inputs must be TensorNodes; input " + std::to_string(i) +
                                     " is " + std::string(py::str(py::type::of(inputs[i]).attr("__name__"))));
                nodes.push_back(inputs[i].cast<NodePtr>());
            }
            return nodes_out(apply_op(op, nodes, {}));
        },
        "apply(op, *nodes) for ops without constants: the short path of Op.do_forward.");
    m.def(
        "forward",
        [](int op, py::sequence arrays, std::vector<int64_t> ints, std::vector<double> reals, py::object index) {
            const char* name = op_table().at(static_cast<size_t>(op)).name;
            NativeContext ctx{op, {}};
            for (auto a : arrays) ctx.call.in.push_back(to_tensor(a, name, true));
            ctx.call.attrs = make_attrs(std::move(ints), std::move(reals), index, name);
            run_forward(op, ctx.call);
            py::list outs;
            for (const auto& t : ctx.call.out) outs.append(to_numpy(t));
            return py::make_tuple(outs, std::move(ctx));
        },
        py::arg("op"), py::arg("arrays"), py::arg("ints"), py::arg("reals"), py::arg("index"));
    m.def("backward", [](const NativeContext& ctx, py::sequence grads) {
        const char* name = op_table()[ctx.op].name;
        std::vector<Tensor> g;
        for (auto a : grads) g.push_back(to_tensor(a, name, false));
        py::list out;
        for (const auto& t : run_backward(ctx.op, ctx.call, g)) out.append(to_numpy(t));
        return out;
    });
    m.def(
        "record",
        [](py::object cls, py::object context, py::sequence inputs, py::object outputs) {
            const std::string name = py::str(cls.attr("__name__"));
            std::vector<NodePtr> nodes;
            for (auto x : inputs) nodes.push_back(x.cast<NodePtr>());
            const bool many = py::isinstance<py::tuple>(outputs);
            std::vector<Tensor> outs;
            for (auto o : many ? py::tuple(outputs) : py::make_tuple(outputs)) {
                // An array the op made itself is adopted; a view of other memory (an input, say) is copied.
                const bool owns = py::isinstance<py::array>(o) && o.attr("base").is_none();
                outs.push_back(to_tensor(o, name + ".forward", owns));
            }
            auto res = tg::record(std::make_unique<PythonOp>(cls, context), nodes, std::move(outs));
            remember_trace(res);
            return many ? py::cast(res) : py::cast(res[0]);
        },
        "Puts a Python Op's application on the tape.");
    // Optimiser steps: one call updates every parameter that has a gradient, in place, GIL released.
    // States are numpy arrays of each parameter's shape and dtype, updated in place too.
    m.def(
        "sgd_step",
        [](const std::vector<NodePtr>& params, py::list bufs, py::list first, SgdConfig c) {
            auto work = optimiser_work(params, {bufs}, "SGD");
            std::vector<bool> fresh;
            for (auto f : first) fresh.push_back(f.cast<bool>());
            py::gil_scoped_release nogil;
            for (size_t i = 0; i < work.size(); ++i) {
                auto& w = work[i];
                if (!w.active) continue;
                sgd_update(w.param, w.grad, w.state[0], fresh[i], c);
                w.param.bump_version();
            }
        });
    m.def(
        "adam_step",
        [](const std::vector<NodePtr>& params, py::list m1, py::list m2, std::vector<int64_t> steps, AdamConfig c) {
            auto work = optimiser_work(params, {m1, m2}, c.decoupled ? "AdamW" : "Adam");
            py::gil_scoped_release nogil;
            for (size_t i = 0; i < work.size(); ++i) {
                auto& w = work[i];
                if (!w.active) continue;
                adam_update(w.param, w.grad, w.state[0], w.state[1], steps.at(i), c);
                w.param.bump_version();
            }
        });
    m.def(
        "rmsprop_step",
        [](const std::vector<NodePtr>& params, py::list sq, py::list bufs, RmspropConfig c) {
            auto work = optimiser_work(params, {sq, bufs}, "RMSprop");
            py::gil_scoped_release nogil;
            for (auto& w : work) {
                if (!w.active) continue;
                rmsprop_update(w.param, w.grad, w.state[0], w.state[1], c);
                w.param.bump_version();
            }
        });
    py::class_<SgdConfig>(m, "SgdConfig")
        .def(py::init<double, double, double, double, bool>(), py::arg("lr"), py::arg("momentum"),
             py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"));
    py::class_<AdamConfig>(m, "AdamConfig")
        .def(py::init<double, double, double, double, double, bool>(), py::arg("lr"), py::arg("beta1"),
             py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"));
    py::class_<RmspropConfig>(m, "RmspropConfig")
        .def(py::init<double, double, double, double, double>(), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
             py::arg("weight_decay"), py::arg("momentum"));
    m.def("is_anomaly_enabled", &anomaly_enabled);
    m.def("set_anomaly_enabled", &set_anomaly_enabled);
    m.def("is_grad_enabled", &grad_enabled);
    m.def("set_grad_enabled", &set_grad_enabled);
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
            Eigen::setNbThreads(n);
#ifdef _OPENMP
            omp_set_num_threads(n);
#endif
            set_blas_threads(n);
            set_pool_threads(n);
        },
        "Threads for the engine's matrix products (the BLAS's) and large element-wise kernels.");
    m.def("set_pool_threads", &set_pool_threads,
          "Threads for large element-wise kernels only (set_num_threads sets these and the BLAS's).");
    m.def("pool_threads", &pool_threads);
    m.def("load_blas", &load_blas, "Use cblas_sgemm/dgemm from this shared library for matrix products.");
    m.def("gemm_backend", &gemm_backend);
    m.def("set_gemm_backend", &set_gemm_backend);
    m.def("get_num_threads", [] { return Eigen::nbThreads(); });
}
