#include "gemm.h"

#include "bf16_gemm.h"
#include "fpmode.h"
#include "isa.h"
#include "parallel.h"

#include <dlfcn.h>

#include <Eigen/Core>
#include <algorithm>
#include <stdexcept>

namespace tg {

namespace {

// CBLAS enums, fixed by the standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// Below this many multiply-adds a BLAS call's fixed cost outweighs its speed: the loops of
// small_gemm.cpp are faster for the tiny matrices of per-op use.
constexpr int64_t kBlasMinWork = 32 * 32 * 32;

// From this many multiply-adds (about 50 us on one core) a product is split over the engine's
// threads; below, waking a worker costs more than it saves. The pool's caller never waits for a
// worker that has not started (parallel.h), so splitting does not stall under load as OpenBLAS's
// own threads did: LeNet's 2-thread step took 66.5 ms with them, 13-16 ms split here (2^21 and
// 2^22 measured alike; 2^24 left the MNIST layer-2 product, 128 x 3136 x 10, on one thread).
constexpr int64_t kSplitMin = int64_t{1} << 21;

template <class I, class T>
using CblasGemm = void (*)(int, int, int, I, I, I, T, const T*, I, const T*, I, T, T*, I);

struct Blas {
    void* sgemm = nullptr;
    void* dgemm = nullptr;
    bool ilp64 = false;  // integer arguments are 64-bit
    bool active = false;
    bool serial = false;  // its thread count was set to 1 (OpenBLAS): the engine's threads split products
} blas;

template <class T> void* entry() { return sizeof(T) == 4 ? blas.sgemm : blas.dgemm; }

// One BLAS call, with the integer width of the library loaded.
template <class T>
void blas_call(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
    auto call = [&](auto width) {
        using I = decltype(width);
        reinterpret_cast<CblasGemm<I, T>>(entry<T>())(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans,
                                                      static_cast<I>(m), static_cast<I>(n), static_cast<I>(k), alpha,
                                                      a, static_cast<I>(lda), b, static_cast<I>(ldb), beta, c,
                                                      static_cast<I>(ldc));
    };
    if (blas.ilp64) call(int64_t{});
    else call(int32_t{});
}

// A large product on the engine's threads: C in blocks of rows (or of columns, when C is wider than
// tall; multiples of 16, whole SIMD tiles), each block one single-threaded BLAS call. The BLAS's own
// thread count is process-wide (numpy's products share it), so it stays at 1 and is never switched
// per product: two Python threads switching it raced, and a product then ran on another thread
// count, with other bits, than the same product run alone.
template <class T>
void split_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    const bool rows = m >= n;
    parallel_blocks(rows ? m : n, 16, [&](int64_t first, int64_t size) {
        if (rows)  // rows [first, first + size) of op(A) and of C
            blas_call<T>(ta, tb, size, n, k, alpha, ta ? a + first : a + first * lda, lda, b, ldb, beta,
                         c + first * ldc, ldc);
        else  // columns of op(B) and of C
            blas_call<T>(ta, tb, m, size, k, alpha, a, lda, tb ? b + first * ldb : b + first, ldb, beta, c + first,
                         ldc);
    });
}

template <class T> using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using Strided = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

// Eigen's product, for the small products (and all of them without a BLAS). A transposed operand is
// first copied the right way round (m k + k n values against m n k multiply-adds), so one product
// is compiled per type instead of one per pair of transpositions (which took 15 s of the build).
template <class T>
void eigen_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>> C(c, m, n, Eigen::OuterStride<>(ldc));
    RowMatrix<T> at, bt;
    if (ta) {
        at = Strided<T>(a, k, m, Eigen::OuterStride<>(lda)).transpose();
        a = at.data();
        lda = k;
    }
    if (tb) {
        bt = Strided<T>(b, n, k, Eigen::OuterStride<>(ldb)).transpose();
        b = bt.data();
        ldb = n;
    }
    if (beta == T(0)) C.setZero();
    else if (beta != T(1)) C *= beta;
    C.noalias() +=
        alpha * Strided<T>(a, m, k, Eigen::OuterStride<>(lda)) * Strided<T>(b, k, n, Eigen::OuterStride<>(ldb));
}

}  // namespace

// The chosen instruction-set copy's loops for the tiny products (small_gemm.cpp).
template <class T> auto small_product() {
    if constexpr (sizeof(T) == 4) return small_products().f32;
    else return small_products().f64;
}

// The product in T's own precision.
template <class T>
void full_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    // FTZ|DAZ (set_flush_denormal): subnormal operands slow BLAS's products 1.5-3.6x on Intel cores. The
    // BLAS runs on this thread or, split, on the pool's workers, which take this thread's mode.
    FlushScope flush;
    // BLAS wants leading dimensions >= 1 even for empty operands; Eigen handles those edge cases.
    if (blas.active && k > 0 && lda > 0 && ldb > 0 && m * n * k >= kBlasMinWork) {
        if (blas.serial && m * n * k >= kSplitMin && std::max(m, n) >= 64 && pool_threads() > 1)
            split_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        else
            blas_call<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (k > 0 && m * n * k < kBlasMinWork)
        small_product<T>()(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        eigen_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
    // set_float32_matmul_precision("medium"): bfloat16 operands for the products that are not tiny.
    if constexpr (sizeof(T) == 4)
        if (bf16_products() && k > 0 && m * n * k >= kBf16MinWork) {
            FlushScope flush;  // for the tiles' float32 write-back (alpha sum + beta C), as every product has
            bf16_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, &full_gemm<float>);
            return;
        }
    full_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
            blas.active = true;
            // One thread for good (see split_gemm); a BLAS without the setter keeps its own threads.
            const auto set_threads = reinterpret_cast<void (*)(int)>(
                dlsym(lib, (std::string(n.prefix) + "openblas_set_num_threads" + n.suffix).c_str()));
            if (set_threads) set_threads(1);
            blas.serial = set_threads != nullptr;
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

}  // namespace tg
