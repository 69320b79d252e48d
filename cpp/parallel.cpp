#include "parallel.h"

#include "fpmode.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace tg {

namespace {

// One call of parallel_for: chunks are handed out by `next`; `active` counts workers inside it.
struct Job {
    const std::function<void(int64_t, int64_t)>* body;
    int64_t n, grain;
    unsigned fp_bits;  // the caller's FTZ|DAZ bits: a worker computes its chunks in the caller's mode
    std::atomic<int64_t> next{0};
    std::atomic<int> active{0};
};

// Takes chunks until none is left.
void run_chunks(Job& job) {
    for (;;) {
        const int64_t begin = job.next.fetch_add(job.grain, std::memory_order_relaxed);
        if (begin >= job.n) return;
        (*job.body)(begin, std::min(job.n, begin + job.grain));
    }
}

struct Pool {
    std::mutex mu;
    std::condition_variable wake;
    Job* job = nullptr;        // the published job, if any; guarded by mu
    uint64_t generation = 0;   // bumped per published job; guarded by mu
    int wanted = 1;            // threads including the caller (set at import: set_num_threads's default)
    int started = 0;           // worker threads alive (they never exit)
    std::atomic<bool> forked{false};  // in a child of fork(): no workers exist there

    void worker() {
        uint64_t seen = 0;
        for (;;) {
            Job* j;
            {
                std::unique_lock<std::mutex> lock(mu);
                wake.wait(lock, [&] { return job != nullptr && generation != seen; });
                seen = generation;
                j = job;
                j->active.fetch_add(1, std::memory_order_relaxed);  // under mu: the caller sees it
            }
            {
                FlushScope mode(j->fp_bits);
                run_chunks(*j);
            }
            j->active.fetch_sub(1, std::memory_order_release);
        }
    }

    // Starts workers up to wanted - 1 (they stay, waiting, when the count is lowered later).
    void ensure_workers() {
        while (started < wanted - 1) {
            std::thread([this] { worker(); }).detach();
            ++started;
        }
    }
};

// Never destroyed: detached workers may still wait on its members while the process exits. Made at
// import (bindings/runtime.cpp sets the thread count), before any other thread: a fork while another
// thread was making a function-local static would leave the child waiting on its guard for good.
Pool& pool() {
    static Pool* p = [] {
        pthread_atfork(nullptr, nullptr, [] { pool().forked = true; });
        return new Pool();
    }();
    return *p;
}

}  // namespace

void set_pool_threads(int n) {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    p.wanted = std::max(1, n);
}

int pool_threads() {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    return p.wanted;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(grain, 1);
    Pool& p = pool();
    Job job;
    job.body = &body;
    job.n = n;
    job.grain = grain;
    job.fp_bits = fp_mode_bits();
    bool published = false;
    if (n >= kParallelMin && n > grain && !p.forked.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lock(p.mu);
        // One job at a time: a second Python thread in a kernel meanwhile runs its loop alone.
        if (p.wanted > 1 && p.job == nullptr) {
            p.ensure_workers();
            p.job = &job;
            ++p.generation;
            published = true;
        }
    }
    if (!published) {
        body(0, n);
        return;
    }
    p.wake.notify_all();
    run_chunks(job);
    {
        std::lock_guard<std::mutex> lock(p.mu);
        p.job = nullptr;  // no worker joins after this
    }
    // Workers that joined hold at most one chunk each now.
    while (job.active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void parallel_blocks(int64_t dim, int64_t align, const std::function<void(int64_t, int64_t)>& body) {
    const int64_t parts = std::min<int64_t>(4 * pool_threads(), (dim + align - 1) / align);
    const int64_t block = ((dim + parts - 1) / parts + align - 1) / align * align;
    const int64_t blocks = (dim + block - 1) / block;
    constexpr int64_t unit = kParallelMin;  // parallel_for's count: each block is this many "elements"
    parallel_for(blocks * unit, unit, [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo / unit; q < hi / unit; ++q) body(q * block, std::min(block, dim - q * block));
    });
}

}  // namespace tg
