"""Which library runs matrix products: numpy's bundled OpenBLAS, then scipy-openblas32, then Eigen
with one warning; and the kernel copy chosen for this CPU.

Each case runs in a fresh interpreter, since the choice is made once, at import.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as vg

NUMPY_BLAS = vg.runtime.blas_libraries()[:1]


def run(code, **env):
    """Runs code in a fresh interpreter (tapegrad importable as here); returns (stdout, stderr)."""
    path = os.pathsep.join([os.path.dirname(os.path.dirname(vg.__file__)), os.environ.get("PYTHONPATH", "")])
    full_env = {k: v for k, v in os.environ.items() if k not in ("TAPEGRAD_BLAS", "TAPEGRAD_ISA")}
    full_env.update(env, PYTHONPATH=path)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout, res.stderr


# A numpy without bundled OpenBLAS (as Debian's python3-numpy): its folder is moved out of sight,
# and scipy_openblas32 is either absent or a stand-in whose library folder we choose.
WITHOUT_NUMPY_BLAS = """
    import sys, types, warnings
    import numpy
    numpy.__file__ = "/nonexistent/numpy/__init__.py"
    {scipy_openblas32}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import tapegrad as vg
    print(vg.gemm_backend())
    print("|".join(str(w.message) for w in caught if "matrix products" in str(w.message)))
"""
ABSENT = "sys.modules['scipy_openblas32'] = None"
STAND_IN = ("sys.modules['scipy_openblas32'] = types.SimpleNamespace(get_lib_dir=lambda: {folder!r})")


def test_matrix_products_use_numpys_openblas_when_it_has_one():
    if not NUMPY_BLAS:
        pytest.skip("this numpy bundles no OpenBLAS")
    out, err = run("import tapegrad as vg; print(vg.gemm_backend())")
    assert out.split() == ["blas"] and "matrix products" not in err


def test_without_numpys_openblas_or_scipy_openblas32_products_fall_back_to_eigen_with_one_warning():
    out, _ = run(WITHOUT_NUMPY_BLAS.format(scipy_openblas32=ABSENT))
    backend, message = out.splitlines()
    assert backend == "eigen"
    assert message.count("fall back to Eigen") == 1 and "pip install scipy-openblas32" in message


def test_scipy_openblas32_is_tried_after_numpys_openblas(tmp_path):
    if not NUMPY_BLAS:
        pytest.skip("this numpy bundles no OpenBLAS to stand in for scipy-openblas32's")
    (tmp_path / "libscipy_openblas.so").symlink_to(NUMPY_BLAS[0])
    out, _ = run(WITHOUT_NUMPY_BLAS.format(scipy_openblas32=STAND_IN.format(folder=str(tmp_path))))
    assert out.splitlines() == ["blas", ""]


def test_the_real_scipy_openblas32_library_runs_products_like_numpy():
    pytest.importorskip("scipy_openblas32")
    out, _ = run("""
        import numpy as np, scipy_openblas32, glob, os
        from tapegrad import _core
        import tapegrad as vg
        lib = sorted(glob.glob(os.path.join(scipy_openblas32.get_lib_dir(), "*scipy_openblas*")))[0]
        vg.set_gemm_backend("eigen")
        assert _core.load_blas(lib) and vg.gemm_backend() == "blas"
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((64, 48)), rng.standard_normal((48, 80))
        print(np.abs((vg.TensorNode(a) @ vg.TensorNode(b)).value - a @ b).max())
    """)
    assert float(out) < 1e-12


def test_a_tapegrad_blas_that_does_not_load_warns_and_keeps_eigen(tmp_path):
    out, _ = run("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import tapegrad as vg
        print(vg.gemm_backend())
        print("|".join(str(w.message) for w in caught))
    """, TAPEGRAD_BLAS=str(tmp_path / "missing.so"))
    backend, message = out.splitlines()
    assert backend == "eigen" and "missing.so is not a loadable library" in message


def test_tapegrad_blas_eigen_keeps_eigen_without_a_warning():
    out, err = run("import tapegrad as vg; print(vg.gemm_backend())", TAPEGRAD_BLAS="eigen")
    assert out.split() == ["eigen"] and "matrix products" not in err


# ---- threads: the BLAS on one thread, large products split over the engine's pool ----

def test_the_blas_runs_on_one_thread_whatever_set_num_threads_says():
    if not NUMPY_BLAS:
        pytest.skip("this numpy bundles no OpenBLAS")
    out, _ = run(f"""
        import ctypes
        import tapegrad as vg
        lib = ctypes.CDLL({NUMPY_BLAS[0]!r})
        get = next(getattr(lib, n) for n in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                                             "openblas_get_num_threads") if hasattr(lib, n))
        counts = [get()]
        for n in (2, 3, 1, 2):
            vg.set_num_threads(n)
            x = vg.TensorNode(__import__("numpy").ones((256, 256)))
            (x @ x).sum().backward()
            counts.append(get())
        print(counts)
    """, OPENBLAS_NUM_THREADS="2")
    assert out.split("\n")[0] == "[1, 1, 1, 1, 1]"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(200, 300, 150), (40, 500, 300), (300, 500, 40), (64, 2000, 20)])
def test_products_split_over_threads_give_the_bits_of_the_same_blocks_on_one_thread(shape, dtype):
    """A product of 2^21 multiply-adds or more is cut into blocks of rows (or columns) of C, one BLAS
    call each: on 2 threads it matches numpy, and every transposition case gives the same bits again
    when the same blocks run at once from two Python threads."""
    import threading
    m, k, n = shape
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    before = vg.get_num_threads()
    try:
        vg.set_num_threads(2)
        with vg.no_grad():
            cases = {"nn": lambda: vg.TensorNode(a) @ vg.TensorNode(b),
                     "tn": lambda: vg.TensorNode(a.T.copy()).transpose() @ vg.TensorNode(b),
                     "nt": lambda: vg.TensorNode(a) @ vg.TensorNode(b.T.copy()).transpose()}
            alone = {key: f().value for key, f in cases.items()}
            together = {}

            def worker(key):
                together[key] = [cases[key]().value for _ in range(3)]

            threads = [threading.Thread(target=worker, args=(key,)) for key in cases]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        vg.set_num_threads(before)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for key, value in alone.items():
        np.testing.assert_allclose(value, a.astype(np.float64) @ b.astype(np.float64), rtol=tol, atol=tol * k)
        for again in together[key]:
            assert np.array_equal(again, value), key


# ---- the kernel copies (cpp/isa.cpp) ----

def test_the_kernel_copy_in_use_is_one_of_those_built_and_the_best_this_cpu_runs():
    isas = vg._core.kernel_isas()
    assert vg._core.kernel_isa() in isas and isas[-1] in ("x86-64", "native", "baseline")
    if os.environ.get("TAPEGRAD_ISA"):
        assert vg._core.kernel_isa() == os.environ["TAPEGRAD_ISA"]
        return
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if "x86-64-v3" in isas and " avx2 " in flags and " fma " in flags and " bmi2 " in flags:
        assert vg._core.kernel_isa() == "x86-64-v3"


def outputs_of_each_copy(code):
    """(isa, stdout) of `code` run under each kernel copy built that this CPU runs (TAPEGRAD_ISA)."""
    for isa in vg._core.kernel_isas():
        try:
            out, _ = run(code, TAPEGRAD_ISA=isa)
        except AssertionError as e:
            assert "lacks that instruction set" in str(e)
            continue
        yield isa, out


def test_every_kernel_copy_computes_what_numpy_does():
    # The same small training computation under each copy this CPU runs, against numpy.
    code = """
        import numpy as np, tapegrad as vg
        rng = np.random.default_rng(0)
        x, w = rng.standard_normal((64, 30)), rng.standard_normal((30, 5))
        for dt in (np.float32, np.float64):
            a, b = vg.TensorNode(x.astype(dt)), vg.TensorNode(w.astype(dt))
            loss = vg.log_softmax(vg.sigmoid(a @ b) * 3.0).sum()
            loss.backward()
            s = 1 / (1 + np.exp(-(x @ w)))
            z = 3 * s
            ref = (z - np.log(np.exp(z).sum(1, keepdims=True))).sum()
            print(vg._core.kernel_isa(), dt.__name__, abs(loss.item() - ref) / abs(ref))
    """
    for isa, out in outputs_of_each_copy(code):
        for line in out.splitlines():
            name, dtype, err = line.split()
            assert name == isa and float(err) < (1e-5 if dtype == "float32" else 1e-12), line


def test_every_kernel_copy_gives_the_same_bits_for_small_products_and_optimiser_steps():
    """The small products' loops and the optimiser updates are compiled without contracting
    multiply-adds into FMAs (the AVX2 copy has FMA; a precompiled header once turned contraction
    back on): every copy this CPU runs gives the same bits."""
    code = """
        import hashlib, numpy as np, tapegrad as vg
        rng = np.random.default_rng(1)
        digest = hashlib.sha256()
        for dt in (np.float32, np.float64):
            x, w = vg.TensorNode(rng.standard_normal((37, 9)).astype(dt)), vg.TensorNode(rng.standard_normal((9, 13)).astype(dt))
            for opt in (vg.optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
                        vg.optim.Adam([w], lr=0.01, weight_decay=0.1), vg.optim.RMSprop([w], lr=0.01, momentum=0.5)):
                for _ in range(3):
                    y = x @ w
                    (y * y).sum().backward()
                    opt.step()
                    opt.zero_grad()
                    digest.update(y.value.tobytes() + w.value.tobytes() + x.grad.tobytes())
                    x.grad = None
        print(vg._core.kernel_isa(), digest.hexdigest())
    """
    digests = {}
    for _, out in outputs_of_each_copy(code):
        name, digest = out.split()
        digests[name] = digest
    assert len(set(digests.values())) == 1, digests


def test_an_unknown_kernel_copy_is_an_error_naming_the_ones_built():
    res = subprocess.run([sys.executable, "-c", "import tapegrad"], capture_output=True, text=True,
                         env=dict(os.environ, TAPEGRAD_ISA="pentium",
                                  PYTHONPATH=os.path.dirname(os.path.dirname(vg.__file__))))
    assert res.returncode != 0 and "TAPEGRAD_ISA=pentium: not one of the kernel copies built" in res.stderr
    assert vg._core.kernel_isas()[-1] in res.stderr


def sequential_product(a, b):
    """a @ b with each element's products summed in order from 0, one rounding per multiply and per
    add: the bits of the engine's loops for products below 32^3 multiply-adds."""
    acc = np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    for p in range(a.shape[1]):
        acc = acc + a[:, p:p + 1] * b[p:p + 1, :]
    return acc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(128, 2, 8), (128, 8, 2), (8, 128, 2), (2, 128, 8), (1, 1, 1), (1, 7, 1),
                                   (5, 3, 7), (7, 3, 5), (3, 17, 33), (33, 17, 3), (4, 9, 4), (9, 4, 12),
                                   (1, 300, 9), (300, 1, 100),
                                   # up to 64 multiply-adds, one element at a time; 80, tiles again
                                   (2, 2, 2), (3, 2, 5), (2, 16, 2), (4, 4, 4), (4, 5, 4),
                                   # each k of 1-8 unrolled, one- and two-vector tiles, partial last tiles
                                   (129, 1, 3), (127, 3, 2), (13, 4, 5), (70, 5, 4), (9, 6, 17), (127, 7, 4),
                                   (66, 8, 3), (3, 9, 130), (130, 9, 3)])
def test_small_products_sum_each_element_in_order_in_every_transposition(m, k, n, dtype):
    """The forward product (A B) and both gradients (G B^T, A^T G: the transposed cases) of a small
    matmul give, bit for bit, the sums taken in order: full tiles, partial ones and 1-wide sides."""
    assert m * k * n < 32 ** 3
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    A, B, G = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
    a, b = vg.TensorNode(A), vg.TensorNode(B)
    c = vg.matmul(a, b)
    c.backward(G)
    np.testing.assert_array_equal(c.value, sequential_product(A, B))
    np.testing.assert_array_equal(a.grad, sequential_product(G, B.T))
    np.testing.assert_array_equal(b.grad, sequential_product(A.T, G))
