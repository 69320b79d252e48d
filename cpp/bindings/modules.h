// The parts of the _core module, one per job; module.cpp calls each once.
#pragma once

#include <pybind11/pybind11.h>

namespace tg {

void bind_nodes(pybind11::module_& m);    // nodes.cpp: TensorNode, OpNode, op application, the op table
// fast_calls.cpp: TensorNode's operators and constructor, vg.sigmoid & co., as plain C functions
void bind_fast_calls(pybind11::module_& m);
void bind_optim(pybind11::module_& m);    // optim.cpp: optimiser steps
void bind_runtime(pybind11::module_& m);  // runtime.cpp: grad and anomaly modes, threads, the BLAS
void bind_dialect(pybind11::module_& m);  // dialect.cpp: PyTorch's tensors and in-place changes
void bind_jit(pybind11::module_& m);      // jit.cpp: vg.jit's recordings and their replay

}  // namespace tg
