// Memory for tensors: 64-byte aligned blocks from malloc, and a cache of freed ones.
//
// A training step frees and allocates the same buffers every time (activations, gradients, their
// products). glibc's malloc serves blocks above its mmap threshold (128 KiB at first) with fresh
// pages from the kernel, and every page then faults on first touch: a (128, 3136) float32 x * x
// forward and backward took 5.0-5.8 ms instead of 0.8 (163,000 page faults in a short run). Blocks
// of 1-128 KiB, beyond its per-thread cache, take its slower paths (searching bins, merging freed
// chunks): 10% of a replayed synth step (benchmarks/jit_step.py). So freed blocks of kCacheMin
// bytes or more are kept, per size class, and handed out again; the cache holds at most
// buffer_cache_limit() bytes (TAPEGRAD_BUFFER_CACHE_MB at import, 512 by default; 0 turns it off)
// and gives everything back on release_buffer_cache().
#pragma once

#include <cstddef>

namespace tg {

// A block of at least `bytes` whose `data` is 64-byte aligned; `base` and `capacity` are what
// give_block needs back.
struct Block {
    void* base = nullptr;
    void* data = nullptr;
    size_t capacity = 0;
};
Block take_block(size_t bytes);  // throws std::bad_alloc
void give_block(const Block& b);

// Blocks below this size are malloc's alone (its per-thread cache serves them fast).
constexpr size_t kCacheMin = size_t{1} << 10;

size_t buffer_cache_limit();
void set_buffer_cache_limit(size_t bytes);  // drops cached blocks beyond the new limit
size_t buffer_cache_bytes();               // bytes held in freed blocks now
void release_buffer_cache();               // frees them all

}  // namespace tg
