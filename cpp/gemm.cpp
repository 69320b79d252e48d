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
// equal numpy's `acc = acc + a[:, p:p+1] * b[p:p+1]` over p (tests/test_blas.py).
//
// C is computed in tiles of R x L sums held in registers through the whole of k (sums kept in
// memory would wait on their own store at each p): R values of one operand, x, read one at a time,
// times L contiguous values of the other, y. C's rows are the tiles' rows (x = A, y = B) or its
// columns (C^T = B^T A^T: x = B, y = A), whichever costs less; y is copied, in rows padded to whole
// tiles with zeros, unless it is laid out so already.
template <class T>
struct SmallProduct {
    static constexpr int R = 4, L = 32 / sizeof(T);  // 8 of SSE2's 16 vector registers hold the sums
    const T* x;  // x(r, p) at x[r * xr + p * xp]
    int64_t xr, xp;
    const T* y;  // y(p, l) at y[p * ldy + l], whole tiles wide
    int64_t ldy, k;

    template <int NR>
    void tile(int64_t r0, int64_t l0, T (&t)[R][L]) const {
        for (int r = 0; r < NR; ++r)
            for (int l = 0; l < L; ++l) t[r][l] = T(0);
        const T* xs = x + r0 * xr;
        for (int64_t p = 0; p < k; ++p) {
            const T* yp = y + p * ldy + l0;
            for (int r = 0; r < NR; ++r) {
                const T v = xs[r * xr + p * xp];
                for (int l = 0; l < L; ++l) t[r][l] += v * yp[l];
            }
        }
    }
};

template <class T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    using P = SmallProduct<T>;
    constexpr int R = P::R, L = P::L;
    const auto up = [](int64_t v, int64_t to) { return (v + to - 1) / to * to; };
    // Work of each way: the padded tiles' multiply-adds, and the copy of y when y needs one.
    const auto copy = [&](bool along_p, int64_t len) { return along_p || len % L ? k * up(len, L) : 0; };
    const int64_t by_rows_work = up(m, R) * up(n, L) * k + copy(tb, n);
    const int64_t by_cols_work = up(n, R) * up(m, L) * k + copy(!ta, m);
    const bool by_rows = by_rows_work <= by_cols_work;
    const int64_t rows = by_rows ? m : n, len = by_rows ? n : m;
    P prod;
    prod.k = k;
    if (by_rows) {  // x(r, p) = A(i, p), y(p, l) = B(p, j)
        prod.x = a, prod.xr = ta ? 1 : lda, prod.xp = ta ? lda : 1;
    } else {  // x(r, p) = B(p, j), y(p, l) = A(i, p)
        prod.x = b, prod.xr = tb ? ldb : 1, prod.xp = tb ? 1 : ldb;
    }
    const T* y = by_rows ? b : a;
    const bool y_along_p = by_rows ? tb : !ta;  // y(p, l) at y[l * ldy + p]
    const int64_t ldy = by_rows ? ldb : lda;
    constexpr int64_t kStack = 4096;
    T stack[kStack];
    std::vector<T> heap;
    if (copy(y_along_p, len)) {
        const int64_t width = up(len, L);
        T* packed = stack;
        if (k * width > kStack) {
            heap.resize(static_cast<size_t>(k * width));
            packed = heap.data();
        }
        for (int64_t p = 0; p < k; ++p) {
            T* row = packed + p * width;
            if (y_along_p) {
                for (int64_t l = 0; l < len; ++l) row[l] = y[l * ldy + p];
            } else {
                std::copy(y + p * ldy, y + p * ldy + len, row);
            }
            std::fill(row + len, row + width, T(0));
        }
        prod.y = packed, prod.ldy = width;
    } else {
        prod.y = y, prod.ldy = ldy;
    }
    // c(i, j) of sum (r, l): row r, element l by rows; transposed by columns.
    const int64_t rstep = by_rows ? ldc : 1, lstep = by_rows ? 1 : ldc;
    T t[R][L];
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
        const int nr = static_cast<int>(std::min<int64_t>(R, rows - r0));
        for (int64_t l0 = 0; l0 < len; l0 += L) {
            switch (nr) {  // compile-time heights, so that the sums stay in registers
                case 4: prod.template tile<4>(r0, l0, t); break;
                case 3: prod.template tile<3>(r0, l0, t); break;
                case 2: prod.template tile<2>(r0, l0, t); break;
                default: prod.template tile<1>(r0, l0, t); break;
            }
            const int nl = static_cast<int>(std::min<int64_t>(L, len - l0));
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
