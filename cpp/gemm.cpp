#include "gemm.h"

#include "fpmode.h"
#include "parallel.h"

#include <dlfcn.h>

#include <Eigen/Core>
#include <algorithm>
#include <stdexcept>
#include <vector>

namespace tg {

namespace {

// CBLAS enums, fixed by the standard.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// Below this many multiply-adds a BLAS call's fixed cost outweighs its speed: Eigen's small-matrix
// product is faster for the tiny matrices of per-op use.
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
// tall), each block one single-threaded BLAS call. The BLAS's own thread count is process-wide
// (numpy's products share it), so it stays at 1 and is never switched per product: two Python
// threads switching it raced, and a product then ran on another thread count, with other bits,
// than the same product run alone. 4 blocks per thread: a late worker leaves the caller at most a
// quarter of its share to take over.
template <class T>
void split_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
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

// The tiny products (below kBlasMinWork multiply-adds: a layer of a few units on a batch, say) as
// plain loops: Eigen's general product packs its operands and sets up blocks first, which cost more
// than the arithmetic here (a 128 x 2 by 2 x 8 product took 3 us). Each c_ij sums its k products in
// order, from 0, a multiply and an add each, so the bits do not depend on the loops' shape: they
// equal numpy's `acc = acc + a[:, p:p+1] * b[p:p+1]` over p (tests/test_ops.py).
//
// C is computed in tiles of R x L sums held in registers through the whole of k (sums kept in
// memory would wait on their own store at each p). L runs along the longer side of C, over a copy
// of the operand it reads along that side when that one is not laid out so.
template <class T>
struct SmallProduct {
    static constexpr int R = 4, L = 32 / sizeof(T);  // 8 of SSE2's 16 vector registers hold the sums
    const T* x;       // x(r, p): the operand read one value at a time,
    bool xt;          // at x[p * ldx + r] if xt, else at x[r * ldx + p]
    int64_t ldx;
    const T* y;       // y(p, l) at y[p * ldy + l]: the operand read along l
    int64_t ldy, k;

    // The sums of rows r0 .. r0 + nr and elements l0 .. l0 + nl (nr <= R, nl <= L) into t.
    template <int NR, int NL>
    void tile(int64_t r0, int64_t l0, int nr, int nl, T (&t)[R][L]) const {
        const int rs = NR ? NR : nr, ls = NL ? NL : nl;  // compile-time sizes for the full tiles
        for (int r = 0; r < R; ++r)
            for (int l = 0; l < L; ++l) t[r][l] = T(0);
        for (int64_t p = 0; p < k; ++p) {
            const T* yp = y + p * ldy + l0;
            for (int r = 0; r < rs; ++r) {
                const T xr = xt ? x[p * ldx + r0 + r] : x[(r0 + r) * ldx + p];
                for (int l = 0; l < ls; ++l) t[r][l] += xr * yp[l];
            }
        }
    }
};

template <class T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    using P = SmallProduct<T>;
    constexpr int R = P::R, L = P::L;
    // Along rows of C (l = j) when n >= m; else along its columns (l = i): C^T = B^T A^T is the
    // same product with the operands' roles swapped.
    const bool by_rows = n >= m;
    const int64_t rows = by_rows ? m : n, len = by_rows ? n : m;
    P prod{by_rows ? a : b, by_rows ? ta : !tb, by_rows ? lda : ldb, by_rows ? b : a, by_rows ? ldb : lda, k};
    std::vector<T> packed;
    if (by_rows ? tb : !ta) {  // y is stored along p: copy it to k x len
        packed.resize(static_cast<size_t>(k * len));
        for (int64_t l = 0; l < len; ++l)
            for (int64_t p = 0; p < k; ++p) packed[p * len + l] = prod.y[l * prod.ldy + p];
        prod.y = packed.data();
        prod.ldy = len;
    }
    // c(i, j) of sum (r, l): row r, element l along rows; transposed along columns.
    const int64_t rstep = by_rows ? ldc : 1, lstep = by_rows ? 1 : ldc;
    T t[R][L];
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
        const int nr = static_cast<int>(std::min<int64_t>(R, rows - r0));
        for (int64_t l0 = 0; l0 < len; l0 += L) {
            const int nl = static_cast<int>(std::min<int64_t>(L, len - l0));
            // Compile-time sizes for whole widths, so that the sums stay in registers (C with 1-3
            // rows or columns is common: the gradients of a layer with a few units).
            if (nl < L) prod.template tile<0, 0>(r0, l0, nr, nl, t);
            else if (nr == 4) prod.template tile<4, L>(r0, l0, nr, nl, t);
            else if (nr == 3) prod.template tile<3, L>(r0, l0, nr, nl, t);
            else if (nr == 2) prod.template tile<2, L>(r0, l0, nr, nl, t);
            else prod.template tile<1, L>(r0, l0, nr, nl, t);
            for (int r = 0; r < nr; ++r) {
                T* cr = c + (r0 + r) * rstep + l0 * lstep;
                if (beta == T(0)) {
                    for (int l = 0; l < nl; ++l) cr[l * lstep] = alpha * t[r][l];
                } else {
                    for (int l = 0; l < nl; ++l) cr[l * lstep] = beta * cr[l * lstep] + alpha * t[r][l];
                }
            }
        }
    }
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
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
        small_gemm<T>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
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
