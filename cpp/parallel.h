// Splitting large element-wise loops over the engine's threads.
//
// A fork-join region (OpenMP's) waits at its end for every thread it started. On a shared 2-core
// machine the second thread is often not running yet (another process or the BLAS's spinning
// workers hold the core), and the region then waits a scheduler tick: a 0.1 ms kernel took 12 ms
// (benchmarks/thread_pools.py). parallel_for does not wait for a thread to arrive: the caller
// takes chunks from a shared counter as the workers do, so if no worker wakes in time the caller
// does all the chunks itself, and at the end it waits only for chunks a worker already holds.
#pragma once

#include <cstdint>
#include <functional>

namespace tg {

// Threads that parallel_for may use, the caller included (1: everything runs on the caller).
void set_pool_threads(int n);
int pool_threads();

// Element count below which parallel_for runs on the caller alone: a worker's wake-up costs
// several microseconds, about the time of this many element-wise operations.
constexpr int64_t kParallelMin = int64_t{1} << 16;
// The chunk the engine's element-wise kernels and optimiser updates use: 256 KB of float64, a
// multiple of every SIMD width, so chunking does not change how any element is computed.
constexpr int64_t kParallelGrain = int64_t{1} << 15;

// Calls body(begin, end) over disjoint ranges covering [0, n), each at most `grain` long (the last
// may be shorter), possibly on several threads at once. body must not throw. Runs body(0, n) on the
// caller when n < kParallelMin, only one thread is set, or another job holds the pool (so a body
// that calls parallel_for, as a convolution's per-image products may, runs that loop itself).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

// Calls body(first, size) over blocks covering [0, dim), each a multiple of `align` long but the
// last, about 4 per thread (a late worker leaves the caller at most a quarter of its share to take
// over), through parallel_for: the blocks of a large matrix product.
void parallel_blocks(int64_t dim, int64_t align, const std::function<void(int64_t, int64_t)>& body);

}  // namespace tg
