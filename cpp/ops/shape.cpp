// Shape ops: views (reshape, squeeze, unsqueeze), broadcasting copies (expand, broadcast_to),
// transpose, concatenate, and indexing (select, strided slices, gathers by flat index).
#include <cstring>

#include "ops/common.h"
#include "ops/kernels.h"

namespace tg {

namespace {

std::string op_name(const Call& c) { return c.name(); }

// Elements of t read with per-axis `strides` (in elements, any sign) from `offset`, into a new
// contiguous tensor of `shape`.
template <class T>
void strided_copy(const Tensor& t, int64_t offset, const Shape& shape, const std::vector<int64_t>& strides, Tensor& out) {
    const T* src = t.data<T>() + offset;
    T* dst = out.data<T>();
    walk(shape, strides, strides, [&](int64_t o, int64_t i, int64_t, int64_t n, int64_t s, int64_t) {
        for (int64_t j = 0; j < n; ++j) dst[o + j] = src[i + j * s];
    });
}

// The reverse: adds g (contiguous, of `shape`) into r at those positions.
template <class T>
void strided_add(const Tensor& g, int64_t offset, const Shape& shape, const std::vector<int64_t>& strides, Tensor& r) {
    const T* src = g.data<T>();
    T* dst = r.data<T>() + offset;
    walk(shape, strides, strides, [&](int64_t o, int64_t i, int64_t, int64_t n, int64_t s, int64_t) {
        for (int64_t j = 0; j < n; ++j) dst[i + j * s] += src[o + j];
    });
}

std::vector<int64_t> contiguous_strides(const Shape& shape) {
    std::vector<int64_t> s(shape.size());
    int64_t step = 1;
    for (size_t i = shape.size(); i-- > 0;) {
        s[i] = step;
        step *= shape[i];
    }
    return s;
}

std::vector<int64_t> permutation(const Call& c) {
    const int64_t nd = c.in[0].ndim();
    const auto& axes = c.integers("axes");
    if (static_cast<int64_t>(axes.size()) != nd)
        throw std::invalid_argument(op_name(c) + ": axes must list each of the " + std::to_string(nd) +
                                    " axes of shape " + shape_str(c.in[0].shape()) + " once");
    std::vector<int64_t> perm;
    std::vector<bool> seen(static_cast<size_t>(nd), false);
    for (int64_t a : axes) {
        const int64_t axis = normalize_axis(a, nd, c.name());
        if (seen[static_cast<size_t>(axis)]) throw std::invalid_argument(op_name(c) + ": repeated axis in transpose");
        seen[static_cast<size_t>(axis)] = true;
        perm.push_back(axis);
    }
    return perm;
}

// out (preallocated) = t with its axes permuted: out axis i is t's axis perm[i].
void permute_into(const Tensor& t, const std::vector<int64_t>& perm, Tensor& out) {
    const auto st = contiguous_strides(t.shape());
    std::vector<int64_t> strides;
    for (int64_t p : perm) strides.push_back(st[static_cast<size_t>(p)]);
    float_dispatch(t.dtype(), "transpose", [&](auto tag) { strided_copy<decltype(tag)>(t, 0, out.shape(), strides, out); });
}

// The view of getitem: elements from `offset` with per-axis `strides` (in elements, any sign).
struct Strided {
    int64_t offset;
    Shape shape;
    std::vector<int64_t> strides;
};

Strided strided_of(const Call& c) {
    const auto& shape = c.integers("shape");
    return {c.integer("offset"), Shape(shape.begin(), shape.end()), c.integers("strides")};
}

int64_t flat_index(const Call& c, int64_t i) {
    const int64_t j = c.attrs.index.data<int64_t>()[i];
    return j < 0 ? j + c.in[0].numel() : j;
}

}  // namespace

// ---- views ----

// The new shape may have one entry -1 (inferred).
Shapes shape_reshape(const Call& c) {
    const auto& shape = c.integers("shape");
    Shape out(shape.begin(), shape.end());
    int64_t unknown = -1;
    for (size_t i = 0; i < out.size(); ++i) {
        if (out[i] == -1 && unknown < 0) unknown = static_cast<int64_t>(i);
        else if (out[i] < 0) throw std::invalid_argument(op_name(c) + ": invalid shape " + shape_str(out));
    }
    Shape known_dims = out;  // the given sizes, counted without overflow (ValueError if too many)
    if (unknown >= 0) known_dims[static_cast<size_t>(unknown)] = 1;
    const int64_t known = numel_of(known_dims);
    const int64_t n = c.in[0].numel();
    const bool fits = unknown >= 0 ? (known > 0 && n % known == 0) : known == n;
    if (!fits)
        throw std::invalid_argument(op_name(c) + ": cannot reshape a tensor of shape " + shape_str(c.in[0].shape()) +
                                    " into shape " + shape_str(out));
    if (unknown >= 0) out[static_cast<size_t>(unknown)] = n / known;
    return {out};
}

Shapes shape_squeeze(const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.integer("dim"), x.ndim(), c.name());
    if (x.dim(dim) != 1)
        throw std::invalid_argument(op_name(c) + ": cannot squeeze axis " + std::to_string(dim) + " of shape " +
                                    shape_str(x.shape()) + ": its size is " + std::to_string(x.dim(dim)) + ", not 1");
    Shape out = x.shape();
    out.erase(out.begin() + dim);
    return {out};
}

Shapes shape_unsqueeze(const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.integer("dim"), x.ndim() + 1, c.name());
    Shape out = x.shape();
    out.insert(out.begin() + dim, 1);
    return {out};
}

// ---- broadcasting copies ----

// vugrad's Expand of one size-1 axis
Shapes shape_expand(const Call& c) {
    const auto& x = c.in[0];
    const int64_t dim = normalize_axis(c.integer("dim"), x.ndim(), c.name());
    const int64_t repeats = c.integer("repeats");
    if (x.dim(dim) != 1)
        throw std::invalid_argument(op_name(c) + ": can only expand an axis of size 1, but axis " + std::to_string(dim) +
                                    " of shape " + shape_str(x.shape()) + " has size " + std::to_string(x.dim(dim)));
    if (repeats < 0) throw std::invalid_argument(op_name(c) + ": repeats must be >= 0, got " + std::to_string(repeats));
    Shape out = x.shape();
    out[static_cast<size_t>(dim)] = repeats;
    return {out};
}

// numpy's broadcast_to
Shapes shape_broadcast_to(const Call& c) {
    const auto& shape = c.integers("shape");
    const Shape target(shape.begin(), shape.end());
    numel_of(target);
    const Shape& s = c.in[0].shape();
    bool ok = s.size() <= target.size();
    for (size_t i = 0; ok && i < s.size(); ++i) {
        const int64_t d = s[s.size() - 1 - i];
        ok = d == 1 || d == target[target.size() - 1 - i];
    }
    if (!ok)
        throw std::invalid_argument(op_name(c) + ": cannot broadcast shape " + shape_str(s) + " to " + shape_str(target));
    return {target};
}

void fwd_broadcast(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        broadcast_apply<T>(c.in[0], c.in[0], c.out[0], [](T a, T) { return a; });
    });
}
// dL/dx = g summed over the broadcast axes
Grads bwd_broadcast(const Call& c, const Grads& g, const Need&) { return {sum_to(g[0], c.in[0].shape())}; }

// ---- transpose ----

Shapes shape_transpose(const Call& c) {
    Shape out;
    for (int64_t p : permutation(c)) out.push_back(c.in[0].dim(p));
    return {out};
}

void fwd_transpose(Call& c) { permute_into(c.in[0], permutation(c), c.out[0]); }
// dL/dx = g transposed by the inverse permutation
Grads bwd_transpose(const Call& c, const Grads& g, const Need&) {
    const auto perm = permutation(c);
    std::vector<int64_t> inverse(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) inverse[static_cast<size_t>(perm[i])] = static_cast<int64_t>(i);
    Tensor r = Tensor::empty(c.in[0].shape(), g[0].dtype());
    permute_into(g[0], inverse, r);
    return {r};
}

// ---- concatenate ----

// All inputs agree on every other axis
Shapes shape_concatenate(const Call& c) {
    const Tensor& first = c.in[0];
    if (first.ndim() == 0) throw std::invalid_argument(op_name(c) + ": zero-dimensional tensors cannot be concatenated");
    const int64_t axis = normalize_axis(c.integer("axis"), first.ndim(), c.name());
    Shape out = first.shape();
    out[static_cast<size_t>(axis)] = 0;
    for (const Tensor& t : c.in) {
        Shape s = t.shape();
        if (t.ndim() == first.ndim()) s[static_cast<size_t>(axis)] = 0;
        if (s != out)
            throw std::invalid_argument(op_name(c) + ": shapes " + shape_str(first.shape()) + " and " +
                                        shape_str(t.shape()) + " differ outside axis " + std::to_string(axis));
    }
    for (const Tensor& t : c.in) out[static_cast<size_t>(axis)] += t.dim(axis);
    return {out};
}

namespace {
// Per-input block sizes along the concatenation axis (elements per outer index), and outer count.
void concat_blocks(const Call& c, std::vector<int64_t>& blocks, int64_t& outer) {
    const int64_t axis = normalize_axis(c.integer("axis"), c.in[0].ndim(), c.name());
    outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= c.in[0].dim(i);
    for (const Tensor& t : c.in) blocks.push_back(outer ? t.numel() / outer : 0);
}
}  // namespace

void fwd_concatenate(Call& c) {
    std::vector<int64_t> blocks;
    int64_t outer;
    concat_blocks(c, blocks, outer);
    const size_t item = dtype_size(c.out[0].dtype());
    char* dst = static_cast<char*>(c.out[0].raw());
    for (int64_t o = 0; o < outer; ++o)
        for (size_t j = 0; j < c.in.size(); ++j) {
            const size_t bytes = static_cast<size_t>(blocks[j]) * item;
            std::memcpy(dst, static_cast<const char*>(c.in[j].raw()) + static_cast<size_t>(o) * bytes, bytes);
            dst += bytes;
        }
}
// dL/dx_j = the block of g that x_j filled
Grads bwd_concatenate(const Call& c, const Grads& g, const Need& need) {
    std::vector<int64_t> blocks;
    int64_t outer;
    concat_blocks(c, blocks, outer);
    Grads r;
    for (const Tensor& t : c.in) r.push_back(Tensor::empty(t.shape(), t.dtype()));
    const size_t item = dtype_size(g[0].dtype());
    const char* src = static_cast<const char*>(g[0].raw());
    for (int64_t o = 0; o < outer; ++o)
        for (size_t j = 0; j < c.in.size(); ++j) {
            const size_t bytes = static_cast<size_t>(blocks[j]) * item;
            std::memcpy(static_cast<char*>(r[j].raw()) + static_cast<size_t>(o) * bytes, src, bytes);
            src += bytes;
        }
    for (size_t j = 0; j < r.size(); ++j)
        if (!need[j]) r[j] = Tensor();
    return r;
}

// ---- indexing ----

// The indices: an int64 vector with one column index per row of the matrix input (vugrad's Select).
Shapes shape_select(const Call& c) {
    const auto& x = c.in[0];
    const auto& idx = c.attrs.index;
    if (x.ndim() != 2)
        throw std::invalid_argument(op_name(c) + ": expected a matrix (2 dimensions), got shape " + shape_str(x.shape()));
    if (!idx.defined() || idx.dtype() != DType::i64) throw std::out_of_range(op_name(c) + ": indices must be integers");
    if (idx.ndim() != 1 || idx.dim(0) != x.dim(0))
        throw std::invalid_argument(op_name(c) + ": expected one index per row, " + std::to_string(x.dim(0)) +
                                    " in all, got indices of shape " + shape_str(idx.shape()) + " for input of shape " +
                                    shape_str(x.shape()));
    const int64_t m = x.dim(1);
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
        if (p[i] < -m || p[i] >= m)
            throw std::out_of_range(op_name(c) + ": index " + std::to_string(p[i]) + " in row " + std::to_string(i) +
                                    " is out of range for " + std::to_string(m) + " columns (input shape " +
                                    shape_str(x.shape()) + ")");
    return {Shape{x.dim(0)}};
}

static int64_t column(const Call& c, int64_t i) {
    const int64_t j = c.attrs.index.data<int64_t>()[i];
    return j < 0 ? j + c.in[0].dim(1) : j;
}

void fwd_select(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const auto& x = c.in[0];
        for (int64_t i = 0; i < x.dim(0); ++i) c.out[0].data<T>()[i] = x.data<T>()[i * x.dim(1) + column(c, i)];
    });
}
// dL/dx[i, j] = g[i] at the selected column j of row i, 0 elsewhere
Grads bwd_select(const Call& c, const Grads& g, const Need&) {
    const auto& x = c.in[0];
    Tensor r = Tensor::zeros(x.shape(), x.dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        for (int64_t i = 0; i < x.dim(0); ++i) r.data<T>()[i * x.dim(1) + column(c, i)] = g[0].data<T>()[i];
    });
    return {r};
}

// A basic-indexing view (ints, slices, None, Ellipsis) described by offset, shape and strides;
// every element it reaches must lie inside the input.
Shapes shape_getitem(const Call& c) {
    const Strided s = strided_of(c);
    if (s.strides.size() != s.shape.size())
        throw std::invalid_argument(op_name(c) + ": a view of shape " + shape_str(s.shape) + " needs " +
                                    std::to_string(s.shape.size()) + " strides, got " + std::to_string(s.strides.size()));
    if (numel_of(s.shape) > 0) {
        // The lowest and highest element reached, computed without overflow (a huge stride is an error).
        int64_t lo = s.offset, hi = s.offset;
        bool overflow = false;
        for (size_t i = 0; i < s.shape.size(); ++i) {
            int64_t reach;
            overflow |= __builtin_mul_overflow(s.strides[i], s.shape[i] - 1, &reach);
            overflow |= __builtin_add_overflow(reach < 0 ? lo : hi, reach, reach < 0 ? &lo : &hi);
        }
        if (overflow || lo < 0 || hi >= c.in[0].numel())
            throw std::out_of_range(op_name(c) + ": a view of shape " + shape_str(s.shape) + " with offset " +
                                    std::to_string(s.offset) + " and strides " + shape_str(Shape(s.strides.begin(), s.strides.end())) +
                                    " reaches outside a tensor of shape " + shape_str(c.in[0].shape()));
    }
    return {s.shape};
}

void fwd_getitem(Call& c) {
    const Strided s = strided_of(c);
    with_dtype(c, [&](auto tag) { strided_copy<decltype(tag)>(c.in[0], s.offset, s.shape, s.strides, c.out[0]); });
}
// dL/dx = g added back at the viewed positions, 0 elsewhere
Grads bwd_getitem(const Call& c, const Grads& g, const Need&) {
    const Strided s = strided_of(c);
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) { strided_add<decltype(tag)>(g[0], s.offset, s.shape, s.strides, r); });
    return {r};
}

// The indices: flat positions into the input (any shape, negative counts from the end); the
// output has the index's shape. Advanced indexing (integer arrays, boolean masks) lowers to this.
Shapes shape_gather(const Call& c) {
    const Tensor& idx = c.attrs.index;
    if (!idx.defined() || idx.dtype() != DType::i64) throw std::out_of_range(op_name(c) + ": indices must be integers");
    const int64_t n = c.in[0].numel();
    const int64_t* p = idx.data<int64_t>();
    for (int64_t i = 0; i < idx.numel(); ++i)
        if (p[i] < -n || p[i] >= n)
            throw std::out_of_range(op_name(c) + ": flat index " + std::to_string(p[i]) + " is out of range for a tensor of " +
                                    std::to_string(n) + " elements (shape " + shape_str(c.in[0].shape()) + ")");
    return {idx.shape()};
}

void fwd_gather(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* x = c.in[0].data<T>();
        T* o = c.out[0].data<T>();
        for (int64_t i = 0; i < c.out[0].numel(); ++i) o[i] = x[flat_index(c, i)];
    });
}
// dL/dx = g scattered back to the gathered positions; repeated positions add up
Grads bwd_gather(const Call& c, const Grads& g, const Need&) {
    Tensor r = Tensor::zeros(c.in[0].shape(), c.in[0].dtype());
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g[0].data<T>();
        T* pr = r.data<T>();
        for (int64_t i = 0; i < g[0].numel(); ++i) pr[flat_index(c, i)] += pg[i];
    });
    return {r};
}

// a with the values v written at flat positions `indices` (v has the indices' shape; where a
// position repeats, the last write wins, as in numpy). What t[key] = v records on a graph.
Shapes shape_setitem(const Call& c) {
    shape_gather(c);  // the indices are integers inside a
    if (c.in[1].shape() != c.attrs.index.shape())
        throw std::invalid_argument(op_name(c) + ": the values have shape " + shape_str(c.in[1].shape()) +
                                    ", the indexed positions " + shape_str(c.attrs.index.shape()));
    return {c.in[0].shape()};
}

void fwd_setitem(Call& c) {
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        T* o = c.out[0].data<T>();
        std::copy(c.in[0].data<T>(), c.in[0].data<T>() + c.in[0].numel(), o);
        const T* v = c.in[1].data<T>();
        for (int64_t i = 0; i < c.in[1].numel(); ++i) o[flat_index(c, i)] = v[i];
    });
}
// dL/da = g, 0 at the written positions; dL/dv = g at each position, for the write that stayed
Grads bwd_setitem(const Call& c, const Grads& g, const Need&) {
    Tensor ga = g[0].clone(), gv = Tensor::zeros(c.in[1].shape(), c.in[1].dtype());
    std::vector<bool> taken(static_cast<size_t>(c.in[0].numel()), false);
    with_dtype(c, [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g[0].data<T>();
        T *pa = ga.data<T>(), *pv = gv.data<T>();
        for (int64_t i = c.in[1].numel(); i-- > 0;) {  // backwards: the last write of a position is found first
            const int64_t j = flat_index(c, i);
            if (taken[static_cast<size_t>(j)]) continue;
            taken[static_cast<size_t>(j)] = true;
            pv[i] = pg[j];
            pa[j] = T(0);
        }
    });
    return {ga, gv};
}

}  // namespace tg
