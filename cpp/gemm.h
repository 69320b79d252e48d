// Matrix products for the kernels: C = alpha op(A) op(B) + beta C on row-major matrices.
// Runs on a BLAS found at run time (numpy's own OpenBLAS) when one was loaded, else on Eigen. The
// BLAS runs on one thread (set when it is loaded); large products are split over the engine's
// threads (parallel.h) instead.
#pragma once

#include <cstdint>
#include <string>

namespace tg {

// op(A) is m x k (A itself, or A^T when trans_a), op(B) is k x n; ld* are row strides in elements.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Loads cblas_sgemm/cblas_dgemm (plain, scipy_-prefixed, or with the 64_ suffix of ILP64 builds) from
// the shared library at `path`; returns false and keeps Eigen if they are not there.
bool load_blas(const std::string& path);
// "blas" or "eigen": which one gemm uses now; set_gemm_backend switches (blas only once loaded).
std::string gemm_backend();
void set_gemm_backend(const std::string& name);

}  // namespace tg
