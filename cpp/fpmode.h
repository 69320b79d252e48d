// Flush-to-zero (FTZ) and denormals-are-zero (DAZ) for the engine's matrix products and optimiser
// steps, and for the engine's worker threads while they run a caller's chunks.
//
// Subnormal operands make a matrix product 1.5-3.6x slower on the CPUs measured (Intel's SIMD units
// take a micro-code assist per instruction that meets one), and a saturating sigmoid makes 0.3-0.5%
// of float32 activations subnormal. Setting FTZ|DAZ in MXCSR around those kernels removes that,
// at a cost to accuracy only below the smallest normal number (1.2e-38 in float32, 2.2e-308 in
// float64). The element-wise and reduction kernels keep IEEE 754 subnormals, so that exp, log,
// sigmoid ... match numpy at subnormal inputs (log(1e-40f) is -92.1, not -inf).
//
// The setting is process-wide (one atomic flag): it is a property of the engine's arithmetic, and
// the threads that share a kernel (the engine's pool, the BLAS's) must agree on it. MXCSR itself is
// per thread: a FlushScope sets the bits on the thread that runs the kernel and restores that
// thread's previous MXCSR when it ends, so numpy code around the engine's calls sees the mode it set.
#pragma once

namespace tg {

// Turns FTZ|DAZ for the engine's matrix products and optimiser steps on (the default) or off (IEEE
// subnormals there too). Returns false (and changes nothing) where the CPU has no such mode (the
// build is not for x86).
bool set_flush_denormal(bool on);
bool flush_denormal();

// The calling thread's FTZ|DAZ bits, to hand to a worker thread (0 off x86).
unsigned fp_mode_bits();

// While alive, the calling thread's FTZ|DAZ bits are `bits` (default: those set_flush_denormal
// asks for); the destructor restores the thread's MXCSR if it was changed. Costs a read of MXCSR,
// plus two writes when the mode differs.
class FlushScope {
public:
    FlushScope();
    explicit FlushScope(unsigned bits);
    ~FlushScope();
    FlushScope(const FlushScope&) = delete;
    FlushScope& operator=(const FlushScope&) = delete;

private:
    unsigned saved_ = 0;
    bool changed_ = false;
};

}  // namespace tg
