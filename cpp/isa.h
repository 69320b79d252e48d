// Instruction-set copies of the kernels. CMakeLists.txt compiles the files of TAPEGRAD_KERNELS once
// for the baseline and once per extra instruction set (-march=x86-64-v3 ...): Eigen picks its SIMD
// width when it is compiled, so run-time selection needs one compiled copy per width. Each copy
// has two entry points in namespace tg::TG_ISA (tg::baseline, tg::x86_64_v3 ...); everything else
// in it is private to it. isa.cpp picks one copy at import, the best this CPU runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/registry.h"
#include "optim.h"

#ifndef TG_ISA
#define TG_ISA baseline
#endif

namespace tg {

// The optimiser update loops of one copy.
struct OptimUpdates {
    decltype(&sgd_update) sgd;
    decltype(&adam_update) adam;
    decltype(&rmsprop_update) rmsprop;
};

// The loops of the tiny matrix products of one copy: gemm() without the BLAS (gemm.h).
template <class T>
using SmallGemm = void (*)(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,
                           int64_t);
struct SmallProducts {
    SmallGemm<float> f32;
    SmallGemm<double> f64;
};

namespace TG_ISA {
std::vector<OpDef> op_rows();     // registry.cpp: the op table with this copy's kernels
OptimUpdates optim_updates();     // optim.cpp
SmallProducts small_products();   // small_gemm.cpp
}  // namespace TG_ISA

// The chosen copy's optimiser updates and small products (op_table(), in registry.h, gives its op
// table).
const OptimUpdates& optim_updates();
const SmallProducts& small_products();
// The instruction set of the chosen copy ("x86-64-v3", "x86-64", "native" ...), and of all copies
// built in, best first.
std::string kernel_isa();
std::vector<std::string> kernel_isas();

}  // namespace tg
