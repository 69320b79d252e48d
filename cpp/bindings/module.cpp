// The extension module tapegrad._core: errors, then the bindings of each part.
#include "bindings/modules.h"
#include "jit.h"
#include "tape.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "tapegrad's C++ engine: tensors, the tape and the op kernels";
    pybind11::register_exception<tg::DTypeError>(m, "DTypeError", PyExc_TypeError).doc() =
        "An input of the wrong kind or dtype (a TypeError).";
    pybind11::register_exception<tg::GraphError>(m, "GraphError", PyExc_RuntimeError).doc() =
        "A graph that cannot be differentiated as asked: freed, or changed in place since the forward "
        "(a RuntimeError).";
    pybind11::register_exception<tg::jit::TraceError>(m, "TraceError", PyExc_ValueError).doc() =
        "A step that vg.jit cannot replay in C++ (a Python op, numpy code on a node's value, a random draw): "
        "a ValueError.";
    tg::bind_runtime(m);
    tg::bind_nodes(m);
    tg::bind_fast_calls(m);
    tg::bind_optim(m);
    tg::bind_dialect(m);
    tg::bind_jit(m);
}
