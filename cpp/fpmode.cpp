#include "fpmode.h"

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define TG_HAVE_MXCSR 1
#endif

namespace tg {

namespace {

#ifdef TG_HAVE_MXCSR
constexpr unsigned kFtz = 0x8000;  // MXCSR bit 15: results below the normal range become zero
constexpr unsigned kDaz = 0x0040;  // MXCSR bit 6: subnormal operands are read as zero
constexpr unsigned kBits = kFtz | kDaz;
std::atomic<bool> flush{true};
#else
std::atomic<bool> flush{false};
#endif

unsigned wanted_bits() {
#ifdef TG_HAVE_MXCSR
    return flush.load(std::memory_order_relaxed) ? kBits : 0u;
#else
    return 0;
#endif
}

}  // namespace

bool set_flush_denormal(bool on) {
#ifdef TG_HAVE_MXCSR
    flush.store(on, std::memory_order_relaxed);
    return true;
#else
    return !on;
#endif
}

bool flush_denormal() { return flush.load(std::memory_order_relaxed); }

unsigned fp_mode_bits() {
#ifdef TG_HAVE_MXCSR
    return _mm_getcsr() & kBits;
#else
    return 0;
#endif
}

FlushScope::FlushScope() : FlushScope(wanted_bits()) {}

FlushScope::FlushScope(unsigned bits) {
#ifdef TG_HAVE_MXCSR
    saved_ = _mm_getcsr();
    const unsigned next = (saved_ & ~kBits) | (bits & kBits);
    if (next != saved_) {
        _mm_setcsr(next);
        changed_ = true;
    }
#else
    (void)bits;
#endif
}

FlushScope::~FlushScope() {
#ifdef TG_HAVE_MXCSR
    // Only the mode bits go back: exception flags raised inside stay visible, as numpy's would.
    if (changed_) _mm_setcsr((_mm_getcsr() & ~kBits) | (saved_ & kBits));
#endif
}

}  // namespace tg
