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
// times L contiguous values of the other, y. A tile's rows are C's rows (x = A, y = B) or its
// columns (C^T = B^T A^T: x = B, y = A), and they are one vector wide (R = 8) or two (R = 4),
// whichever costs less; y is copied, in rows padded to whole tiles with zeros, unless it is laid
// out so already. A k of 1 to 8 is a compile-time constant, so that the loop over it unrolls: for
// a layer's input of 2 features, its control and the tile's set-up had cost more than the sums.
template <class T, int Vectors>
struct SmallProduct {
    // The sums take 8 of the 16 (SSE2, AVX2) or 32 (AVX-512) vector registers.
    static constexpr int W = kVectorBytes / sizeof(T);  // elements per vector
    static constexpr int R = 8 / Vectors, L = Vectors * W;
    const T* x;  // x(r, p) at x[r * xr + p * xp]
    int64_t xr, xp;
    const T* y;  // y(p, l) at y[p * ldy + l], whole tiles wide
    int64_t ldy, k;

    // The sums as GCC vector-extension values, so that they stay in registers (as plain arrays of
    // T, GCC vectorised the loop its own way and kept them on the stack).
    using V = std::conditional_t<sizeof(T) == 4, Floats, Doubles>;
    static_assert(sizeof(V) == kVectorBytes, "a vector of sums is one register");
    static V load(const T* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }

    // c = alpha sum + beta c for the tile's sums (store(), above): c(r, l) at c[r * rstep + l * lstep],
    // nl of its L columns. Whole rows along C's rows go from the registers as vectors, the others
    // element by element: the same roundings either way. K: k when it is known at compile time, else 0.
    template <int NR, int K>
    __attribute__((always_inline)) void tile(int64_t r0, int64_t l0, T* c, int64_t rstep, int64_t lstep, int nl,
                                             T alpha, T beta) const {
        V s[NR][Vectors];
        for (int r = 0; r < NR; ++r)
            for (int q = 0; q < Vectors; ++q) s[r][q] = V{};
        const T* xs = x + r0 * xr;
        const T* yp = y + l0;
        const int64_t kk = K ? K : k;
        for (int64_t p = 0; p < kk; ++p, yp += ldy) {
            V yv[Vectors];
            for (int q = 0; q < Vectors; ++q) yv[q] = load(yp + q * W);
            for (int r = 0; r < NR; ++r) {
                const T v = xs[r * xr + p * xp];
                for (int q = 0; q < Vectors; ++q) s[r][q] += v * yv[q];
            }
        }
        if (lstep == 1 && nl == L) {
            for (int r = 0; r < NR; ++r)
                for (int q = 0; q < Vectors; ++q) {
                    T* cr = c + r * rstep + q * W;
                    V v = alpha * s[r][q];
                    if (beta != T(0)) v = beta * load(cr) + v;
                    std::memcpy(cr, &v, sizeof(V));
                }
            return;
        }
        T t[NR][L];
        for (int r = 0; r < NR; ++r)
            for (int q = 0; q < Vectors; ++q) {
                const V v = alpha * s[r][q];
                std::memcpy(&t[r][q * W], &v, sizeof(V));
            }
        for (int r = 0; r < NR; ++r) {
            T* cr = c + r * rstep;
            if (beta == T(0))
                for (int l = 0; l < nl; ++l) cr[l * lstep] = t[r][l];
            else
                for (int l = 0; l < nl; ++l) cr[l * lstep] = beta * cr[l * lstep] + t[r][l];
        }
    }

    // All tiles of a C with `rows` tile rows of `len` elements each: down each column of tiles
    // (C is mostly tall and narrow here, a batch by a few units), the last tile of a column as high
    // as the rows left.
    template <int K>
    void tiles(int64_t rows, int64_t len, T* c, int64_t rstep, int64_t lstep, T alpha, T beta) const {
        const int64_t full = rows / R * R;
        for (int64_t l0 = 0; l0 < len; l0 += L) {
            const int nl = static_cast<int>(std::min<int64_t>(L, len - l0));
            T* cl = c + l0 * lstep;
            for (int64_t r0 = 0; r0 < full; r0 += R) tile<R, K>(r0, l0, cl + r0 * rstep, rstep, lstep, nl, alpha, beta);
            if (full == rows) continue;
            T* ct = cl + full * rstep;
            // Compile-time heights, so that the sums stay in registers (5 to 7 occur only when R is 8;
            // with R = 4 those cases are never taken and name tile<1>).
            switch (rows - full) {
                case 7: tile<(R > 7 ? 7 : 1), K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 6: tile<(R > 6 ? 6 : 1), K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 5: tile<(R > 5 ? 5 : 1), K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 4: tile<(R > 4 ? 4 : 1), K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 3: tile<3, K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                case 2: tile<2, K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
                default: tile<1, K>(full, l0, ct, rstep, lstep, nl, alpha, beta); break;
            }
        }
    }

    void run(int64_t rows, int64_t len, T* c, int64_t rstep, int64_t lstep, T alpha, T beta) const {
        switch (k) {
            case 1: return tiles<1>(rows, len, c, rstep, lstep, alpha, beta);
            case 2: return tiles<2>(rows, len, c, rstep, lstep, alpha, beta);
            case 3: return tiles<3>(rows, len, c, rstep, lstep, alpha, beta);
            case 4: return tiles<4>(rows, len, c, rstep, lstep, alpha, beta);
            case 5: return tiles<5>(rows, len, c, rstep, lstep, alpha, beta);
            case 6: return tiles<6>(rows, len, c, rstep, lstep, alpha, beta);
            case 7: return tiles<7>(rows, len, c, rstep, lstep, alpha, beta);
            case 8: return tiles<8>(rows, len, c, rstep, lstep, alpha, beta);
            default: return tiles<0>(rows, len, c, rstep, lstep, alpha, beta);
        }
    }
};

// Up to this many multiply-adds (a 4 x 4 by 4 x 4 product), copying an operand into padded tiles
// costs more than the arithmetic: 2 x 2 by 2 x 2 took 460 instructions through the tiles.
constexpr int64_t kScalarMax = 64;

// One way to tile C: its orientation (tile rows along C's rows or columns) and tile width.
struct Plan {
    bool by_rows;
    int vectors;
    int64_t work;  // multiply-adds of the padded tiles, plus the elements of y's copy
};

template <class T, int Vectors>
void run_plan(const Plan& plan, bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
              const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    using P = SmallProduct<T, Vectors>;
    constexpr int L = P::L;
    const bool by_rows = plan.by_rows;
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
    if (y_along_p || len % L) {
        const int64_t width = (len + L - 1) / L * L;
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
    prod.run(rows, len, c, by_rows ? ldc : 1, by_rows ? 1 : ldc, alpha, beta);
}

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
    // The cheapest of the four plans.
    const auto up = [](int64_t v, int64_t to) { return (v + to - 1) / to * to; };
    const auto work = [&](bool by_rows, int vectors) {
        const int64_t R = vectors == 1 ? SmallProduct<T, 1>::R : SmallProduct<T, 2>::R;
        const int64_t L = vectors == 1 ? SmallProduct<T, 1>::L : SmallProduct<T, 2>::L;
        const int64_t rows = by_rows ? m : n, len = by_rows ? n : m;
        const bool along_p = by_rows ? tb : !ta;
        return Plan{by_rows, vectors, up(rows, R) * up(len, L) * k + (along_p || len % L ? k * up(len, L) : 0)};
    };
    Plan best = work(true, 2);
    for (const Plan& p : {work(false, 2), work(true, 1), work(false, 1)})
        if (p.work < best.work) best = p;
    if (best.vectors == 2)
        run_plan<T, 2>(best, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        run_plan<T, 1>(best, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

SmallProducts TG_ISA::small_products() { return {small_gemm<float>, small_gemm<double>}; }

}  // namespace tg
