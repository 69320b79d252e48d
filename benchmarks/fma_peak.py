"""This core's FMA peak: a loop of independent vector FMAs, compiled at run time with the system's C compiler.

    python benchmarks/fma_peak.py        # GFLOP/s of one core, float32 and float64

The loop keeps 12 accumulators (more than the FMA latency times the FMA ports of current x86 cores),
in 512-bit registers where the CPU has AVX-512F, else 256-bit (AVX2 + FMA). One FMA is 2 flops
per lane. run.py divides a training step's GFLOP by its time and this peak (times the threads) to
give "% of FMA peak". Returns None when no C compiler is found or the CPU has no FMA.
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

SOURCE = r"""
#include <immintrin.h>
#include <stdint.h>

#define BODY(T, FMA, SET1)                                                                   \
    T a0 = SET1(1.0), a1 = SET1(1.1), a2 = SET1(1.2), a3 = SET1(1.3), a4 = SET1(1.4), a5 = SET1(1.5), \
      a6 = SET1(1.6), a7 = SET1(1.7), a8 = SET1(1.8), a9 = SET1(1.9), a10 = SET1(2.0), a11 = SET1(2.1); \
    const T m = SET1(0.999999), c = SET1(1e-7);                                              \
    for (int64_t i = 0; i < n; ++i) {                                                        \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c);       \
        a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c);       \
        a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c);   \
    }                                                                                        \
    T s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;

/* Returns flops done (12 FMAs x lanes x 2 per iteration); sink defeats dead-code elimination. */
__attribute__((target("avx2,fma"))) double fma256(int64_t n, int f64, double* sink) {
    if (f64) { BODY(__m256d, _mm256_fmadd_pd, _mm256_set1_pd) *sink = s[0]; return 12.0 * 4 * 2 * n; }
    BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps) *sink = s[0]; return 12.0 * 8 * 2 * n;
}
__attribute__((target("avx512f"))) double fma512(int64_t n, int f64, double* sink) {
    if (f64) { BODY(__m512d, _mm512_fmadd_pd, _mm512_set1_pd) *sink = s[0]; return 12.0 * 8 * 2 * n; }
    BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps) *sink = s[0]; return 12.0 * 16 * 2 * n;
}
int has_avx512(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx512f"); }
int has_fma(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
"""

_lib = None


def _load():
    global _lib
    if _lib is not None:
        return _lib or None
    _lib = False
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    folder = tempfile.mkdtemp(prefix="tapegrad-fma-")
    src, out = os.path.join(folder, "fma.c"), os.path.join(folder, "fma.so")
    with open(src, "w") as f:
        f.write(SOURCE)
    done = subprocess.run([cc, "-O2", "-shared", "-fPIC", src, "-o", out], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    lib = ctypes.CDLL(out)
    for name in ("fma256", "fma512"):
        getattr(lib, name).restype = ctypes.c_double
        getattr(lib, name).argtypes = [ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
    _lib = lib
    return lib


def fma_peak(repeats=15, seconds=0.02):
    """{"float32": GFLOP/s, "float64": GFLOP/s, "isa": "avx512" | "avx2"} of the calling thread's core
    (the best of `repeats` runs of about `seconds` each: on a shared machine the best is the core's), or None without a compiler or FMA."""
    lib = _load()
    if lib is None or not lib.has_fma():
        return None
    wide = bool(lib.has_avx512())
    fn = lib.fma512 if wide else lib.fma256
    sink = ctypes.c_double()
    result = {"isa": "avx512" if wide else "avx2"}
    for name, f64 in (("float32", 0), ("float64", 1)):
        n = 1 << 16
        while True:  # calibrate
            start = time.perf_counter()
            fn(n, f64, ctypes.byref(sink))
            if time.perf_counter() - start > seconds / 4:
                break
            n *= 2
        best = 0.0
        for _ in range(repeats):
            start = time.perf_counter()
            flops = fn(n, f64, ctypes.byref(sink))
            best = max(best, flops / (time.perf_counter() - start) / 1e9)
        result[name] = best
    return result


if __name__ == "__main__":
    peak = fma_peak()
    if peak is None:
        sys.exit("no C compiler or no FMA on this CPU")
    print(f"FMA peak of one core ({peak['isa']}): float32 {peak['float32']:.1f} GFLOP/s, "
          f"float64 {peak['float64']:.1f} GFLOP/s")
