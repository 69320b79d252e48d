// The calls Python makes once per op or batch, as plain C functions: TensorNode's binary operators
// (a + b, a @ b), the one-input functions of the op table (vg.sigmoid(x), x.exp(), -x: objects of
// the small type UnaryFunction), and TensorNode's constructor.
//
// For a small op the call itself is a large part of the cost. A pybind11 function goes through
// its dispatcher (argument loaders, the overload loop, an argument vector), and as a method
// through an instancemethod wrapper too: about 750 instructions of a 7000-instruction 2x2 `a + b`;
// a Python function around the engine's call cost 600 of a 2x2 sigmoid's. These are METH_FASTCALL
// and vectorcall functions, the binary operators in method descriptors (the kind CPython's own
// types use, which Python's operator slots call directly). A C function takes no data, so each operator has
// its own slot here (its op and operand order) and its own instance of a template. C++ exceptions
// become Python exceptions through pybind11's translators (raise_translated).
#include <algorithm>
#include <array>
#include <exception>
#include <string>
#include <utility>

#include "bindings/graph.h"
#include "bindings/modules.h"

#include <structmember.h>  // (after Python.h, which pybind11 includes)

namespace tg {

namespace {

using namespace py_convert;

// The Python function (tapegrad.tensor's) for operators on integer and boolean tensors, which
// the kernels do not take: f(op, self, other, reflected) -> TensorNode.
py::object& integer_operator() {
    static auto* f = new py::object();  // never destroyed: the interpreter may be gone by then
    return *f;
}

// The node of an operator's self (the descriptor checked that self is a TensorNode; its holder is
// missing only if a subclass's __init__ never ran).
NodePtr self_node(py::handle self) {
    if (NodePtr n = node_or_null(self)) return n;
    throw py::type_error("expected a TensorNode as self, got " + type_name(self));
}

// self <op> other, or other <op> self when reflected (2 - x calls x.__rsub__(2)).
NodePtr binary(int op, const NodePtr& self, py::handle other, bool reflected) {
    NodePtr o = node_or_null(other);
    if (!is_float(self->value.dtype()) || (o && !is_float(o->value.dtype()))) {
        if (!integer_operator()) throw DTypeError(std::string(def_of(op).name) + ": the operands must be float tensors");
        return integer_operator()(op, self, other, reflected).cast<NodePtr>();
    }
    if (!o) o = as_node(other, *self, def_of(op).name);
    Nodes inputs;  // (not a braced list: its elements would be copied, not moved)
    inputs.push_back(reflected ? std::move(o) : self);
    inputs.push_back(reflected ? self : std::move(o));
    NodePtr r = std::move(apply_op(op, std::move(inputs), {})[0]);
    if (r->torch && !def_of(op).backward) r->value = r->value.to(DType::b8);  // PyTorch's comparisons give bools
    return r;
}

// The exception being handled, raised as a Python exception by pybind11's translators (the module's
// registered ones too): a pybind11 function rethrows it, and its dispatcher translates. Returns
// null, for the C function to return.
thread_local std::exception_ptr pending;

PyObject* raise_translated() {
    pending = std::current_exception();
    static auto* rethrow = new py::cpp_function([] { std::rethrow_exception(std::exchange(pending, nullptr)); });
    Py_XDECREF(PyObject_CallNoArgs(rethrow->ptr()));
    return nullptr;
}

// f() as a C function's result: its object, or null with the Python exception set.
template <class F>
PyObject* guarded(F&& f) {
    try {
        return f().release().ptr();
    } catch (py::error_already_set& e) {
        e.restore();
        return nullptr;
    } catch (...) {
        return raise_translated();
    }
}

struct Operator {
    int op = -1;
    bool reflected = false;
    std::string name, doc;
};

// Enough for the op table's binary operators (18); binary_method says so if not. (The one-input
// operators, -x and abs(x), are functional's UnaryFunction objects, which bind as methods.)
constexpr size_t kOperators = 24;
std::array<Operator, kOperators> operators;
std::array<PyMethodDef, kOperators> method_defs;  // read by the descriptors for the process's life

template <size_t K>
PyObject* binary_operator(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    const Operator& o = operators[K];
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "%s expected 1 argument (other), got %zd", o.name.c_str(), nargs);
        return nullptr;
    }
    return guarded([&] { return node_object(binary(o.op, self_node(self), args[0], o.reflected)); });
}

template <size_t... K>
constexpr auto binary_functions(std::index_sequence<K...>) {
    return std::array<PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t), sizeof...(K)>{&binary_operator<K>...};
}

// The descriptor of operator `name` (op, operand order), in the first free slot or the slot that
// already has it (installing twice gives the same function).
py::function descriptor(int op, bool reflected, const char* name) {
    static const auto functions = binary_functions(std::make_index_sequence<kOperators>());
    const OpDef& def = def_of(op);
    size_t k = 0;
    while (k < kOperators && operators[k].op >= 0 &&
           !(operators[k].op == op && operators[k].reflected == reflected && operators[k].name == name))
        ++k;
    if (k == kOperators)
        throw std::length_error(std::string("tapegrad: more than ") + std::to_string(kOperators) +
                                " binary operators; raise kOperators in bindings/fast_calls.cpp (" + name + ", op " +
                                def.name + ")");
    Operator& o = operators[k];
    if (o.op < 0) {  // a new slot (a used one keeps its strings: its descriptors point into them)
        o.op = op;
        o.reflected = reflected;
        o.name = name;
        o.doc = std::string(name) + "($self, other, /)\n--\n\nThe op " + def.name + " on " +
                (reflected ? "(other, self)." : "(self, other).");
        method_defs[k] =
            PyMethodDef{o.name.c_str(), reinterpret_cast<PyCFunction>(functions[k]), METH_FASTCALL, o.doc.c_str()};
    }
    PyObject* d = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(py::type::of<Node>().ptr()), &method_defs[k]);
    if (!d) throw py::error_already_set();
    return py::reinterpret_steal<py::function>(d);
}

// op applied to x, a TensorNode (a TypeError naming the op otherwise), without attributes.
py::object apply_unary(int op, py::handle x) {
    const OpDef& def = def_of(op);
    return nodes_out(apply_op(op, {input_node(def, x, 0)}, make_attrs(def, py::none())));
}

// TensorNode(value, source=None, name=None, requires_grad=True). pybind11's constructor took 1 us
// when requires_grad came by keyword, twice the positional call: it makes a Python string of each
// parameter's name to look the keywords up, as PyArg_ParseTupleAndKeywords does. Here the names
// are interned once and Python's keyword names, interned too, are matched by identity first.
PyObject* node_init(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    constexpr Py_ssize_t kParams = 4;
    static PyObject* const names[kParams] = {PyUnicode_InternFromString("value"), PyUnicode_InternFromString("source"),
                                             PyUnicode_InternFromString("name"),
                                             PyUnicode_InternFromString("requires_grad")};
    PyObject* given[kParams] = {nullptr, Py_None, Py_None, Py_True};
    if (nargs > kParams) {
        PyErr_Format(PyExc_TypeError, "TensorNode() takes at most 4 arguments (%zd given)", nargs);
        return nullptr;
    }
    std::copy(args, args + nargs, given);
    const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < kParams && key != names[j]) ++j;  // interned, as keywords in source code are
        if (j == kParams)                            // a name made at run time (**{...})
            for (j = 0; j < kParams && PyUnicode_Compare(key, names[j]) != 0; ++j) {
            }
        if (j == kParams) {
            PyErr_Format(PyExc_TypeError, "'%U' is an invalid keyword argument for TensorNode()", key);
            return nullptr;
        }
        if (j < nargs) {
            PyErr_Format(PyExc_TypeError, "argument for TensorNode() given by name ('%U') and position (%zd)", key,
                         j + 1);
            return nullptr;
        }
        given[j] = args[nargs + k];
    }
    if (!given[0]) {
        PyErr_SetString(PyExc_TypeError, "TensorNode() missing required argument 'value' (pos 1)");
        return nullptr;
    }
    PyObject* requires_grad = given[3];
    return guarded([&] {
        // As pybind11's bool: True/False, numpy's bools, numbers (1, 0.0) and None (False); not strings.
        const PyNumberMethods* number = Py_TYPE(requires_grad)->tp_as_number;
        if (!PyBool_Check(requires_grad) && !(number && number->nb_bool))
            throw py::type_error("TensorNode: requires_grad must be a bool, got " + type_name(requires_grad));
        const int grad = PyObject_IsTrue(requires_grad);
        if (grad < 0) throw py::error_already_set();
        init_node_object(self, new_leaf(given[0], given[1], given[2], grad == 1));
        return py::none();
    });
}

PyMethodDef node_init_def{
    "__init__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&node_init)), METH_FASTCALL | METH_KEYWORDS,
    "__init__($self, /, value, source=None, name=None, requires_grad=True)\n--\n\nA leaf node holding `value` (an "
    "array, or anything numpy.asarray takes; its memory is shared when it is a contiguous float32/float64 array)."};

// vg.sigmoid(x) and the other one-input functions made from the op table (functional.py), as
// objects of a small type of their own: a Python function around the engine's call cost 10% of a
// 2x2 sigmoid. A TensorNode goes to the op directly; anything else (an array or number, a constant)
// through the Python converter the function was made with. Like a Python function, one binds as a
// method (x.sigmoid(), TensorNode's methods are these functions), takes the name, qualname,
// module and doc its maker sets (in its __dict__), and pickles by name.
struct UnaryFunction {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int op;
    PyObject* convert;  // convert(x) -> TensorNode, for any x that is not exactly a TensorNode
    PyObject* dict;
};

PyObject* unary_function_call(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    auto* f = reinterpret_cast<UnaryFunction*>(self);
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    const bool by_name = nargs == 0 && nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "x") == 0;
    if (nargs + nkw != 1 || (nkw && !by_name)) {
        PyObject* name = PyObject_GetAttrString(self, "__name__");
        PyErr_Format(PyExc_TypeError, "%S() takes exactly one argument, x (got %zd positional and %zd keyword)", name,
                     nargs, nkw);
        Py_XDECREF(name);
        return nullptr;
    }
    py::object x = py::reinterpret_borrow<py::object>(args[0]);
    static PyTypeObject* const node_type = reinterpret_cast<PyTypeObject*>(py::type::of<Node>().ptr());
    if (Py_TYPE(args[0]) != node_type) {
        PyObject* converted = PyObject_CallOneArg(f->convert, args[0]);
        if (!converted) return nullptr;
        x = py::reinterpret_steal<py::object>(converted);
    }
    return guarded([&] { return apply_unary(f->op, x); });
}

PyObject* unary_function_get(PyObject* self, PyObject* obj, PyObject*) {
    if (!obj || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

PyObject* unary_function_repr(PyObject* self) {
    PyObject* name = PyObject_GetAttrString(self, "__qualname__");
    if (!name) return nullptr;
    PyObject* r = PyUnicode_FromFormat("<tapegrad function %U>", name);
    Py_DECREF(name);
    return r;
}

// Pickled as the global of its __module__ and __qualname__, as a Python function is.
PyObject* unary_function_reduce(PyObject* self, PyObject*) { return PyObject_GetAttrString(self, "__qualname__"); }

PyObject* unary_function_signature(PyObject*, void*) { return PyUnicode_FromString("(x)"); }

int unary_function_traverse(PyObject* self, visitproc visit, void* arg) {
    auto* f = reinterpret_cast<UnaryFunction*>(self);
    Py_VISIT(f->convert);
    Py_VISIT(f->dict);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

int unary_function_clear(PyObject* self) {
    auto* f = reinterpret_cast<UnaryFunction*>(self);
    Py_CLEAR(f->convert);
    Py_CLEAR(f->dict);
    return 0;
}

void unary_function_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    unary_function_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyMethodDef unary_function_methods[] = {
    {"__reduce__", &unary_function_reduce, METH_NOARGS, "Pickled by name, as a Python function."},
    {nullptr, nullptr, 0, nullptr}};
PyGetSetDef unary_function_getset[] = {
    {"__text_signature__", &unary_function_signature, nullptr, "The signature inspect reads: (x).", nullptr},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, "Its name, qualname, module and doc.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};
PyMemberDef unary_function_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(UnaryFunction, vectorcall), READONLY, nullptr},
    {"__dictoffset__", T_PYSSIZET, offsetof(UnaryFunction, dict), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr}};
PyType_Slot unary_function_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
    {Py_tp_descr_get, reinterpret_cast<void*>(&unary_function_get)},
    {Py_tp_repr, reinterpret_cast<void*>(&unary_function_repr)},
    {Py_tp_traverse, reinterpret_cast<void*>(&unary_function_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(&unary_function_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(&unary_function_dealloc)},
    {Py_tp_methods, unary_function_methods},
    {Py_tp_getset, unary_function_getset},
    {Py_tp_members, unary_function_members},
    {Py_tp_doc, const_cast<char*>("A one-input function of the op table (vg.sigmoid, vg.exp ...), run without Python.")},
    {0, nullptr}};
PyTypeObject* unary_function_type = nullptr;  // made from this spec in bind_fast_calls
PyType_Spec unary_function_spec{
    "tapegrad._core.UnaryFunction", sizeof(UnaryFunction), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    unary_function_slots};

}  // namespace

void bind_fast_calls(py::module_& m) {
    // Installed as TensorNode's operators by the Python layer (methods.py), so that all of
    // TensorNode's methods are declared in one place.
    m.def(
        "binary_method",
        [](int op, bool reflected, const char* name) { return descriptor(op, reflected, name); },
        py::arg("op"), py::arg("reflected"), py::arg("name"),
        "A TensorNode method computing self <op> other (other <op> self when reflected).");
    m.def(
        "set_integer_operator", [](py::object f) { integer_operator() = std::move(f); }, py::arg("function"),
        "Set f(op, self, other, reflected), which computes operators whose operands are not all floats.");
    PyObject* type = PyType_FromSpec(&unary_function_spec);
    if (!type) throw py::error_already_set();
    unary_function_type = reinterpret_cast<PyTypeObject*>(type);  // the module's reference keeps it
    m.add_object("UnaryFunction", py::reinterpret_steal<py::object>(type));
    m.def(
        "unary_function",
        [](int op, py::object convert) {
            def_of(op);
            if (!PyCallable_Check(convert.ptr())) throw py::type_error("unary_function: convert must be callable");
            auto* f = PyObject_GC_New(UnaryFunction, unary_function_type);
            if (!f) throw py::error_already_set();
            f->vectorcall = &unary_function_call;
            f->op = op;
            f->convert = convert.release().ptr();
            f->dict = nullptr;
            PyObject_GC_Track(reinterpret_cast<PyObject*>(f));
            return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(f));
        },
        py::arg("op"), py::arg("convert"),
        "vg.<op>(x) for a one-input op without attributes: the op on a TensorNode, on convert(x) otherwise.");
    PyObject* init = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(py::type::of<Node>().ptr()), &node_init_def);
    if (!init) throw py::error_already_set();
    py::type::of<Node>().attr("__init__") = py::reinterpret_steal<py::object>(init);
}

}  // namespace tg
