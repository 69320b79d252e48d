// Bindings of the optimisers: one call updates every parameter that has a gradient, in place, with
// the GIL released. States are numpy arrays of each parameter's shape and dtype (or None where a
// state is unused), shared with the engine and updated in place too.
#include <pybind11/stl.h>

#include "bindings/convert.h"
#include "bindings/modules.h"
#include "jit.h"
#include "optim.h"

namespace tg {

namespace {

using namespace py_convert;

// The state arrays of one kind (one per parameter) as tensors sharing their memory; an array
// that cannot be shared (not writeable, not contiguous, another dtype) is an error, since the
// update would then be lost.
std::vector<Tensor> shared_states(const py::list& arrays, const std::string& name) {
    std::vector<Tensor> out;
    for (size_t i = 0; i < arrays.size(); ++i) {
        py::object s = arrays[i];
        Tensor t;
        if (!s.is_none()) {
            const bool is_array = py::isinstance<py::array>(s);
            if (is_array) t = to_tensor(s, name, true);
            if (!is_array || t.raw() != py::reinterpret_borrow<py::array>(s).data())
                throw std::invalid_argument(name + ": state of parameter " + std::to_string(i) +
                                            " must be a writeable contiguous float32 or float64 array");
        }
        out.push_back(t);
    }
    return out;
}

// Tells vg.jit's recorder, if one is active, about an optimiser step (before it runs).
void note_step(jit::OptimCall::Which which, const std::vector<NodePtr>& params,
               const std::vector<std::vector<Tensor>>& states, const std::function<void(jit::OptimCall&)>& fill) {
    jit::Recorder* r = jit::recording();
    if (!r) return;
    auto call = std::make_shared<jit::OptimCall>();
    call->which = which;
    call->params = params;
    call->states = states;
    fill(*call);
    r->optimiser(std::move(call));
}

}  // namespace

void bind_optim(py::module_& m) {
    // The configurations first, so that the steps' signatures name them.
    py::class_<SgdConfig>(m, "SgdConfig", "Hyperparameters of an SGD step.")
        .def(py::init<double, double, double, double, bool>(), py::arg("lr"), py::arg("momentum"),
             py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"));
    py::class_<AdamConfig>(m, "AdamConfig", "Hyperparameters of an Adam or AdamW step.")
        .def(py::init<double, double, double, double, double, bool>(), py::arg("lr"), py::arg("beta1"),
             py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("decoupled"));
    py::class_<RmspropConfig>(m, "RmspropConfig", "Hyperparameters of an RMSprop step.")
        .def(py::init<double, double, double, double, double>(), py::arg("lr"), py::arg("alpha"), py::arg("eps"),
             py::arg("weight_decay"), py::arg("momentum"));
    m.def(
        "sgd_step",
        [](const std::vector<NodePtr>& params, py::list bufs, std::vector<bool> first, SgdConfig c) {
            std::vector<std::vector<Tensor>> states{shared_states(bufs, "SGD")};
            note_step(jit::OptimCall::sgd, params, states, [&](jit::OptimCall& j) { j.sgd_config = c; });
            py::gil_scoped_release nogil;
            sgd_step(params, states, first, c);
        },
        py::arg("params"), py::arg("momentum_buffers"), py::arg("first"), py::arg("config"),
        "One SGD step in place on every parameter with a gradient; first[i]: buffer i is new.");
    m.def(
        "adam_step",
        [](const std::vector<NodePtr>& params, py::list m1, py::list m2, std::vector<int64_t> steps, AdamConfig c) {
            const std::string name = c.decoupled ? "AdamW" : "Adam";
            std::vector<std::vector<Tensor>> states{shared_states(m1, name), shared_states(m2, name)};
            note_step(jit::OptimCall::adam, params, states, [&](jit::OptimCall& j) {
                j.adam_config = c;
                j.steps = steps;  // a replay advances the counts of the parameters that have a gradient
            });
            py::gil_scoped_release nogil;
            adam_step(params, states, steps, c);
        },
        py::arg("params"), py::arg("first_moments"), py::arg("second_moments"), py::arg("steps"), py::arg("config"),
        "One Adam (or AdamW) step in place; steps[i] counts parameter i's updates, this one included.");
    m.def(
        "rmsprop_step",
        [](const std::vector<NodePtr>& params, py::list sq, py::list bufs, RmspropConfig c) {
            std::vector<std::vector<Tensor>> states{shared_states(sq, "RMSprop"), shared_states(bufs, "RMSprop")};
            note_step(jit::OptimCall::rmsprop, params, states, [&](jit::OptimCall& j) { j.rmsprop_config = c; });
            py::gil_scoped_release nogil;
            rmsprop_step(params, states, c);
        },
        py::arg("params"), py::arg("square_averages"), py::arg("momentum_buffers"), py::arg("config"),
        "One RMSprop step in place on every parameter with a gradient.");
}

}  // namespace tg
