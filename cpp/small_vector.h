// SmallVector: a vector that keeps up to N elements in itself and only allocates past that. Every op
// makes several short lists (its input and output tensors, the shapes its rule gives, its input
// nodes, the versions it saves); as std::vectors they were most of a small op's allocations. A
// tensor's Shape is one too (tensor.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <new>
#include <type_traits>
#include <utility>

namespace tg {

template <class T, size_t N>
class SmallVector {
    static_assert(N > 0, "SmallVector keeps at least one element inline");

public:
    using value_type = T;
    using iterator = T*;
    using const_iterator = const T*;

    SmallVector() {
        if constexpr (kFlatCopy) std::memset(inline_, 0, sizeof inline_);  // so that whole copies read set bytes
    }
    explicit SmallVector(size_t n) : SmallVector() { resize(n); }
    SmallVector(size_t n, const T& value) : SmallVector() { resize(n, value); }
    SmallVector(std::initializer_list<T> items) : SmallVector() { append(items.begin(), items.end()); }
    template <class It, class = decltype(*std::declval<It&>()), class = decltype(++std::declval<It&>())>
    SmallVector(It first, It last) : SmallVector() {
        append(first, last);
    }
    SmallVector(const SmallVector& other) : SmallVector() { *this = other; }
    SmallVector(SmallVector&& other) noexcept : SmallVector() { take(other); }
    SmallVector& operator=(const SmallVector& other) {
        if (this == &other) return *this;
        if constexpr (kFlatCopy) {
            if (other.size_ <= N) {  // N elements' bytes at once (a Shape's 48): no loop, no call to memcpy
                std::memcpy(static_cast<void*>(data_), other.data_, sizeof inline_);
                size_ = other.size_;
                return *this;
            }
        }
        clear();
        append(other.begin(), other.end());
        return *this;
    }
    SmallVector& operator=(SmallVector&& other) noexcept {
        if (this != &other) {
            clear();
            release_heap();
            take(other);
        }
        return *this;
    }
    SmallVector& operator=(std::initializer_list<T> items) {
        clear();
        append(items.begin(), items.end());
        return *this;
    }
    ~SmallVector() {
        if constexpr (!std::is_trivially_destructible_v<T>) clear();
        if (on_heap()) ::operator delete(data_, std::align_val_t(alignof(T)));
    }

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    size_t capacity() const { return capacity_; }
    T* data() { return data_; }
    const T* data() const { return data_; }
    T* begin() { return data_; }
    T* end() { return data_ + size_; }
    const T* begin() const { return data_; }
    const T* end() const { return data_ + size_; }
    T& operator[](size_t i) { return data_[i]; }
    const T& operator[](size_t i) const { return data_[i]; }
    T& front() { return data_[0]; }
    const T& front() const { return data_[0]; }
    T& back() { return data_[size_ - 1]; }
    const T& back() const { return data_[size_ - 1]; }

    void reserve(size_t n) {
        if (n > capacity_) grow(n);
    }
    void push_back(const T& value) { emplace_back(value); }
    void push_back(T&& value) { emplace_back(std::move(value)); }
    template <class... Args> T& emplace_back(Args&&... args) {
        if (size_ == capacity_) {
            // The argument may live in this vector: build the element before moving the others.
            T item(std::forward<Args>(args)...);
            grow(2 * capacity_);
            new (data_ + size_) T(std::move(item));
        } else {
            new (data_ + size_) T(std::forward<Args>(args)...);
        }
        return data_[size_++];
    }
    void pop_back() { data_[--size_].~T(); }
    void clear() {
        if constexpr (std::is_trivially_destructible_v<T>) size_ = 0;
        else while (size_ > 0) pop_back();
    }
    void resize(size_t n) {
        reserve(n);
        while (size_ > n) pop_back();
        for (; size_ < n; ++size_) new (data_ + size_) T();
    }
    void resize(size_t n, const T& value) {
        reserve(n);
        while (size_ > n) pop_back();
        for (; size_ < n; ++size_) new (data_ + size_) T(value);
    }
    template <class It> void assign(It first, It last) {
        clear();
        append(first, last);
    }
    // Inserts items before pos (pos in [begin, end]); returns where the first of them now is.
    T* insert(T* pos, std::initializer_list<T> items) {
        const size_t at = static_cast<size_t>(pos - begin()), old = size_;
        append(items.begin(), items.end());
        std::rotate(begin() + at, begin() + old, end());
        return begin() + at;
    }
    T* insert(T* pos, const T& item) { return insert(pos, {item}); }
    T* erase(T* pos) {
        std::move(pos + 1, end(), pos);
        pop_back();
        return pos;
    }
    bool operator==(const SmallVector& o) const { return size_ == o.size_ && std::equal(begin(), end(), o.begin()); }
    bool operator!=(const SmallVector& o) const { return !(*this == o); }

private:
    // Elements copied as bytes, all N slots at once when they fit (a copy then compiles to a few
    // vector moves): the inline slots start zeroed, and a heap block holds more than N.
    static constexpr bool kFlatCopy = std::is_trivially_copyable_v<T> && N * sizeof(T) <= 64;

    T* inline_data() { return reinterpret_cast<T*>(inline_); }
    bool on_heap() const { return data_ != reinterpret_cast<const T*>(inline_); }

    template <class It> void append(It first, It last) {
        using Category = typename std::iterator_traits<It>::iterator_category;
        if constexpr (std::is_base_of_v<std::random_access_iterator_tag, Category>) {
            reserve(size_ + static_cast<size_t>(last - first));  // one check, not one per element
            for (; first != last; ++first) new (data_ + size_++) T(*first);
        } else {
            for (; first != last; ++first) emplace_back(*first);
        }
    }
    void grow(size_t n) {
        T* bigger = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(alignof(T))));
        for (size_t i = 0; i < size_; ++i) {
            new (bigger + i) T(std::move(data_[i]));
            data_[i].~T();
        }
        release_heap();
        data_ = bigger;
        capacity_ = static_cast<uint32_t>(n);
    }
    void release_heap() {
        if (on_heap()) ::operator delete(data_, std::align_val_t(alignof(T)));
        data_ = inline_data();
        capacity_ = N;
    }
    // Takes the other's elements, leaving it empty; this one is empty and inline on entry.
    void take(SmallVector& other) noexcept {
        static_assert(std::is_nothrow_move_constructible_v<T>, "SmallVector's moves move its elements");
        if (other.on_heap()) {
            data_ = other.data_;
            capacity_ = other.capacity_;
            size_ = other.size_;
            other.data_ = other.inline_data();
            other.capacity_ = N;
            other.size_ = 0;
            return;
        }
        for (size_t i = 0; i < other.size_; ++i) new (data_ + i) T(std::move(other.data_[i]));
        size_ = other.size_;
        other.clear();
    }

    T* data_ = inline_data();
    uint32_t size_ = 0;  // (32 bits: the header stays 16 bytes; see the sizes in tape.h)
    uint32_t capacity_ = N;
    alignas(T) unsigned char inline_[N * sizeof(T)];
};

}  // namespace tg
