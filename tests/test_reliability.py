"""Regressions for the defects an outside differential test found in the engine (issue 13), one
test or table row per defect, with the reproduction the report gave."""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import tapegrad as vg

ROOT = Path(__file__).resolve().parent.parent


def run_child(code, cwd=None):
    """Runs code in a fresh interpreter (a crash must not take the test run down)."""
    env = dict(os.environ, PYTHONPATH=str(Path(vg.__file__).resolve().parent.parent))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


# ---- 1, 2: crashes ----

def test_the_value_of_a_node_made_by_an_op_cannot_be_replaced():
    x = vg.TensorNode(np.ones(1_000_000))
    y = vg.exp(x)
    with pytest.raises(ValueError, match=r"TensorNode.value: the value of a node made by an op \(Exp\) cannot be "
                                         r"replaced"):
        y.value = np.ones(1)
    (y * 1.0).sum().backward()  # the graph is intact
    np.testing.assert_allclose(x.grad[:3], np.e)


def test_the_reported_value_swap_no_longer_crashes_the_interpreter():
    result = run_child("""
        import numpy as np, tapegrad as vg
        x = vg.TensorNode(np.ones(1_000_000)); y = vg.exp(x)
        try:
            y.value = np.ones(1)
        except ValueError:
            pass
        (y * 1.0).sum().backward()
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


@pytest.mark.parametrize("strides", [(2 ** 60,), (-(2 ** 62),), (2 ** 63 - 1,)])
def test_a_getitem_view_whose_reach_overflows_is_an_index_error(strides):
    with pytest.raises(IndexError, match=r"getitem: a view of shape \(17,\) .* reaches outside a tensor of shape \(17,\)"):
        vg.GetItem.do_forward(vg.TensorNode(np.arange(17.0)), offset=0, shape=(17,), strides=strides)


def test_a_getitem_view_needs_one_stride_per_axis():
    with pytest.raises(ValueError, match=r"getitem: a view of shape \(2, 2\) needs 2 strides, got 1"):
        vg.GetItem.do_forward(vg.TensorNode(np.arange(4.0)), offset=0, shape=(2, 2), strides=(1,))


# ---- 3, 4: threads ----

def test_two_threads_accumulating_into_a_shared_leaf_lose_no_update():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((256, 256)) / 16
    batches = [rng.standard_normal((32, 256)) for _ in range(2)]
    W = vg.TensorNode(w.copy())

    def work(x):
        for _ in range(40):
            (vg.tanh(vg.TensorNode(x, requires_grad=False) @ W) ** 2).sum().backward()

    threads = [threading.Thread(target=work, args=(x,)) for x in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    together = W.grad.copy()
    W.grad = None
    for x in batches:
        work(x)
    np.testing.assert_allclose(together, W.grad, rtol=1e-10, atol=1e-10)


def test_two_threads_running_backward_through_one_retained_graph_give_twice_the_gradient():
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = vg.TensorNode(rng.standard_normal((48, 48)))
        W = vg.TensorNode(rng.standard_normal((48, 48)))
        loss = (vg.tanh(x @ W) ** 2).sum()
        threads = [threading.Thread(target=lambda: loss.backward(retain_graph=True)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        twice = x.grad.copy()
        x.grad = None
        loss.backward(retain_graph=True)
        np.testing.assert_allclose(twice, 2 * x.grad, rtol=1e-12, atol=1e-12)


def test_a_graph_freed_by_one_backward_refuses_a_second_after_concurrent_ones():
    x = vg.TensorNode(np.ones(3))
    loss = (vg.exp(x) * x).sum()
    threads = [threading.Thread(target=lambda: loss.backward(retain_graph=True)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loss.backward()
    with pytest.raises(RuntimeError, match="a second time"):
        loss.backward()


def test_a_retained_node_does_not_feed_its_earlier_gradient_into_the_next_backward():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = x * 3.0
    y.retain_grad()
    loss = (y * y).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(y.grad, 2 * 2 * y.value)  # accumulated over two calls
    np.testing.assert_allclose(x.grad, 2 * 2 * 3 * y.value)  # each call propagated its own gradient


# ---- 5: float32 reductions ----

def test_float32_sum_and_mean_of_twenty_million_ones_are_exact():
    ones = vg.TensorNode(np.ones(20_000_000, np.float32))
    assert vg.sum(ones).item() == 20_000_000.0
    assert vg.mean(ones).item() == 1.0


@pytest.mark.parametrize("fn, reference", [
    (lambda x: vg.var(x), lambda x: np.var(x)),
    (lambda x: vg.logsumexp(x), lambda x: np.log(np.sum(np.exp(x - x.max()))) + x.max()),
    (lambda x: vg.sum(x), np.sum),
    (lambda x: vg.mean(x * x), lambda x: np.mean(x * x)),
    (lambda x: vg.mse_loss(x, np.zeros(x.shape, x.dtype)), lambda x: np.mean(x * x)),
], ids=["var", "logsumexp", "sum", "mean", "mse_loss"])
def test_float32_reductions_of_millions_of_elements_stay_within_ten_times_numpys_error(fn, reference):
    x32 = np.random.default_rng(0).uniform(0, 1, 4_000_000).astype(np.float32)
    exact = reference(x32.astype(np.float64))
    ours = abs(float(fn(vg.TensorNode(x32)).item()) - exact)
    numpys = abs(float(reference(x32)) - exact)
    assert ours <= 10 * numpys + 1e-7 * abs(exact)


def test_the_bias_gradient_of_linear_sums_columns_in_double():
    n = 3_000_000
    g = np.ones((n, 1), np.float32)
    x = vg.TensorNode(np.zeros((n, 1), np.float32), requires_grad=False)
    w = vg.TensorNode(np.zeros((1, 1), np.float32))
    b = vg.TensorNode(np.zeros(1, np.float32))
    (vg.linear(x, w, b) * g).sum().backward()
    assert b.grad[0] == n


# ---- 6, 7, 9: losses and Normalize without cancellation or overflow ----

@pytest.mark.parametrize("logits, dtype", [
    ([[1e30, 1e30, 0.0]], np.float64),
    ([[1e8, 1e8 - 1, 0.0]], np.float64),
    ([[1e3, 999.0, 0.0]], np.float32),
])
def test_cross_entropy_of_huge_logits_does_not_cancel(logits, dtype):
    x = np.array(logits, dtype)
    wide = x.astype(np.float64)
    expected = (wide.max() - wide[0, 0]) + np.log(np.sum(np.exp(wide - wide.max())))
    got = vg.cross_entropy(vg.TensorNode(x), [0]).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("logits, dtype", [([45.0, 44.0, 42.0], np.float32), ([355.0, 354.0, 352.0], np.float64),
                                          ([-70.0, -71.0, -73.0], np.float64)])
def test_the_courses_softmax_has_a_finite_gradient_for_large_and_small_row_sums(logits, dtype):
    x = vg.TensorNode(np.array([logits], dtype))
    probs = vg.Normalize.do_forward(vg.exp(x))
    weights = np.array([[1.0, -1.0, 0.5]], dtype)
    (probs * weights).sum().backward()
    s = np.exp(np.array(logits) - max(logits))
    s /= s.sum()
    expected = s * (weights[0] - np.sum(weights[0] * s))
    np.testing.assert_allclose(x.grad[0], expected, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6)


def test_binary_cross_entropy_of_a_subnormal_probability_is_the_same_for_one_or_sixteen_elements():
    one = vg.binary_cross_entropy(vg.TensorNode(np.full(1, 1e-40, np.float32)), np.ones(1, np.float32)).item()
    many = vg.binary_cross_entropy(vg.TensorNode(np.full(16, 1e-40, np.float32)), np.ones(16, np.float32)).item()
    expected = -np.log(np.float64(np.float32(1e-40)))
    assert one == pytest.approx(expected, rel=1e-6) and many == pytest.approx(expected, rel=1e-6)


def test_binary_cross_entropy_of_a_tiny_probability_against_zero_uses_log1p():
    assert vg.binary_cross_entropy(vg.TensorNode(np.array([1e-20])), np.zeros(1)).item() == pytest.approx(1e-20)


# ---- 11, 15: index and integer conversions ----

def test_uint64_indices_beyond_int64_are_an_index_error_not_a_wrapped_index():
    x = vg.TensorNode(np.ones((2, 3)))
    with pytest.raises(IndexError, match=r"select: index 18446744073709551615 is out of range"):
        vg.Select.do_forward(x, indices=np.array([0, 2 ** 64 - 1], np.uint64))
    with pytest.raises(IndexError, match=r"cross_entropy: index 18446744073709551615 is out of range"):
        vg.cross_entropy(x, np.array([0, 2 ** 64 - 1], np.uint64))


def test_an_oversized_python_int_is_a_value_error_naming_the_op():
    with pytest.raises(ValueError, match=r"multiply: the Python int 1000.* is too large to convert to float64"):
        vg.TensorNode(np.ones(2)) * 10 ** 400


def test_an_oversized_shape_is_a_value_error_naming_reshape():
    with pytest.raises(ValueError, match=r"reshape: shape = 18446744073709551616 does not fit in 64 bits"):
        vg.TensorNode(np.ones(2)).reshape(2 ** 64, 1)


# ---- 12, 13: accumulation from a leaf; optimiser scalars in double ----

def test_backward_from_a_leaf_adds_to_its_gradient():
    x = vg.TensorNode(np.array(2.0))
    (x * 3).backward()
    x.backward()
    assert x.grad == 4.0


@pytest.mark.parametrize("make", [lambda p: vg.optim.Adam([p], lr=0.001), lambda p: vg.optim.RMSprop([p], lr=0.01)],
                         ids=["Adam", "RMSprop"])
def test_float32_optimiser_states_use_hyperparameters_rounded_once(make):
    p = vg.TensorNode(np.zeros(1, np.float32))
    opt = make(p)
    p.grad = np.array([3.0], np.float32)
    opt.step()
    state = opt.state[0]
    square = state["exp_avg_sq"] if "exp_avg_sq" in state else state["square_avg"]
    one_minus = np.float32(1 - (0.999 if "exp_avg_sq" in state else 0.99))
    assert square[0] == (one_minus * np.float32(3.0)) * np.float32(3.0)  # PyTorch's addcmul: (value * g) * g


# ---- 16: anomaly mode in a checkout named tapegrad ----

def test_detect_anomaly_keeps_the_users_line_when_the_script_lives_in_a_folder_named_tapegrad(tmp_path):
    folder = tmp_path / "tapegrad"
    folder.mkdir()
    script = folder / "script.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, tapegrad as vg
        x = vg.TensorNode(np.array([0.0, 1.0]))
        with vg.detect_anomaly():
            loss = vg.log(x).sum()
            try:
                loss.backward()
            except RuntimeError as e:
                print(e)
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(vg.__file__).resolve().parent.parent))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                            cwd=folder)
    assert "created at" in result.stdout, result.stderr
    assert "script.py" in result.stdout and "loss = vg.log(x).sum()" in result.stdout
