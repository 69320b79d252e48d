// Matrix products (Eigen GEMM on row-major maps of the tensors' buffers).
#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

static void require_matrices(const char* op, const Tensor& a, const Tensor& b) {
    if (a.ndim() != 2 || b.ndim() != 2)
        throw std::invalid_argument(std::string(op) + ": expected two matrices (2 dimensions), got shapes " +
                                    shape_str(a.shape()) + " and " + shape_str(b.shape()));
}

std::vector<Shape> shape_matmul(const char* op, const Call& c) {
    const auto &a = c.in[0], &b = c.in[1];
    require_matrices(op, a, b);
    if (a.dim(1) != b.dim(0))
        throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a.shape()) + " and " +
                                    shape_str(b.shape()) + " do not align (" + std::to_string(a.dim(1)) +
                                    " != " + std::to_string(b.dim(0)) + ")");
    return {Shape{a.dim(0), b.dim(1)}};
}

// batch_mm(matrix (o, i), vectors (n, i)) applies the matrix to each row vector: (n, o).
std::vector<Shape> shape_batch_mm(const char* op, const Call& c) {
    const auto &w = c.in[0], &x = c.in[1];
    require_matrices(op, w, x);
    if (w.dim(1) != x.dim(1))
        throw std::invalid_argument(std::string(op) + ": matrix of shape " + shape_str(w.shape()) +
                                    " cannot apply to vectors of shape " + shape_str(x.shape()) + " (" +
                                    std::to_string(w.dim(1)) + " != " + std::to_string(x.dim(1)) + ")");
    return {Shape{x.dim(0), w.dim(0)}};
}

void fwd_matmul(Call& c) {
    with_dtype(c, "matmul", [&](auto tag) {
        using T = decltype(tag);
        const auto &a = c.in[0], &b = c.in[1];
        mat<T>(c.out[0], a.dim(0), b.dim(1)).noalias() = cmat<T>(a, a.dim(0), a.dim(1)) * cmat<T>(b, b.dim(0), b.dim(1));
    });
}
// C = A B: dL/dA = G B^T, dL/dB = A^T G
Grads bwd_matmul(const Call& c, const Grads& g, const Need& need) {
    const auto &a = c.in[0], &b = c.in[1];
    Grads r(2);
    with_dtype(c, "matmul", [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = a.dim(0), k = a.dim(1), m = b.dim(1);
        auto gm = cmat<T>(g[0], n, m);
        if (need[0]) {
            r[0] = Tensor::empty(a.shape(), a.dtype());
            mat<T>(r[0], n, k).noalias() = gm * cmat<T>(b, k, m).transpose();
        }
        if (need[1]) {
            r[1] = Tensor::empty(b.shape(), b.dtype());
            mat<T>(r[1], k, m).noalias() = cmat<T>(a, n, k).transpose() * gm;
        }
    });
    return r;
}

void fwd_batch_mm(Call& c) {
    with_dtype(c, "batch_mm", [&](auto tag) {
        using T = decltype(tag);
        const auto &w = c.in[0], &x = c.in[1];
        mat<T>(c.out[0], x.dim(0), w.dim(0)).noalias() =
            cmat<T>(x, x.dim(0), x.dim(1)) * cmat<T>(w, w.dim(0), w.dim(1)).transpose();
    });
}
// Y = X W^T: dL/dW = G^T X, dL/dX = G W
Grads bwd_batch_mm(const Call& c, const Grads& g, const Need& need) {
    const auto &w = c.in[0], &x = c.in[1];
    Grads r(2);
    with_dtype(c, "batch_mm", [&](auto tag) {
        using T = decltype(tag);
        const int64_t n = x.dim(0), o = w.dim(0), i = w.dim(1);
        auto gm = cmat<T>(g[0], n, o);
        if (need[0]) {
            r[0] = Tensor::empty(w.shape(), w.dtype());
            mat<T>(r[0], o, i).noalias() = gm.transpose() * cmat<T>(x, n, i);
        }
        if (need[1]) {
            r[1] = Tensor::empty(x.shape(), x.dtype());
            mat<T>(r[1], n, i).noalias() = gm * cmat<T>(w, o, i);
        }
    });
    return r;
}

}  // namespace tg
