"""The engine's run-time settings: threads, which library runs matrix products, flushing subnormals,
the cache of freed tensor buffers.

At import, matrix products are pointed at the OpenBLAS that numpy's wheel bundles (numpy is the
one run-time dependency, and its BLAS dispatches to the CPU at run time), or else at PyPI's
scipy-openblas32 if it is installed (``pip install ".[blas]"``); without either they run on the
engine's Eigen products, slower, and a warning says so once. TAPEGRAD_BLAS names another library
with cblas_sgemm/dgemm, or "eigen" to keep Eigen's products.
"""

import glob
import os
import warnings

import numpy as np

from . import _core


def set_num_threads(n):
    """Number of threads the engine may use: for matrix products of 2**21 multiply-adds or more
    (split into blocks, each a one-thread BLAS call), for convolutions over many images, and for
    element-wise kernels and optimiser updates on tensors of 65,536 elements or more (smaller ones
    run on the calling thread). The default is the machine's core count.

    The BLAS itself runs on one thread from import on. Its thread count is process-wide, and numpy's
    own products share it, so numpy's ``@`` runs on one thread too in a process that imported
    tapegrad; ``threadpoolctl`` can raise it again, at the cost of the engine's small products."""
    _core.set_num_threads(int(n))


def get_num_threads():
    """Number of threads the engine uses (see set_num_threads)."""
    return _core.get_num_threads()


def blas_libraries():
    """The shared libraries tried for matrix products, in order: the OpenBLAS bundled with numpy's
    wheel, then scipy-openblas32's (if installed)."""
    here = os.path.dirname(np.__file__)
    found = sorted(glob.glob(os.path.join(here + ".libs", "*openblas*"))
                   + glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
    try:
        import scipy_openblas32
    except ImportError:
        return found
    return found + sorted(glob.glob(os.path.join(scipy_openblas32.get_lib_dir(), "*scipy_openblas*")))


def _load_blas():
    """Point the engine's matrix products at the first library of blas_libraries() (or TAPEGRAD_BLAS)
    that loads; warn once when none does."""
    choice = os.environ.get("TAPEGRAD_BLAS", "")
    if choice.lower() == "eigen":
        return
    candidates = [choice] if choice else blas_libraries()
    global _blas_path
    for path in candidates:
        if _core.load_blas(path):
            _blas_path = os.path.realpath(path)
            return
    if choice:
        reason = f"TAPEGRAD_BLAS={choice} is not a loadable library with cblas_sgemm and cblas_dgemm"
    else:
        reason = "numpy has no bundled OpenBLAS (a distribution's numpy uses the system's) and scipy-openblas32 is not installed"
    warnings.warn(f"tapegrad: matrix products fall back to Eigen's, at about 60-70% of OpenBLAS's speed: {reason}. "
                  'Install it with: pip install scipy-openblas32 (or pip install ".[blas]" from a checkout of '
                  "tapegrad); TAPEGRAD_BLAS=eigen keeps Eigen without this warning.", RuntimeWarning, stacklevel=2)


def set_flush_denormal(on):
    """Whether the engine's matrix products and optimiser steps flush subnormal numbers to zero.

    ``on=True`` (the default at import) sets the CPU's flush-to-zero and denormals-are-zero modes
    (MXCSR FTZ|DAZ on x86) while a matrix product (matmul, linear, bmm, the products inside
    conv2d, forward and backward) or an optimiser step runs: subnormal operands are read as 0 and
    results below the smallest normal number (1.2e-38 in float32, 2.2e-308 in float64) become 0.
    Subnormal operands slow the BLAS 1.5-3.6x (a saturated sigmoid makes 0.3-0.5% of float32
    activations subnormal). A product then drops the terms with a subnormal operand, each smaller
    than the smallest normal number times the other operand.
    ``on=False`` keeps IEEE 754 subnormals there too, as numpy and PyTorch do by default.

    Element-wise and reduction ops always keep IEEE subnormals (``vg.log`` of 1e-40 in float32 is
    -92.1 as numpy's, not -inf). The setting is process-wide: it applies to kernels started from any
    thread after the call, the engine's worker threads follow it (numpy's OpenBLAS runs on them, one
    BLAS thread per call; a BLAS loaded with TAPEGRAD_BLAS that has threads of its own keeps their
    mode), and the calling thread's own mode is restored when each kernel returns, so numpy code is
    unaffected.

    Returns True if the mode is supported (x86 builds), else False (and the engine keeps IEEE).
    """
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"set_flush_denormal: expected True or False, got {on!r}")
    return _core.set_flush_denormal(bool(on))


def get_flush_denormal():
    """Whether matrix products and optimiser steps flush subnormals to zero (see set_flush_denormal)."""
    return _core.get_flush_denormal()


_PRECISIONS = ("highest", "high", "medium")


def set_float32_matmul_precision(precision):
    """How float32 matrix products are computed, by PyTorch's names for the same setting.

    ``"highest"`` (the default) and ``"high"``: in float32. ``"medium"``: each operand is rounded to
    bfloat16 (8 significant bits, to nearest even) and the products are summed in float32, the
    mixed precision of training on bfloat16 hardware. The tensors stay float32, so a model's
    parameters, the optimiser's state and its updates (the "master weights") keep float32; only the
    products' operands lose bits, a relative error of about 2^-9 per operand.

    It applies to every float32 product of at least 32^3 multiply-adds, forward and backward:
    ``@``/matmul, ``linear``, ``bmm``, and the products inside ``conv2d``; smaller ones, and every
    float64 product, stay exact. Where the CPU has AVX512_BF16 (``bf16_kernel()`` is
    ``"avx512_bf16"``: Intel Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later) the
    operands are packed as bfloat16 and multiplied by VDPBF16PS, which treats subnormal operands as
    zero and flushes subnormal results whatever set_flush_denormal says: up to 2x the float32 speed
    on large products. Elsewhere ``"emulated"``: the rounded operands go through the float32
    product, which gives the mode's accuracy but runs slower than float32 itself.
    PyTorch's ``"high"`` means TF32 on GPUs; on a CPU it is float32, and so it is here.

    The setting is process-wide, read by every product when it runs (a ``vg.jit`` replay included).
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: expected one of {', '.join(map(repr, _PRECISIONS))}, "
                         f"got {precision!r}")
    global _precision
    _precision = precision
    _core.set_bf16_products(precision == "medium")


def get_float32_matmul_precision():
    """The float32 product precision set_float32_matmul_precision set last: "highest" at import."""
    return _precision


def bf16_kernel():
    """Which kernel runs float32 products under set_float32_matmul_precision("medium"): "avx512_bf16"
    (the CPU has the instructions) or "emulated" (bfloat16-rounded operands, float32 product)."""
    return _core.bf16_kernel()


_precision = "highest"
_blas_path = None  # the library _load_blas loaded


def blas_library():
    """The path of the shared library whose cblas_sgemm/dgemm run matrix products when gemm_backend()
    is "blas" (numpy's bundled OpenBLAS by default), or None when none was loaded."""
    return _blas_path


def gemm_backend():
    """Which library runs matrix products: "blas" (numpy's OpenBLAS) or "eigen"."""
    return _core.gemm_backend()


def set_gemm_backend(name):
    """Switch matrix products between "blas" (if one was loaded) and "eigen" (for comparisons)."""
    _core.set_gemm_backend(name)


def set_buffer_cache_limit(megabytes):
    """Keep at most this many MiB of freed tensor buffers (1 KiB or more) for reuse.

    A training step frees and allocates the same buffers every time; malloc gives large blocks
    fresh pages from the kernel, and touching each page then costs a page fault (a (128, 3136)
    float32 ``x * x`` forward and backward took 5 ms instead of 0.8), and serves blocks of a few
    KiB through its slower paths (10% of a small replayed step). Freed blocks are therefore kept,
    by size class (at most 25% larger than asked), and reused. The default is 512,
    or ``TAPEGRAD_BUFFER_CACHE_MB`` at import; 0 turns the cache off (each block goes back to
    malloc, as AddressSanitizer builds do by default). Lowering the limit frees the excess at once.
    """
    if isinstance(megabytes, bool) or not isinstance(megabytes, (int, np.integer)) or megabytes < 0:
        raise ValueError(f"set_buffer_cache_limit: expected a whole number of MiB >= 0, got {megabytes!r}")
    _core.set_buffer_cache_limit(int(megabytes) << 20)


def buffer_cache_info():
    """The buffer cache's state: ``{"limit_mb": ..., "held_mb": ...}`` (MiB, as floats)."""
    return {"limit_mb": _core.buffer_cache_limit() / 2**20, "held_mb": _core.buffer_cache_bytes() / 2**20}


def release_buffer_cache():
    """Give every freed tensor buffer the cache keeps back to malloc (the limit stays)."""
    _core.release_buffer_cache()


def _buffer_cache_from_env():
    value = os.environ.get("TAPEGRAD_BUFFER_CACHE_MB")
    if value is None:
        return
    try:
        megabytes = int(value)
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(f"TAPEGRAD_BUFFER_CACHE_MB={value!r}: expected a whole number of MiB >= 0")
    set_buffer_cache_limit(megabytes)


_load_blas()
_buffer_cache_from_env()
