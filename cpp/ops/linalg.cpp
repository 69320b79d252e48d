// Matrix products (Eigen GEMM on row-major maps of the tensors' buffers).
#include "gemm.h"
#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

namespace {

// C (m x n) = op(A) op(B) (+ C when accumulate) for contiguous row-major operands.
template <class T>
void mm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, const T* b, T* c, bool accumulate = false) {
    gemm<T>(ta, tb, m, n, k, T(1), a, ta ? m : k, b, tb ? k : n, accumulate ? T(1) : T(0), c, n);
}

// numpy's matmul: a 1-d left operand is a row (1, k), a 1-d right operand a column (k, 1), and the
// leading (batch) axes of operands with 2 or more dimensions broadcast.
struct MatmulShapes {
    Shape a, b;          // the operands as (..., n, k) and (..., k, m)
    Shape batch;         // broadcast batch axes
    int64_t n, k, m;
    Shape full;          // batch + (n, m)
    Shape out;           // full without the axes that 1-d operands added
};

MatmulShapes matmul_shapes(const char* op, const Tensor& a, const Tensor& b) {
    if (a.ndim() == 0 || b.ndim() == 0)
        throw std::invalid_argument(std::string(op) + ": operands must have at least 1 dimension, got shapes " +
                                    shape_str(a.shape()) + " and " + shape_str(b.shape()));
    MatmulShapes s;
    s.a = a.ndim() == 1 ? Shape{1, a.dim(0)} : a.shape();
    s.b = b.ndim() == 1 ? Shape{b.dim(0), 1} : b.shape();
    s.n = s.a[s.a.size() - 2];
    s.k = s.a[s.a.size() - 1];
    s.m = s.b[s.b.size() - 1];
    if (s.k != s.b[s.b.size() - 2])
        throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a.shape()) + " and " +
                                    shape_str(b.shape()) + " do not align (" + std::to_string(s.k) +
                                    " != " + std::to_string(s.b[s.b.size() - 2]) + ")");
    if (a.ndim() == 2 && b.ndim() == 2) {  // two matrices: no batch axes to broadcast
        s.full = s.out = Shape{s.n, s.m};
        return s;
    }
    s.batch = broadcast_shape(Shape(s.a.begin(), s.a.end() - 2), Shape(s.b.begin(), s.b.end() - 2), op);
    s.full = s.batch;
    s.full.push_back(s.n);
    s.full.push_back(s.m);
    s.out = s.batch;
    if (a.ndim() > 1) s.out.push_back(s.n);
    if (b.ndim() > 1) s.out.push_back(s.m);
    return s;
}

Shape batch_of(const Shape& s) { return Shape(s.begin(), s.end() - 2); }

// For each matrix of the broadcast batch calls f(batch index, a matrix index, b matrix index).
template <class F> void for_each_matrix(const MatmulShapes& s, F f) {
    const auto sa = broadcast_strides(batch_of(s.a), s.batch);
    const auto sb = broadcast_strides(batch_of(s.b), s.batch);
    walk(s.batch, sa, sb, [&](int64_t o, int64_t ia, int64_t ib, int64_t n, int64_t s1, int64_t s2) {
        for (int64_t i = 0; i < n; ++i) f(o + i, ia + i * s1, ib + i * s2);
    });
}

}  // namespace

Shapes shape_matmul(const Call& c) { return {matmul_shapes(c.name(), c.in[0], c.in[1]).out}; }

void fwd_matmul(Call& c) {
    const MatmulShapes s = matmul_shapes(c.name(), c.in[0], c.in[1]);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = s.n, k = s.k, m = s.m;
        const T *pa = c.in[0].data<T>(), *pb = c.in[1].data<T>();
        T* po = c.out[0].data<T>();
        if (s.b.size() == 2) {  // one right matrix: all left rows in a single GEMM
            mm<T>(false, false, numel_of(Shape(s.a.begin(), s.a.end() - 1)), m, k, pa, pb, po);
            return;
        }
        for_each_matrix(s, [&](int64_t o, int64_t ia, int64_t ib) {
            mm<T>(false, false, n, m, k, pa + ia * n * k, pb + ib * k * m, po + o * n * m);
        });
    });
}
// C = A B per batch matrix: dL/dA = G B^T, dL/dB = A^T G, summed over the axes an operand was broadcast on
Grads bwd_matmul(const Call& c, const Grads& g, const Need& need) {
    const MatmulShapes s = matmul_shapes(c.name(), c.in[0], c.in[1]);
    const Tensor &a = c.in[0], &b = c.in[1];
    Grads r(2);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = s.n, k = s.k, m = s.m;
        const T *pa = a.data<T>(), *pb = b.data<T>(), *pg = g[0].data<T>();
        if (s.b.size() == 2) {
            const int64_t rows = numel_of(Shape(s.a.begin(), s.a.end() - 1));
            if (need[0]) {
                r[0] = Tensor::empty(a.shape(), a.dtype());
                mm<T>(false, true, rows, k, m, pg, pb, r[0].data<T>());
            }
            if (need[1]) {
                r[1] = Tensor::empty(b.shape(), b.dtype());
                mm<T>(true, false, k, m, rows, pa, pg, r[1].data<T>());
            }
            return;
        }
        Shape full_a = s.batch, full_b = s.batch;
        full_a.insert(full_a.end(), {n, k});
        full_b.insert(full_b.end(), {k, m});
        Tensor ga = need[0] ? Tensor::empty(full_a, a.dtype()) : Tensor();
        Tensor gb = need[1] ? Tensor::empty(full_b, b.dtype()) : Tensor();
        for_each_matrix(s, [&](int64_t o, int64_t ia, int64_t ib) {
            if (need[0]) mm<T>(false, true, n, k, m, pg + o * n * m, pb + ib * k * m, ga.data<T>() + o * n * k);
            if (need[1]) mm<T>(true, false, k, m, n, pa + ia * n * k, pg + o * n * m, gb.data<T>() + o * k * m);
        });
        if (need[0]) r[0] = sum_to(ga, s.a).view(a.shape());
        if (need[1]) r[1] = sum_to(gb, s.b).view(b.shape());
    });
    return r;
}

static void require_matrices(const char* op, const Tensor& a, const Tensor& b) {
    if (a.ndim() != 2 || b.ndim() != 2)
        throw std::invalid_argument(std::string(op) + ": expected two matrices (2 dimensions), got shapes " +
                                    shape_str(a.shape()) + " and " + shape_str(b.shape()));
}

// batch_mm(matrix (o, i), vectors (n, i)) applies the matrix to each row vector: (n, o).
Shapes shape_batch_mm(const Call& c) {
    const char* op = c.name();
    const auto &w = c.in[0], &x = c.in[1];
    require_matrices(op, w, x);
    if (w.dim(1) != x.dim(1))
        throw std::invalid_argument(std::string(op) + ": matrix of shape " + shape_str(w.shape()) +
                                    " cannot apply to vectors of shape " + shape_str(x.shape()) + " (" +
                                    std::to_string(w.dim(1)) + " != " + std::to_string(x.dim(1)) + ")");
    return {Shape{x.dim(0), w.dim(0)}};
}

// Y = X W^T for X (n, i) and W (o, i): dL/dX = G W, dL/dW = G^T X, each only when wanted.
template <class T>
void xwt_grads(const Tensor& g, const Tensor& x, const Tensor& w, bool want_x, bool want_w, Tensor& gx, Tensor& gw) {
    const int64_t n = x.dim(0), o = w.dim(0), i = w.dim(1);
    if (want_x) {
        gx = Tensor::empty(x.shape(), x.dtype());
        mm<T>(false, false, n, i, o, g.data<T>(), w.data<T>(), gx.data<T>());
    }
    if (want_w) {
        gw = Tensor::empty(w.shape(), w.dtype());
        mm<T>(true, false, o, i, n, g.data<T>(), x.data<T>(), gw.data<T>());
    }
}

void fwd_batch_mm(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const auto &w = c.in[0], &x = c.in[1];
        mm<T>(false, true, x.dim(0), w.dim(0), x.dim(1), x.data<T>(), w.data<T>(), c.out[0].data<T>());
    });
}
// Y = X W^T: dL/dW = G^T X, dL/dX = G W
Grads bwd_batch_mm(const Call& c, const Grads& g, const Need& need) {
    Grads r(2);
    with_dtype(c, [&](auto tag) { xwt_grads<decltype(tag)>(g[0], c.in[1], c.in[0], need[1], need[0], r[1], r[0]); });
    return r;
}

// linear(x (n, i), W (o, i)[, b (o,) or (1, o)]) = x W^T + b, shape (n, o).
Shapes shape_linear(const Call& c) {
    const char* op = c.name();
    if (c.in.size() != 2 && c.in.size() != 3)
        throw std::invalid_argument(std::string(op) + ": expected inputs x, W and optionally b, got " +
                                    std::to_string(c.in.size()) + " inputs");
    const auto &x = c.in[0], &w = c.in[1];
    require_matrices(op, x, w);
    if (w.dim(1) != x.dim(1))
        throw std::invalid_argument(std::string(op) + ": input of shape " + shape_str(x.shape()) +
                                    " does not fit weight of shape " + shape_str(w.shape()) + " (" +
                                    std::to_string(x.dim(1)) + " != " + std::to_string(w.dim(1)) + ")");
    if (c.in.size() == 3) {
        const Shape& bs = c.in[2].shape();
        if (bs != Shape{w.dim(0)} && bs != Shape{1, w.dim(0)})
            throw std::invalid_argument(std::string(op) + ": bias must have shape (" + std::to_string(w.dim(0)) +
                                        ",) or (1, " + std::to_string(w.dim(0)) + "), got " + shape_str(bs));
    }
    return {Shape{x.dim(0), w.dim(0)}};
}

void fwd_linear(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const auto &x = c.in[0], &w = c.in[1];
        const int64_t n = x.dim(0), o = w.dim(0);
        const bool bias = c.in.size() == 3;
        if (bias) {  // b in every row, which the product adds to (as plain copies: Eigen's row-wise broadcast
                     // of an (8,) bias into (128, 8) took 3500 instructions)
            const T* b = c.in[2].data<T>();
            T* y = c.out[0].data<T>();
            for (int64_t r = 0; r < n; ++r) std::copy(b, b + o, y + r * o);
        }
        mm<T>(false, true, n, o, x.dim(1), x.data<T>(), w.data<T>(), c.out[0].data<T>(), bias);
    });
}
// Y = X W^T + b: dL/dX = G W, dL/dW = G^T X, dL/db = column sums of G
Grads bwd_linear(const Call& c, const Grads& g, const Need& need) {
    Grads r(c.in.size());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        xwt_grads<T>(g[0], c.in[0], c.in[1], need[0], need[1], r[0], r[1]);
        if (c.in.size() == 3 && need[2]) {
            const int64_t o = c.in[1].dim(0);
            r[2] = sum_to(g[0], Shape{1, o}).view(c.in[2].shape());  // column sums, accumulated in double
        }
    });
    return r;
}

}  // namespace tg
