#include "gemm.h"

#include "fpmode.h"
#include "parallel.h"

#include <dlfcn.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
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

// Products below this many multiply-adds run on one BLAS thread: waking OpenBLAS's threads costs
// more than they save there, and under load a thread another process keeps off its core stalls
// the product (the Linear layers of the CNN steps took 40-56 ms at 2 threads against 0.3-0.5 ms
// at 1). Larger ones get the count set_blas_threads asked for.
constexpr int64_t kSerialBelow = int64_t{1} << 24;
std::atomic<int> blas_wanted{1};  // the count set_blas_threads asked for
std::atomic<int> blas_now{-1};    // the count the BLAS has (-1: not set by us)

void use_blas_threads(int n) {
    if (blas.set_threads && blas_now.exchange(n) != n) blas.set_threads(n);
}

template <class T>
void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
    if (blas.ilp64) call_blas<int64_t, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else call_blas<int32_t, T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// A large product on the engine's threads: C in blocks of rows (or of columns, when C is wider than
// tall), each block one single-threaded BLAS call. OpenBLAS's own threads keep the MXCSR they were
// created with (numpy's build lacks CONSISTENT_FPCSR: at 2 threads half of a product ignored
// FTZ|DAZ), while the pool's workers take the caller's mode for each job; and the caller never
// waits for a worker that another process keeps off its core. 4 blocks per thread: a late worker
// leaves the caller at most a quarter of its share to take over.
template <class T>
void split_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    use_blas_threads(1);
    const bool rows = m >= n;
    const int64_t dim = rows ? m : n;
    const int64_t parts = std::min<int64_t>(4 * pool_threads(), (dim + 15) / 16);
    const int64_t block = ((dim + parts - 1) / parts + 15) / 16 * 16;  // multiples of 16: whole SIMD tiles
    const int64_t blocks = (dim + block - 1) / block;
    constexpr int64_t unit = kParallelMin;  // parallel_for's count: each block is this many "elements"
    parallel_for(blocks * unit, unit, [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo / unit; q < hi / unit; ++q) {
            const int64_t first = q * block, size = std::min(block, dim - first);
            if (rows)  // rows [first, first + size) of op(A) and of C
                blas_call<T>(ta, tb, size, n, k, alpha, ta ? a + first : a + first * lda, lda, b, ldb, beta,
                             c + first * ldc, ldc);
            else  // columns of op(B) and of C
                blas_call<T>(ta, tb, m, size, k, alpha, a, lda, tb ? b + first * ldb : b + first, ldb, beta,
                             c + first, ldc);
        }
    });
    use_blas_threads(blas_wanted.load());  // numpy's own products (the same library) get their count back
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    // FTZ|DAZ (set_flush_denormal): subnormal operands slow BLAS's products 1.5-3.6x on Intel cores.
    FlushScope flush;
    // BLAS wants leading dimensions >= 1 even for empty operands; Eigen handles those edge cases.
    if (blas.active && k > 0 && lda > 0 && ldb > 0 && m * n * k >= kBlasMinWork) {
        if (m * n * k >= kSerialBelow && blas_wanted.load() > 1 && pool_threads() > 1 && std::max(m, n) >= 64) {
            split_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        use_blas_threads(1);
        blas_call<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
    blas_wanted = n;
    use_blas_threads(n);
}

}  // namespace tg
