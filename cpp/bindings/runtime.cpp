// Bindings of the engine's settings: grad and anomaly modes (per thread), threads, the BLAS.
#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <pybind11/stl.h>

#include "bindings/modules.h"
#include "gemm.h"
#include "isa.h"
#include "parallel.h"
#include "tape.h"

namespace tg {

void bind_runtime(pybind11::module_& m) {
    // The element-wise pool starts with the thread count OpenMP reports (OMP_NUM_THREADS, else
    // the cores), as the matrix products do.
    set_pool_threads(Eigen::nbThreads());
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
    m.def("get_num_threads", [] { return Eigen::nbThreads(); });
    m.def("load_blas", &load_blas, "Use cblas_sgemm/dgemm from this shared library for matrix products.");
    m.def("gemm_backend", &gemm_backend);
    m.def("kernel_isa", &kernel_isa, "The instruction set of the kernels in use (chosen at import, or TAPEGRAD_ISA).");
    m.def("kernel_isas", &kernel_isas, "The instruction sets the kernels were compiled for, best first.");
    m.def("set_gemm_backend", &set_gemm_backend);
}

}  // namespace tg
