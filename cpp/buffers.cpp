#include "buffers.h"

#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace tg {

namespace {

// Every buffer starts at a multiple of 64 bytes, the widest SIMD register (AVX-512), whatever
// instruction set this file is compiled for. Eigen's vectorised loops peel scalar elements until
// the destination is aligned, and a scalar exp or log may round differently from a vector one, so
// without this a result would depend on where malloc put the output (which differs between a
// thread's arena and the main one) and on how parallel_for splits a buffer. Over-allocating from
// malloc and rounding up costs nothing measurable; posix_memalign costs about 60 ns a call.
constexpr size_t kAlign = 64;

// Cached blocks come in size classes of four steps per power of two (at most 25% unused), so that a
// block freed by one step fits the same tensor in the next, and shapes that differ a little share.
size_t size_class(size_t bytes) {
    size_t top = 1;
    while (top * 2 <= bytes) top *= 2;
    const size_t step = top / 4;
    return (bytes + step - 1) / step * step;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kDefaultLimit = 0;  // AddressSanitizer sees every free (a use after free is caught)
#else
constexpr size_t kDefaultLimit = size_t{512} << 20;
#endif

struct Cache {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<void*>> free;  // capacity -> bases of freed blocks
    size_t bytes = 0;
    size_t limit = kDefaultLimit;

    Cache() {
        // A fork while another thread holds the lock would leave the child's copy locked for good.
        pthread_atfork([] { cache().mu.lock(); }, [] { cache().mu.unlock(); }, [] { cache().mu.unlock(); });
    }
    static Cache& cache();

    // Frees blocks (largest classes first) until at most `keep` bytes are held; mu held.
    void shrink_to(size_t keep) {
        while (bytes > keep) {
            auto largest = free.begin();
            for (auto it = free.begin(); it != free.end(); ++it)
                if (it->first > largest->first) largest = it;
            for (void* base : largest->second) std::free(base);
            bytes -= largest->first * largest->second.size();
            free.erase(largest);
        }
    }
};

Cache& Cache::cache() {
    static Cache* c = new Cache();  // never destroyed: buffers may be freed during interpreter exit
    return *c;
}

// Made when the library loads, not by the first thread to allocate: a fork while another thread
// was making it left the child waiting for good on the half-made static (test_buffers.py, 1 run in
// 6 under AddressSanitizer).
[[maybe_unused]] const bool kCacheMade = (Cache::cache(), true);

// A block of `capacity` bytes at `base` (capacity + kAlign from malloc), its data aligned.
Block block_at(void* base, size_t capacity) {
    const auto at = reinterpret_cast<uintptr_t>(base);
    return Block{base, reinterpret_cast<void*>((at + kAlign - 1) & ~uintptr_t{kAlign - 1}), capacity};
}

Block from_malloc(size_t capacity) {
    void* base = std::malloc(capacity + kAlign);
    if (!base) {
        release_buffer_cache();  // the cache's blocks may be what the request needs
        base = std::malloc(capacity + kAlign);
        if (!base) throw std::bad_alloc();
    }
    return block_at(base, capacity);
}

}  // namespace

Block take_block(size_t bytes) {
    if (bytes < kCacheMin) return from_malloc(bytes);
    const size_t capacity = size_class(bytes);
    Cache& c = Cache::cache();
    {
        std::lock_guard<std::mutex> lock(c.mu);
        auto it = c.free.find(capacity);
        if (it != c.free.end() && !it->second.empty()) {
            void* base = it->second.back();
            it->second.pop_back();
            c.bytes -= capacity;
            return block_at(base, capacity);
        }
    }
    return from_malloc(capacity);
}

void give_block(const Block& b) {
    if (!b.base) return;
    if (b.capacity >= kCacheMin) {
        Cache& c = Cache::cache();
        std::lock_guard<std::mutex> lock(c.mu);
        if (c.bytes + b.capacity <= c.limit) {
            c.free[b.capacity].push_back(b.base);
            c.bytes += b.capacity;
            return;
        }
    }
    std::free(b.base);
}

size_t buffer_cache_limit() {
    Cache& c = Cache::cache();
    std::lock_guard<std::mutex> lock(c.mu);
    return c.limit;
}

void set_buffer_cache_limit(size_t bytes) {
    Cache& c = Cache::cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.limit = bytes;
    c.shrink_to(bytes);
}

size_t buffer_cache_bytes() {
    Cache& c = Cache::cache();
    std::lock_guard<std::mutex> lock(c.mu);
    return c.bytes;
}

void release_buffer_cache() {
    Cache& c = Cache::cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.shrink_to(0);
}

}  // namespace tg
