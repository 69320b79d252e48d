// Shape ops: expand a singleton axis, select one element per row, squeeze and unsqueeze (views).
#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

// attrs.ints = {dim, repeats}
std::vector<Shape> shape_expand(const char* op, const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.attrs.ints.at(0), x.ndim(), op);
    const int64_t repeats = c.attrs.ints.at(1);
    if (x.dim(dim) != 1)
        throw std::invalid_argument(std::string(op) + ": can only expand an axis of size 1, but axis " +
                                    std::to_string(dim) + " of shape " + shape_str(x.shape()) + " has size " +
                                    std::to_string(x.dim(dim)));
    if (repeats < 0)
        throw std::invalid_argument(std::string(op) + ": repeats must be >= 0, got " + std::to_string(repeats));
    Shape out = x.shape();
    out[static_cast<size_t>(dim)] = repeats;
    return {out};
}

void fwd_expand(Call& c) {
    with_dtype(c, "expand", [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[0], c.out[0], [](T a, T) { return a; });
    });
}
// dL/dx = g summed over the expanded axis
Grads bwd_expand(const Call& c, const Grads& g, const Need&) { return {sum_to(g[0], c.in[0].shape())}; }

// attrs.index: int64 vector with one column index per row of the matrix input.
std::vector<Shape> shape_select(const char* op, const Call& c) {
    const auto& x = c.in[0];
    const auto& idx = c.attrs.index;
    const std::string name(op);
    if (x.ndim() != 2)
        throw std::invalid_argument(name + ": expected a matrix (2 dimensions), got shape " + shape_str(x.shape()));
    if (!idx.defined() || idx.dtype() != DType::i64)
        throw DTypeError(name + ": indices must be integers");
    if (idx.ndim() != 1 || idx.dim(0) != x.dim(0))
        throw std::invalid_argument(name + ": expected one index per row, " + std::to_string(x.dim(0)) +
                                    " in all, got indices of shape " + shape_str(idx.shape()) +
                                    " for input of shape " + shape_str(x.shape()));
    const int64_t m = x.dim(1);
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
        if (p[i] < -m || p[i] >= m)
            throw std::out_of_range(name + ": index " + std::to_string(p[i]) + " in row " + std::to_string(i) +
                                    " is out of range for " + std::to_string(m) + " columns (input shape " +
                                    shape_str(x.shape()) + ")");
    return {Shape{x.dim(0)}};
}

static int64_t column(const Call& c, int64_t i) {
    const int64_t j = c.attrs.index.data<int64_t>()[i];
    return j < 0 ? j + c.in[0].dim(1) : j;
}

void fwd_select(Call& c) {
    with_dtype(c, "select", [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        for (int64_t i = 0; i < x.dim(0); ++i) c.out[0].data<T>()[i] = x.data<T>()[i * x.dim(1) + column(c, i)];
    });
}
// dL/dx[i, j] = g[i] at the selected column j of row i, 0 elsewhere
Grads bwd_select(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::zeros(x.shape(), x.dtype());
    with_dtype(c, "select", [&](auto tag) {
        using T = decltype(tag);
        for (int64_t i = 0; i < x.dim(0); ++i) r.data<T>()[i * x.dim(1) + column(c, i)] = g[0].data<T>()[i];
    });
    return {r};
}

// attrs.ints = {dim}
std::vector<Shape> shape_squeeze(const char* op, const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.attrs.ints.at(0), x.ndim(), op);
    if (x.dim(dim) != 1)
        throw std::invalid_argument(std::string(op) + ": cannot squeeze axis " + std::to_string(dim) +
                                    " of shape " + shape_str(x.shape()) + ": its size is " +
                                    std::to_string(x.dim(dim)) + ", not 1");
    Shape out = x.shape();
    out.erase(out.begin() + dim);
    return {out};
}

std::vector<Shape> shape_unsqueeze(const char* op, const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.attrs.ints.at(0), x.ndim() + 1, op);
    Shape out = x.shape();
    out.insert(out.begin() + dim, 1);
    return {out};
}

}  // namespace tg
