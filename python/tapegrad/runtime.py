"""The engine's run-time settings: threads, and which library runs matrix products.

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
    for path in candidates:
        if _core.load_blas(path):
            return
    if choice:
        reason = f"TAPEGRAD_BLAS={choice} is not a loadable library with cblas_sgemm and cblas_dgemm"
    else:
        reason = "numpy has no bundled OpenBLAS (a distribution's numpy uses the system's) and scipy-openblas32 is not installed"
    warnings.warn(f"tapegrad: matrix products fall back to Eigen's, at about 60-70% of OpenBLAS's speed: {reason}. "
                  'Install it with: pip install scipy-openblas32 (or pip install ".[blas]" from a checkout of '
                  "tapegrad); TAPEGRAD_BLAS=eigen keeps Eigen without this warning.", RuntimeWarning, stacklevel=2)


def gemm_backend():
    """Which library runs matrix products: "blas" (numpy's OpenBLAS) or "eigen"."""
    return _core.gemm_backend()


def set_gemm_backend(name):
    """Switch matrix products between "blas" (if one was loaded) and "eigen" (for comparisons)."""
    _core.set_gemm_backend(name)


_load_blas()
