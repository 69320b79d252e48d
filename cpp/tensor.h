// Tensor: dtype, shape and a contiguous row-major buffer shared between views.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "small_vector.h"

namespace tg {

enum class DType : uint8_t { f32, f64, i64, b8 };  // b8: bool, one byte (the PyTorch dialect's masks)

// A tensor's dimensions, up to 6 of them without a heap allocation: shapes are copied on every op,
// and most have few dimensions.
using Shape = SmallVector<int64_t, 6>;

// Bad dtypes map to Python's TypeError; shape problems use std::invalid_argument (ValueError)
// and bad indices or axes std::out_of_range (IndexError).
struct DTypeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const char* dtype_name(DType dt);
size_t dtype_size(DType dt);
bool is_float(DType dt);
DType promote(DType a, DType b);

// "(2, 3)", as Python prints a shape tuple.
std::string shape_str(const Shape& shape);
int64_t numel_of(const Shape& shape);
// Maps a possibly negative axis into [0, ndim); IndexError naming `op` otherwise.
int64_t normalize_axis(int64_t axis, int64_t ndim, const char* op);

// Memory plus the version counter that in-place writes through the library bump. The memory is
// our own aligned block (buffers.h: `base` and `capacity` go back to the cache or to malloc with the
// buffer), or a foreign object's (a numpy array) that `owner` keeps alive.
struct Buffer {
    void* data = nullptr;
    size_t bytes = 0;
    bool owns = false;
    void* base = nullptr;
    size_t capacity = 0;
    std::shared_ptr<void> owner;
    std::atomic<uint64_t> version{0};
    ~Buffer();
};

class Tensor {
public:
    Tensor() = default;  // undefined: no buffer (used for "no gradient")

    static Tensor empty(const Shape& shape, DType dtype);
    static Tensor zeros(const Shape& shape, DType dtype);
    static Tensor full(const Shape& shape, DType dtype, double value);
    // Wraps memory owned by someone else; `owner` keeps it alive.
    static Tensor wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner);

    bool defined() const { return buf_ != nullptr; }
    DType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
    int64_t dim(int64_t i) const { return shape_[static_cast<size_t>(i)]; }
    int64_t numel() const { return numel_; }
    size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

    template <class T> T* data() const { return static_cast<T*>(buf_->data); }
    void* raw() const { return buf_ ? buf_->data : nullptr; }
    const std::shared_ptr<Buffer>& buffer() const { return buf_; }

    uint64_t version() const { return buf_ ? buf_->version.load() : 0; }
    void bump_version() const { if (buf_) buf_->version.fetch_add(1); }

    // Same buffer, another shape of the same size (a view: writes show through both).
    Tensor view(const Shape& shape) const;
    Tensor clone() const;
    Tensor to(DType dtype) const;  // a copy converted to `dtype` (the tensor itself if it already is)
    void fill(double value) const;
    void add_(const Tensor& other) const;  // this += other, same shape and dtype
    double item() const;                    // the value of a one-element tensor (ValueError otherwise)

private:
    std::shared_ptr<Buffer> buf_;
    Shape shape_;
    int64_t numel_ = 0;
    DType dtype_ = DType::f64;
};

// Runs f(T{}) with T the C++ float type of `dt`; TypeError naming `op` for anything else.
template <class F>
decltype(auto) float_dispatch(DType dt, const char* op, F&& f) {
    switch (dt) {
        case DType::f32: return f(float{});
        case DType::f64: return f(double{});
        default: throw DTypeError(std::string(op) + ": unsupported dtype " + dtype_name(dt) +
                                  " (expected float32 or float64)");
    }
}

}  // namespace tg
