// numpy broadcasting: the broadcast of two shapes, the strides of an operand read as broadcast, and
// the reduction of a gradient back to an operand's shape. Outside the instruction-set copies of the
// kernels (CMakeLists.txt): every op's backward calls sum_to, and one copy, at -O3, serves them all.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/common.h"

namespace tg {

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
    const size_t nd = std::max(a.size(), b.size());
    Shape out(nd);
    for (size_t i = 0; i < nd; ++i) {
        const int64_t da = i < nd - a.size() ? 1 : a[i - (nd - a.size())];
        const int64_t db = i < nd - b.size() ? 1 : b[i - (nd - b.size())];
        if (da != db && da != 1 && db != 1)
            throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                        " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
    std::vector<int64_t> strides(out.size(), 0);
    int64_t step = 1;
    const size_t offset = out.size() - shape.size();
    for (size_t i = shape.size(); i-- > 0;) {
        strides[i + offset] = shape[i] == 1 ? 0 : step;
        step *= shape[i];
    }
    return strides;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
    if (g.shape() == shape) return g;
    Tensor r = Tensor::empty(shape, g.dtype());
    float_dispatch(g.dtype(), "sum_to", [&](auto tag) {
        using T = decltype(tag);
        const T* pg = g.data<T>();
        // Wide accumulators, rounded once; on the stack for the few of a bias's gradient.
        const int64_t total = r.numel();
        double stack[256];
        std::unique_ptr<double[]> heap(total > 256 ? new double[static_cast<size_t>(total)] : nullptr);
        double* acc = heap ? heap.get() : stack;
        std::fill(acc, acc + total, 0.0);
        const auto sr = broadcast_strides(shape, g.shape());
        // A bias's gradient: leading axes summed away, the others kept whole. The same sums in the
        // same order as the walk below, without its per-row steps (a (128, 8) to (1, 8) took 1 us).
        size_t kept = 0;
        while (kept < sr.size() && sr[kept] == 0) ++kept;
        bool leading = kept > 0 && kept < sr.size();
        for (size_t d = kept; d < sr.size() && leading; ++d) leading = sr[d] != 0;
        if (leading) {
            const int64_t rows = total ? g.numel() / total : 0;
            with_short_length(total, [&](auto cols) {  // a compile-time width for a few units' bias
                for (int64_t i = 0; i < rows; ++i) {
                    const T* gi = pg + i * cols;
                    for (int64_t j = 0; j < cols; ++j) acc[j] += gi[j];
                }
            });
            std::copy(acc, acc + total, r.data<T>());
            return;
        }
        walk(g.shape(), sr, sr, [&](int64_t o, int64_t ir, int64_t, int64_t n, int64_t s, int64_t) {
            if (s == 0) acc[ir] += pairwise_sum(n, [&](int64_t i) { return pg[o + i]; });
            else for (int64_t i = 0; i < n; ++i) acc[ir + i * s] += pg[o + i];
        });
        std::copy(acc, acc + total, r.data<T>());
    });
    return r;
}

}  // namespace tg
