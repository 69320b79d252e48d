"""The engine's run-time settings: threads, and which library runs matrix products.

At import, matrix products are pointed at the OpenBLAS that numpy's wheel bundles (numpy is the
one run-time dependency, and its BLAS dispatches to the CPU at run time); TAPEGRAD_BLAS names
another library with cblas_sgemm/dgemm, or "eigen" to keep Eigen's products.
"""

import glob
import os

import numpy as np

from . import _core


def set_num_threads(n):
    """Number of threads the engine may use: the BLAS's for matrix products, and the engine's own
    for element-wise kernels and optimiser updates on tensors of 65,536 elements or more (smaller
    ones run on the calling thread). The default is the machine's core count."""
    _core.set_num_threads(int(n))


def get_num_threads():
    """Number of threads the engine uses (see set_num_threads)."""
    return _core.get_num_threads()


def _load_numpy_blas():
    """Point the engine's matrix products at numpy's bundled OpenBLAS, or at TAPEGRAD_BLAS;
    without a loadable BLAS the engine uses Eigen."""
    choice = os.environ.get("TAPEGRAD_BLAS", "")
    if choice.lower() == "eigen":
        return
    if choice:
        candidates = [choice]
    else:
        here = os.path.dirname(np.__file__)
        candidates = sorted(glob.glob(os.path.join(here + ".libs", "*openblas*"))
                            + glob.glob(os.path.join(here, ".dylibs", "*openblas*")))
    for path in candidates:
        if _core.load_blas(path):
            return


def gemm_backend():
    """Which library runs matrix products: "blas" (numpy's OpenBLAS) or "eigen"."""
    return _core.gemm_backend()


def set_gemm_backend(name):
    """Switch matrix products between "blas" (if one was loaded) and "eigen" (for comparisons)."""
    _core.set_gemm_backend(name)


_load_numpy_blas()
