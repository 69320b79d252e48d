"""Flush-to-zero / denormals-are-zero in the engine's matrix products and optimiser steps.

``vg.set_flush_denormal(True)`` (the default) runs matrix products and optimiser steps with MXCSR's
FTZ|DAZ bits set; ``False`` keeps IEEE subnormals. Element-wise ops keep IEEE subnormals either way,
the calling thread's mode is restored after each kernel (numpy is unaffected), and the engine's
worker threads and the BLAS's follow the setting.
"""

import platform
import threading

import numpy as np
import pytest

import tapegrad as vg

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"),
                                reason="FTZ/DAZ is set through x86's MXCSR; elsewhere the engine keeps IEEE")

# (dtype, a subnormal, two normal numbers whose product is subnormal)
DTYPES = [(np.float32, 1e-40, 1e-20), (np.float64, 1e-310, 1e-160)]


@pytest.fixture(autouse=True)
def default_mode():
    """Every test starts in the default mode and leaves it so, at the default thread count."""
    threads = vg.get_num_threads()
    vg.set_flush_denormal(True)
    yield
    vg.set_flush_denormal(True)
    vg.set_num_threads(threads)


def matmul(a, b):
    """a @ b on the engine, as an array (no gradient)."""
    return (vg.TensorNode(a, requires_grad=False) @ vg.TensorNode(b, requires_grad=False)).value


def numpy_keeps_subnormals(dtype, sub):
    """numpy's own arithmetic in this thread still makes and reads subnormals."""
    x = np.full(64, sub, dtype)
    return bool(np.all(x * dtype(1) == x) and np.all(x * dtype(2) != 0) and np.all(np.sqrt(x) > 0))


def test_flushing_is_on_by_default_and_the_switch_turns_it_off_and_on():
    assert vg.get_flush_denormal() is True
    assert vg.set_flush_denormal(False) is True
    assert vg.get_flush_denormal() is False
    assert vg.set_flush_denormal(True) is True
    assert vg.get_flush_denormal() is True


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_set_flush_denormal_refuses_anything_but_a_bool_naming_itself(value):
    with pytest.raises(TypeError, match=r"^set_flush_denormal: expected True or False, got"):
        vg.set_flush_denormal(value)
    assert vg.get_flush_denormal() is True


# n: 2 runs on Eigen's small product, 64 on one BLAS call, 256 (2^24 multiply-adds) split over the engine's pool
@pytest.mark.parametrize("n", [2, 64, 256])
@pytest.mark.parametrize("dtype, sub, half", DTYPES, ids=["float32", "float64"])
def test_subnormal_operands_of_a_matrix_product_are_read_as_zero_by_default_and_kept_when_switched_off(
        dtype, sub, half, n):
    vg.set_num_threads(2)
    a = np.full((n, n), sub, dtype)
    eye = np.eye(n, dtype=dtype)
    product = matmul(a, eye)
    assert np.all(product == 0)
    vg.set_flush_denormal(False)
    product = matmul(a, eye)
    np.testing.assert_array_equal(product, a)


@pytest.mark.parametrize("n", [2, 64, 256])
@pytest.mark.parametrize("dtype, sub, half", DTYPES, ids=["float32", "float64"])
def test_subnormal_results_of_a_matrix_product_flush_to_zero_by_default_and_stay_when_switched_off(
        dtype, sub, half, n):
    vg.set_num_threads(2)
    a = np.full((n, n), half, dtype)
    b = np.eye(n, dtype=dtype) * dtype(half)
    want = a * dtype(half)  # numpy, in this thread: subnormal
    assert np.all(want != 0)
    got = matmul(a, b)
    assert np.all(got == 0)
    vg.set_flush_denormal(False)
    got = matmul(a, b)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("flush", [True, False])
@pytest.mark.parametrize("dtype, sub, half", DTYPES, ids=["float32", "float64"])
def test_the_backward_of_linear_flushes_as_the_switch_says(dtype, sub, half, flush):
    vg.set_flush_denormal(flush)
    x = vg.TensorNode(np.full((128, 64), sub, dtype), requires_grad=False)
    w = vg.TensorNode(np.ones((32, 64), dtype))
    vg.sum(vg.linear(x, w)).backward()  # dW = G^T x: sums of subnormals
    assert np.all(w.grad == 0) if flush else np.all(w.grad == dtype(sub) * 128)


@pytest.mark.parametrize("flush", [True, False])
@pytest.mark.parametrize("size", [16, 1 << 20], ids=["caller", "pool"])
def test_an_sgd_step_flushes_a_subnormal_update_as_the_switch_says_on_every_thread(size, flush):
    # 2^20 elements are 32 chunks of the engine's pool: its worker takes some of them.
    vg.set_num_threads(2)
    vg.set_flush_denormal(flush)
    p = vg.TensorNode(np.zeros(size, np.float32))
    p.grad = np.full(size, 1e-30, np.float32)
    vg.optim.SGD([p], lr=1e-10).step()  # 0 - 1e-40: subnormal
    if flush:
        assert np.all(p.value == 0)
    else:
        np.testing.assert_array_equal(p.value, np.float32(0) - np.float32(1e-10) * np.float32(1e-30))
        assert np.all(p.value != 0)


@pytest.mark.parametrize("dtype, sub, half", DTYPES, ids=["float32", "float64"])
def test_numpy_in_the_calling_thread_keeps_subnormals_after_the_engine_flushed(dtype, sub, half):
    assert numpy_keeps_subnormals(dtype, sub)
    x = vg.TensorNode(np.full((256, 256), sub, dtype))
    loss = vg.sum(x @ vg.TensorNode(np.eye(256, dtype=dtype)))
    loss.backward()
    vg.optim.SGD([x], lr=0.5).step()
    assert numpy_keeps_subnormals(dtype, sub)


def test_element_wise_ops_keep_ieee_subnormals_with_flushing_on_even_after_a_flushed_step_on_the_pool():
    vg.set_num_threads(2)
    p = vg.TensorNode(np.zeros(1 << 20, np.float32))
    p.grad = np.ones(1 << 20, np.float32)
    vg.optim.SGD([p], lr=0.1).step()  # the pool's worker ran flushed chunks
    x = np.full(1 << 20, -100.0, np.float32)  # exp(-100) = 3.7e-44, subnormal in float32
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(vg.exp(vg.TensorNode(x)).value, np.exp(x))
        tiny = np.full(1 << 20, 1e-40, np.float32)
        np.testing.assert_array_equal(vg.log(vg.TensorNode(tiny)).value, np.log(tiny))
        np.testing.assert_array_equal((vg.TensorNode(tiny) * 2).value, tiny * 2)


def test_a_product_started_from_another_thread_follows_the_process_wide_switch():
    results = {}

    def product(key):
        a = vg.TensorNode(np.full((64, 64), 1e-40, np.float32), requires_grad=False)
        results[key] = (a @ vg.TensorNode(np.eye(64, dtype=np.float32), requires_grad=False)).value
        results[key + " numpy"] = numpy_keeps_subnormals(np.float32, 1e-40)

    for flush in (False, True):
        vg.set_flush_denormal(flush)
        t = threading.Thread(target=product, args=(str(flush),))
        t.start()
        t.join()
    assert np.all(results["False"] != 0) and np.all(results["True"] == 0)
    assert results["False numpy"] and results["True numpy"]


@pytest.mark.parametrize("dtype, sub, half", DTYPES, ids=["float32", "float64"])
def test_a_subnormal_times_infinity_in_a_product_is_nan_when_flushing_and_infinity_in_ieee_mode(dtype, sub, half):
    # DAZ reads the subnormal as 0, and 0 * inf is nan: the one result flushing changes by more than
    # the smallest normal number (docs/errors.md).
    a = vg.TensorNode(np.array([[sub, 1.0]], dtype), requires_grad=False)
    b = vg.TensorNode(np.array([[np.inf], [1.0]], dtype), requires_grad=False)
    assert np.isnan((a @ b).value[0, 0])
    vg.set_flush_denormal(False)
    assert (a @ b).value[0, 0] == np.inf
