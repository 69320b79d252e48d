// Bindings of the engine's settings: grad and anomaly modes (per thread), threads, the BLAS.
#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <pybind11/stl.h>

#include "bindings/modules.h"
#include "bf16_gemm.h"
#include "buffers.h"
#include "fpmode.h"
#include "gemm.h"
#include "isa.h"
#include "parallel.h"
#include "tape.h"

namespace tg {

namespace py = pybind11;

void bind_runtime(py::module_& m) {
    // The element-wise pool starts with the thread count OpenMP reports (OMP_NUM_THREADS, else
    // the cores), as the matrix products do.
    set_pool_threads(Eigen::nbThreads());
    m.def("buffer_cache_limit", &buffer_cache_limit, "Bytes of freed large tensor buffers kept for reuse, at most.");
    m.def("set_buffer_cache_limit", &set_buffer_cache_limit, py::arg("bytes"),
          "Keep at most this many bytes of freed large tensor buffers for reuse (0: none); frees the excess.");
    m.def("buffer_cache_bytes", &buffer_cache_bytes, "Bytes held now in freed tensor buffers kept for reuse.");
    m.def("release_buffer_cache", &release_buffer_cache, "Give the freed tensor buffers kept for reuse back to malloc.");
    m.def("is_anomaly_enabled", &anomaly_enabled, "Whether anomaly mode is on in this thread.");
    m.def("set_anomaly_enabled", &set_anomaly_enabled, py::arg("enabled"),
          "Turn anomaly mode on or off in this thread (ops remember the Python stack that made them).");
    m.def("is_grad_enabled", &grad_enabled, "Whether ops are recorded for backward in this thread.");
    m.def("set_grad_enabled", &set_grad_enabled, py::arg("enabled"),
          "Turn recording of ops for backward on or off in this thread.");
    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
            Eigen::setNbThreads(n);
#ifdef _OPENMP
            omp_set_num_threads(n);
#endif
            set_pool_threads(n);
        },
        py::arg("n"),
        "Threads for the engine's large matrix products (split over its own threads; the BLAS runs on one) "
        "and large element-wise kernels.");
    m.def("set_pool_threads", &set_pool_threads, py::arg("n"),
          "Threads of the engine's pool only (set_num_threads sets these and OpenMP's).");
    m.def("pool_threads", &pool_threads, "Threads of the element-wise pool, the caller included.");
    m.def(
        "get_num_threads", [] { return Eigen::nbThreads(); }, "Threads the engine uses (set_num_threads).");
    m.def("load_blas", &load_blas, py::arg("path"),
          "Use cblas_sgemm/dgemm from this shared library for matrix products; False if it has neither.");
    m.def("gemm_backend", &gemm_backend, "Which library runs matrix products: 'blas' or 'eigen'.");
    m.def("kernel_isa", &kernel_isa, "The instruction set of the kernels in use (chosen at import, or TAPEGRAD_ISA).");
    m.def("kernel_isas", &kernel_isas, "The instruction sets the kernels were compiled for, best first.");
    m.def("set_flush_denormal", &set_flush_denormal, py::arg("on"),
          "Flush subnormals to zero (FTZ|DAZ) in the matrix products and optimiser steps (True, the default) "
          "or keep IEEE subnormals (False), process-wide; False if the CPU has no such mode.");
    m.def("get_flush_denormal", &flush_denormal,
          "Whether the matrix products and optimiser steps flush subnormals to zero.");
    m.def("set_gemm_backend", &set_gemm_backend, py::arg("name"),
          "Switch matrix products to 'blas' (once one is loaded) or 'eigen'.");
    m.def("set_bf16_products", &set_bf16_products, py::arg("on"),
          "float32 products of at least 32^3 multiply-adds with bfloat16 operands (True) or in float32 (False).");
    m.def("get_bf16_products", &bf16_products, "Whether float32 products take bfloat16 operands.");
    m.def("bf16_kernel", &bf16_kernel,
          "Which kernel runs bfloat16 products: 'avx512_bf16' (the CPU has it) or 'emulated'.");
    m.def("set_bf16_kernel", &set_bf16_kernel, py::arg("name"),
          "Force 'emulated' bfloat16 products (rounded operands, float32 product) or the 'avx512_bf16' kernel.");
}

}  // namespace tg
