"""The engine's own threads for large element-wise kernels and optimiser updates (cpp/parallel.cpp).

Tensors of 65,536 elements or more are split into chunks that the calling thread and the engine's
workers take from a shared counter. Each element's arithmetic is the same whichever thread does
it, and the chunk boundaries fall on multiples of the SIMD width, so results at 2 or 3 threads are
bitwise those at 1 thread. The tests below use tensors big enough to be split (several chunks),
sizes that are not multiples of a chunk, and check the results against numpy and against a
1-thread run.
"""

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import tapegrad as vg

BIG = 300_007  # > 2**16, several chunks of 2**15, and a ragged end


@pytest.fixture
def threads():
    """Sets the engine's threads for one test and restores them after."""
    before = vg.get_num_threads()
    yield vg.set_num_threads
    vg.set_num_threads(before)


def unary_results(fn, x):
    """Forward value and input gradient (for an upstream gradient of cos(i)) of fn at x."""
    node = vg.TensorNode(x.copy())
    out = fn(node)
    upstream = np.cos(np.arange(x.size)).reshape(x.shape)
    (out * vg.TensorNode(upstream, requires_grad=False)).sum().backward()
    return np.array(out.value), np.array(node.grad)


UNARY = {  # name: (tapegrad function, numpy forward, numpy derivative from x and y)
    "sigmoid": (vg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x, y: y * (1 - y)),
    "exp": (vg.exp, np.exp, lambda x, y: y),
    "tanh": (vg.tanh, np.tanh, lambda x, y: 1 - y ** 2),
    "relu": (vg.relu, lambda x: np.maximum(x, 0), lambda x, y: (x > 0).astype(x.dtype)),
    "square": (vg.square, np.square, lambda x, y: 2 * x),
    "neg": (lambda t: -t, np.negative, lambda x, y: -np.ones_like(x)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_unary_ops_match_numpy_and_the_one_thread_result(name, dtype, threads):
    fn, np_fwd, np_deriv = UNARY[name]
    x = np.random.default_rng(1).uniform(-4, 4, size=(BIG,)).astype(dtype)
    threads(1)
    y1, g1 = unary_results(fn, x)
    for n in (2, 3):
        threads(n)
        yn, gn = unary_results(fn, x)
        assert np.array_equal(y1, yn) and np.array_equal(g1, gn), f"{name} at {n} threads differs from 1 thread"
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    want = np_fwd(x.astype(np.float64))
    np.testing.assert_allclose(y1, want, rtol=rtol, atol=rtol)
    upstream = np.cos(np.arange(x.size))
    np.testing.assert_allclose(g1, upstream * np_deriv(x.astype(np.float64), want), rtol=rtol * 10, atol=rtol * 10)


def test_every_element_is_written_once_for_sizes_around_the_chunk_bounds(threads):
    threads(2)
    for n in (2**16 - 1, 2**16, 2**16 + 1, 2**15 * 3, 2**15 * 3 + 5, 10**6 + 3):
        x = np.arange(n, dtype=np.float64)
        out = vg.negative(vg.TensorNode(x, requires_grad=False)).value
        assert np.array_equal(out, -x), n


OPTIMISERS = {
    "sgd": lambda ps: vg.optim.SGD(ps, lr=0.1),
    "sgd-momentum-nesterov-wd": lambda ps: vg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adam": lambda ps: vg.optim.Adam(ps, lr=0.01),
    "adamw": lambda ps: vg.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    "rmsprop-momentum": lambda ps: vg.optim.RMSprop(ps, lr=0.01, momentum=0.5, weight_decay=0.01),
}


def optimise(make, steps=3):
    """A large parameter after `steps` updates with fixed gradients."""
    rng = np.random.default_rng(7)
    p = vg.TensorNode(rng.standard_normal(BIG))
    opt = make([p])
    for k in range(steps):
        p.grad = rng.standard_normal(BIG) * (k + 1)
        opt.step()
    return np.array(p.value)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_large_optimiser_updates_are_those_of_one_thread(name, threads):
    threads(1)
    one = optimise(OPTIMISERS[name])
    threads(2)
    two = optimise(OPTIMISERS[name])
    assert np.array_equal(one, two)


def test_sgd_update_of_a_large_parameter_matches_numpy(threads):
    threads(2)
    rng = np.random.default_rng(3)
    value, grad = rng.standard_normal(BIG), rng.standard_normal(BIG)
    p = vg.TensorNode(value.copy())
    p.grad = grad
    vg.optim.SGD([p], lr=0.5).step()
    assert np.array_equal(p.value, value - 0.5 * grad)


def test_python_threads_running_large_kernels_at_once_get_their_own_results(threads):
    threads(2)
    inputs = [np.random.default_rng(s).standard_normal(BIG) for s in range(4)]
    want = [unary_results(vg.sigmoid, x) for x in inputs]
    got = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def work(i):
        start.wait()
        for _ in range(5):
            got[i] = unary_results(vg.sigmoid, inputs[i])

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for (wy, wg), (gy, gg) in zip(want, got):
        assert np.array_equal(wy, gy) and np.array_equal(wg, gg)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_large_kernels_work_in_a_forked_child():
    # The parent starts its workers first; a child of fork() has none and must not wait for them.
    code = textwrap.dedent("""
        import os, numpy as np, tapegrad as vg
        vg.set_num_threads(2)
        x = np.linspace(-3, 3, 300_007)
        vg.sigmoid(vg.TensorNode(x, requires_grad=False))
        pid = os.fork()
        if pid == 0:
            y = vg.sigmoid(vg.TensorNode(x, requires_grad=False)).value
            os._exit(0 if np.allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-13) else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", code], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_thread_count_is_validated_and_reported(threads):
    with pytest.raises(ValueError, match="at least 1 thread"):
        vg.set_num_threads(0)
    threads(3)
    assert vg.get_num_threads() == 3


def test_omp_num_threads_sets_the_element_wise_threads_too():
    code = "import tapegrad as vg; print(vg.get_num_threads(), vg.core._core.pool_threads())"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "1"], done.stderr
