#include "gemm.h"

#include <dlfcn.h>

#include <Eigen/Core>
#include <stdexcept>

namespace tg {

namespace {

// CBLAS enums, fixed by the standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// Below this many multiply-adds a BLAS call's fixed cost outweighs its speed: Eigen's small-matrix
// product is faster for the tiny matrices of per-op use.
constexpr int64_t kBlasMinWork = 32 * 32 * 32;

template <class I, class T>
using CblasGemm = void (*)(int, int, int, I, I, I, T, const T*, I, const T*, I, T, T*, I);

struct Blas {
    void* sgemm = nullptr;
    void* dgemm = nullptr;
    bool ilp64 = false;  // integer arguments are 64-bit
    void (*set_threads)(int) = nullptr;
    bool active = false;
} blas;

template <class T> void* entry() { return sizeof(T) == 4 ? blas.sgemm : blas.dgemm; }

template <class I, class T>
void call_blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
    reinterpret_cast<CblasGemm<I, T>>(entry<T>())(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans,
                                                  static_cast<I>(m), static_cast<I>(n), static_cast<I>(k), alpha, a,
                                                  static_cast<I>(lda), b, static_cast<I>(ldb), beta, c,
                                                  static_cast<I>(ldc));
}

template <class T>
using Strided = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                           Eigen::OuterStride<>>;

template <class T>
void eigen_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>> C(
        c, m, n, Eigen::OuterStride<>(ldc));
    Strided<T> A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
    Strided<T> B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
    if (beta == T(0)) C.setZero();
    else if (beta != T(1)) C *= beta;
    if (ta && tb) C.noalias() += alpha * A.transpose() * B.transpose();
    else if (ta) C.noalias() += alpha * A.transpose() * B;
    else if (tb) C.noalias() += alpha * A * B.transpose();
    else C.noalias() += alpha * A * B;
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    // BLAS wants leading dimensions >= 1 even for empty operands; Eigen handles those edge cases.
    if (blas.active && k > 0 && lda > 0 && ldb > 0 && m * n * k >= kBlasMinWork) {
        if (blas.ilp64) call_blas<int64_t, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else call_blas<int32_t, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    eigen_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

bool load_blas(const std::string& path) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    // (prefix, suffix, ILP64): OpenBLAS as numpy bundles it, scipy-openblas32, a plain system BLAS.
    const struct {
        const char *prefix, *suffix;
        bool ilp64;
    } names[] = {{"scipy_", "64_", true}, {"", "64_", true}, {"scipy_", "", false}, {"", "", false}};
    for (const auto& n : names) {
        void* s = dlsym(lib, (std::string(n.prefix) + "cblas_sgemm" + n.suffix).c_str());
        void* d = dlsym(lib, (std::string(n.prefix) + "cblas_dgemm" + n.suffix).c_str());
        if (s && d) {
            blas.sgemm = s;
            blas.dgemm = d;
            blas.ilp64 = n.ilp64;
            blas.set_threads = reinterpret_cast<void (*)(int)>(
                dlsym(lib, (std::string(n.prefix) + "openblas_set_num_threads" + n.suffix).c_str()));
            blas.active = true;
            return true;  // the library stays loaded for the life of the process
        }
    }
    dlclose(lib);
    return false;
}

std::string gemm_backend() { return blas.active ? "blas" : "eigen"; }

void set_gemm_backend(const std::string& name) {
    if (name == "eigen") blas.active = false;
    else if (name == "blas" && blas.sgemm) blas.active = true;
    else if (name == "blas") throw std::invalid_argument("set_gemm_backend: no BLAS library was loaded");
    else throw std::invalid_argument("set_gemm_backend: expected 'blas' or 'eigen', got '" + name + "'");
}

void set_blas_threads(int n) {
    if (blas.set_threads) blas.set_threads(n);
}

}  // namespace tg
