#include "tensor.h"

#include "buffers.h"

#include <Eigen/Core>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace tg {

const char* dtype_name(DType dt) {
    switch (dt) {
        case DType::f32: return "float32";
        case DType::f64: return "float64";
        case DType::i64: return "int64";
        case DType::b8: return "bool";
    }
    return "?";
}

size_t dtype_size(DType dt) { return dt == DType::f32 ? 4 : dt == DType::b8 ? 1 : 8; }

bool is_float(DType dt) { return dt == DType::f32 || dt == DType::f64; }

DType promote(DType a, DType b) {
    if (!is_float(a) || !is_float(b))
        throw DTypeError(std::string("cannot combine ") + dtype_name(a) + " and " + dtype_name(b));
    return (a == DType::f64 || b == DType::f64) ? DType::f64 : DType::f32;
}

std::string shape_str(const Shape& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) s += ",";
    return s + ")";
}

int64_t numel_of(const Shape& shape) {
    // The element count must fit in int64 with room for the byte size: anything larger is an error,
    // never a wrapped-around count that would size a buffer too small.
    constexpr int64_t limit = std::numeric_limits<int64_t>::max() / 16;
    int64_t n = 1;
    bool zero = false;
    for (int64_t d : shape) {
        if (d < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(shape));
        if (d == 0) zero = true;
    }
    if (zero) return 0;
    for (int64_t d : shape) {
        if (n > limit / d) throw std::invalid_argument("shape " + shape_str(shape) + " has too many elements");
        n *= d;
    }
    return n;
}

int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op) {
    if (axis < -ndim || axis >= ndim)
        throw std::out_of_range(std::string(op) + ": axis " + std::to_string(axis) +
                                " is out of range for a tensor of " + std::to_string(ndim) +
                                " dimension" + (ndim == 1 ? "" : "s"));
    return axis < 0 ? axis + ndim : axis;
}

Buffer::~Buffer() {
    if (owns) give_block(Block{base, data, capacity});
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
    Tensor t;
    t.shape_ = shape;
    t.numel_ = numel_of(shape);
    t.dtype_ = dtype;
    t.buf_ = std::make_shared<Buffer>();
    Buffer& b = *t.buf_;
    b.bytes = t.nbytes();
    const Block block = take_block(b.bytes);
    b.base = block.base;
    b.data = block.data;
    b.capacity = block.capacity;
    b.owns = true;
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
    Tensor t = empty(shape, dtype);
    std::memset(t.raw(), 0, t.nbytes());
    return t;
}

Tensor Tensor::full(const Shape& shape, DType dtype, double value) {
    Tensor t = empty(shape, dtype);
    t.fill(value);
    return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
    Tensor t;
    t.shape_ = shape;
    t.numel_ = numel_of(shape);
    t.dtype_ = dtype;
    t.buf_ = std::make_shared<Buffer>();
    t.buf_->data = data;
    t.buf_->bytes = t.nbytes();
    t.buf_->owner = std::move(owner);
    return t;
}

Tensor Tensor::view(const Shape& shape) const {
    if (numel_of(shape) != numel_)
        throw std::invalid_argument("cannot view a tensor of shape " + shape_str(shape_) + " as " +
                                    shape_str(shape));
    Tensor t = *this;
    t.shape_ = shape;
    return t;
}

Tensor Tensor::clone() const {
    Tensor t = empty(shape_, dtype_);
    std::memcpy(t.raw(), raw(), nbytes());
    return t;
}

Tensor Tensor::to(DType dtype) const {
    if (dtype == dtype_) return *this;
    Tensor t = empty(shape_, dtype);
    auto convert = [&](auto* src) {
        if (dtype == DType::f32) {
            float* d = t.data<float>();
            for (int64_t i = 0; i < numel_; ++i) d[i] = static_cast<float>(src[i]);
        } else if (dtype == DType::f64) {
            double* d = t.data<double>();
            for (int64_t i = 0; i < numel_; ++i) d[i] = static_cast<double>(src[i]);
        } else if (dtype == DType::i64) {
            int64_t* d = t.data<int64_t>();
            for (int64_t i = 0; i < numel_; ++i) d[i] = static_cast<int64_t>(src[i]);
        } else {
            bool* d = t.data<bool>();
            for (int64_t i = 0; i < numel_; ++i) d[i] = src[i] != 0;
        }
    };
    switch (dtype_) {
        case DType::f32: convert(data<float>()); break;
        case DType::f64: convert(data<double>()); break;
        case DType::i64: convert(data<int64_t>()); break;
        case DType::b8: convert(data<bool>()); break;
    }
    return t;
}

void Tensor::fill(double value) const {
    float_dispatch(dtype_, "fill", [&](auto tag) {
        using T = decltype(tag);
        T* p = data<T>();
        std::fill(p, p + numel_, static_cast<T>(value));
    });
}

void Tensor::add_(const Tensor& other) const {
    float_dispatch(dtype_, "add_", [&](auto tag) {
        using T = decltype(tag);
        using Vec = Eigen::Array<T, Eigen::Dynamic, 1>;
        Eigen::Map<Vec>(data<T>(), numel_) += Eigen::Map<const Vec>(other.data<T>(), numel_);
    });
}

double Tensor::item() const {
    if (numel_ != 1)
        throw std::invalid_argument("item(): a tensor of shape " + shape_str(shape_) + " has " +
                                    std::to_string(numel_) + " elements, not one");
    switch (dtype_) {
        case DType::f32: return *data<float>();
        case DType::f64: return *data<double>();
        case DType::i64: return static_cast<double>(*data<int64_t>());
        case DType::b8: return *data<bool>() ? 1.0 : 0.0;
    }
    return 0;
}

}  // namespace tg
