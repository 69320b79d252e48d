// The loops of the tiny matrix products, compiled per instruction set (CMakeLists.txt, TAPEGRAD_KERNELS)
// and without contracting multiply-adds into FMAs, so that every copy gives the same bits.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "isa.h"

namespace tg {

namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif
// GCC's vector types (on a template's type the attribute does not take).
typedef float Floats __attribute__((vector_size(kVectorBytes)));
typedef double Doubles __attribute__((vector_size(kVectorBytes)));

// c = alpha sum + beta c, as BLAS (beta 0: c is not read, so it may hold anything).
template <class T> void store(T& c, T sum, T alpha, T beta) {
    c = beta == T(0) ? alpha * sum : beta * c + alpha * sum;
}

// gemm.cpp runs the tiny products (below 32^3 multiply-adds: a layer of a few units on a batch,
// say) as these plain loops: Eigen's general product packs its operands and sets up blocks first,
// which cost more than the arithmetic here (a 128 x 2 by 2 x 8 product took 3 us). Each c_ij sums
// its k products in order, from 0, a multiply and an add each, so the bits do not depend on the
// loops' shape: they equal numpy's `acc = acc + a[:, p:p+1] * b[p:p+1]` over p (tests/test_blas.py).
//
// C is computed in tiles of R x L sums held in registers through the whole of k (sums kept in
// memory would wait on their own store at each p): R values of one operand, x, read one at a time,
// times L contiguous values of the other, y. C's rows are the tiles' rows (x = A, y = B) or its
// columns (C^T = B^T A^T: x = B, y = A), whichever costs less; y is copied, in rows padded to whole
// tiles with zeros, unless it is laid out so already.
template <class T>
struct SmallProduct {
    // Two vector registers per row of sums: 8 of the 16 (SSE2, AVX2) or 32 (AVX-512) registers.
    static constexpr int R = 4, L = 2 * kVectorBytes / sizeof(T);
    const T* x;  // x(r, p) at x[r * xr + p * xp]
    int64_t xr, xp;
    const T* y;  // y(p, l) at y[p * ldy + l], whole tiles wide
    int64_t ldy, k;

    // The sums as GCC vector-extension values, two per row, so that they stay in registers (as
    // plain arrays GCC vectorised the loop its own way and kept them on the stack).
    using V = std::conditional_t<sizeof(T) == 4, Floats, Doubles>;
    static constexpr int W = kVectorBytes / sizeof(T);  // elements per vector; L == 2 W
    static_assert(sizeof(V) == kVectorBytes && L == 2 * W, "a vector of sums is one register");
    static V load(const T* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }

    // c = alpha sum + beta c for the tile's sums (store(), above): c(r, l) at c[r * rstep + l * lstep],
    // nl of its L columns. Whole rows along C's rows go from the registers as vectors, the others
    // element by element: the same roundings either way.
    template <int NR>
    void tile(int64_t r0, int64_t l0, T* c, int64_t rstep, int64_t lstep, int nl, T alpha, T beta) const {
        V s0[NR], s1[NR];
        for (int r = 0; r < NR; ++r) s0[r] = s1[r] = V{};
        const T* xs = x + r0 * xr;
        const T* yp = y + l0;
        for (int64_t p = 0; p < k; ++p, yp += ldy) {
            const V y0 = load(yp), y1 = load(yp + W);
            for (int r = 0; r < NR; ++r) {
                const T v = xs[r * xr + p * xp];
                s0[r] += v * y0;
                s1[r] += v * y1;
            }
        }
        if (lstep == 1 && nl == L) {
            for (int r = 0; r < NR; ++r) {
                T* cr = c + r * rstep;
                V c0 = alpha * s0[r], c1 = alpha * s1[r];
                if (beta != T(0)) c0 = beta * load(cr) + c0, c1 = beta * load(cr + W) + c1;
                std::memcpy(cr, &c0, sizeof(V));
                std::memcpy(cr + W, &c1, sizeof(V));
            }
            return;
        }
        T t[NR][L];
        for (int r = 0; r < NR; ++r) {
            std::memcpy(&t[r][0], &s0[r], sizeof(V));
            std::memcpy(&t[r][W], &s1[r], sizeof(V));
            for (int l = 0; l < nl; ++l) store(c[r * rstep + l * lstep], t[r][l], alpha, beta);
        }
    }
};

// Up to this many multiply-adds (a 4 x 4 by 4 x 4 product), copying an operand into padded tiles
// costs more than the arithmetic: 2 x 2 by 2 x 2 took 460 instructions through the tiles.
constexpr int64_t kScalarMax = 64;

template <class T>
void small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
                int64_t ldb, T beta, T* c, int64_t ldc) {
    if (m * n * k <= kScalarMax) {  // a few elements: the same sums one at a time, without tiles or copies
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                T sum = T(0);
                for (int64_t p = 0; p < k; ++p)
                    sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                store(c[i * ldc + j], sum, alpha, beta);
            }
        return;
    }
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
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
        const int nr = static_cast<int>(std::min<int64_t>(R, rows - r0));
        for (int64_t l0 = 0; l0 < len; l0 += L) {
            const int nl = static_cast<int>(std::min<int64_t>(L, len - l0));
            T* ct = c + r0 * rstep + l0 * lstep;
            switch (nr) {  // compile-time heights, so that the sums stay in registers
                case 4: prod.template tile<4>(r0, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 3: prod.template tile<3>(r0, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 2: prod.template tile<2>(r0, l0, ct, rstep, lstep, nl, alpha, beta); break;
                default: prod.template tile<1>(r0, l0, ct, rstep, lstep, nl, alpha, beta); break;
            }
        }
    }
}

}  // namespace

SmallProducts TG_ISA::small_products() { return {small_gemm<float>, small_gemm<double>}; }

}  // namespace tg
