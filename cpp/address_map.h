// AddressMap: a map keyed by an object's address, for the few objects of a typical graph.
#pragma once

#include <cstddef>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tg {

// A map keyed by the address of a node or op node, for the few of a typical graph (tape.cpp's
// backward): a flat list searched in order, without an allocation per entry, and indexed by a hash
// table once it holds more than 16 (the three hash tables of the synth step's backward cost about
// 2k of its replay's 161k instructions). Inserting may move the values: a pointer to one is good
// until the next insert.
template <class V> class AddressMap {
  public:
    V* find(const void* key) {
        if (index_.empty()) {
            for (auto& item : items_)
                if (item.first == key) return &item.second;
            return nullptr;
        }
        auto it = index_.find(key);
        return it == index_.end() ? nullptr : &items_[it->second].second;
    }
    const V* find(const void* key) const { return const_cast<AddressMap*>(this)->find(key); }
    // The value of key, value-initialised if it was not there; second: whether it was added.
    std::pair<V*, bool> insert(const void* key) {
        if (V* v = find(key)) return {v, false};
        items_.emplace_back(key, V{});
        if (!index_.empty()) {
            index_.emplace(key, items_.size() - 1);
        } else if (items_.size() > kLinear) {
            for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
        }
        return {&items_.back().second, true};
    }
    V& operator[](const void* key) { return *insert(key).first; }
    void reserve(size_t n) { items_.reserve(n); }

  private:
    static constexpr size_t kLinear = 16;
    std::vector<std::pair<const void*, V>> items_;
    std::unordered_map<const void*, size_t> index_;
};

}  // namespace tg
