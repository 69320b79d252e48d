// Bindings of vg.jit's engine side (jit.h): starting and ending a recording on this thread, and the
// recorded Program, which replays the step on new arguments with the GIL released.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/modules.h"
#include "jit.h"

namespace tg {

namespace {

using namespace py_convert;

// The TensorNodes among the arguments, by position (null elsewhere).
std::vector<NodePtr> argument_nodes(const py::sequence& args) {
    std::vector<NodePtr> nodes;
    for (auto a : args) nodes.push_back(node_or_null(a));
    return nodes;
}

std::shared_ptr<jit::Program> stop_recording(const py::sequence& outputs) {
    std::unique_ptr<jit::Recorder> r = jit::stop();
    if (!r) throw std::logic_error("vg.jit: no trace is recording on this thread");
    if (!r->refused.empty()) throw jit::TraceError(r->refused);
    std::vector<NodePtr> outs;
    for (auto o : outputs) outs.push_back(o.cast<NodePtr>());
    return r->finish(outs);
}

py::list run(jit::Program& p, const py::sequence& args) {
    std::vector<NodePtr> nodes = argument_nodes(args);
    std::vector<Tensor> converted;
    for (const jit::Conversion& c : p.conversions) {
        if (c.arg >= static_cast<int>(py::len(args)))
            throw std::invalid_argument("vg.jit: a replay got " + std::to_string(py::len(args)) + " argument(s)");
        py::object a = args[static_cast<size_t>(c.arg)];
        if (const NodePtr n = node_or_null(a)) a = to_numpy(n->value, false);  // its value read as an array
        switch (c.how) {
            case jit::Conversion::value: converted.push_back(to_tensor(a, "vg.jit", c.share)); break;
            case jit::Conversion::index: converted.push_back(to_index(a, "vg.jit")); break;
            case jit::Conversion::torch_leaf: converted.push_back(torch_tensor(a, c.share)); break;
        }
    }
    std::vector<NodePtr> outs;
    {
        py::gil_scoped_release nogil;
        outs = p.run(nodes, converted);
    }
    py::list result;
    for (const auto& n : outs) result.append(node_object(n));
    return result;
}

// What a recording depends on of a call's arguments (replay.py's key for its recordings): the grad
// mode, then per argument ("node", shape, dtype, requires_grad, PyTorch's dialect, is a leaf),
// ("array", shape, dtype, strides, writeable) or ("value", type, the value itself). In C++: the
// same tuple built from Python attributes took 1 us of a 20-us synth step.
py::tuple signature(const py::tuple& args) {
    static const py::str node("node"), array("array"), value("value");
    py::tuple key(args.size() + 1);
    key[0] = py::bool_(grad_enabled());
    for (size_t i = 0; i < args.size(); ++i) {
        py::handle a = args[i];
        if (const NodePtr n = node_or_null(a)) {
            key[i + 1] = py::make_tuple(node, shape_tuple(n->value.shape()), static_cast<int>(n->value.dtype()),
                                        n->requires_grad, n->torch, !n->source);
        } else if (py::isinstance<py::array>(a)) {
            const auto arr = py::reinterpret_borrow<py::array>(a);
            const auto nd = static_cast<size_t>(arr.ndim());
            py::tuple shape(nd), strides(nd);
            for (size_t d = 0; d < nd; ++d) {
                shape[d] = py::int_(arr.shape(static_cast<py::ssize_t>(d)));
                strides[d] = py::int_(arr.strides(static_cast<py::ssize_t>(d)));
            }
            key[i + 1] = py::make_tuple(array, shape, arr.dtype(), strides, arr.writeable());
        } else {
            if (PyObject_Hash(a.ptr()) == -1) {
                if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
                PyErr_Clear();
                throw py::type_error("vg.jit: the step's arguments must be TensorNodes, numpy arrays or hashable "
                                     "constants; got a " + type_name(a));
            }
            key[i + 1] = py::make_tuple(value, py::type::handle_of(a), a);
        }
    }
    return key;
}

}  // namespace

void bind_jit(py::module_& m) {
    py::class_<jit::Program, std::shared_ptr<jit::Program>>(
        m, "Program", "A recorded training step (vg.jit), replayable in C++ on new arguments of the same shapes.")
        .def("run", &run, py::arg("args"),
             "Replay the step on new arguments (the recorded call's TensorNodes and arrays in their places); "
             "returns the nodes the step returned, as a list.")
        .def("difference", &jit::Program::difference, py::arg("other"),
             "The first difference from another recording of the step, or '' when both did the same.")
        .def("describe", &jit::Program::describe, "One line per recorded action, then what the step returns.")
        .def(
            "optimiser_steps",
            [](const jit::Program& p) {
                std::vector<std::vector<int64_t>> steps;
                for (const jit::OptimCall* c : p.optimiser_calls()) steps.push_back(c->steps);
                return steps;
            },
            "Per recorded optimiser step (in order): Adam's update counts as of the last call (empty for others).")
        .def(
            "set_optimiser_steps",
            [](jit::Program& p, size_t k, std::vector<int64_t> steps) {
                const std::vector<jit::OptimCall*> calls = p.optimiser_calls();
                if (k >= calls.size())
                    throw std::out_of_range("set_optimiser_steps: no optimiser step " + std::to_string(k));
                if (steps.size() != calls[k]->steps.size())
                    throw std::invalid_argument("set_optimiser_steps: " + std::to_string(steps.size()) + " counts for " +
                                                std::to_string(calls[k]->steps.size()) + " parameters");
                calls[k]->steps = std::move(steps);
            },
            py::arg("k"), py::arg("steps"), "Set Adam's update counts of recorded optimiser step k (as of now).")
        .def_property_readonly("actions", [](const jit::Program& p) { return p.actions.size(); },
                               "The number of recorded actions.");
    m.def(
        "trace_start",
        [](py::sequence args) {
            std::vector<jit::Recorder::Array> arrays;
            for (auto a : args)
                arrays.push_back(py::isinstance<py::array>(a) ? view_info(py::reinterpret_borrow<py::array>(a))
                                                              : jit::Recorder::Array());
            jit::start(std::make_unique<jit::Recorder>(argument_nodes(args), std::move(arrays)));
        },
        py::arg("args"), "Start recording this thread's tape actions for vg.jit, with the step's arguments.");
    m.def("trace_stop", &stop_recording, py::arg("outputs"),
          "End the recording with the nodes the step returned; the Program (TraceError if it cannot be replayed).");
    m.def("trace_refuse", &jit::refuse, py::arg("what"), py::arg("instead"),
          "TraceError saying the step does `what`, which a replay cannot repeat (when recording; else nothing).");
    m.def("trace_abort", [] { jit::stop(); }, "Drop this thread's recording, if any.");
    m.def("jit_signature", &signature, py::arg("args"),
          "What a vg.jit recording depends on of these arguments: a hashable tuple (see replay.py).");
    m.def("tracing", [] { return jit::recording() != nullptr; }, "Whether this thread is recording for vg.jit.");
}

}  // namespace tg
