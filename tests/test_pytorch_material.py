"""The course's PyTorch material (issue 14) as acceptance tests: lab 3, lab 4, the homework and the
60-minute blitz, each port in tests/material/ written once against PyTorch's names and run twice,
with ``import torch`` and with ``import tapegrad as torch`` (``lib`` below).

- ``test_<port>_...[torch|tapegrad]``: what the material shows (values the course states, shapes,
  errors, files) holds on each library. The torch side skips when torch is not installed.
- ``test_tapegrad_gives_pytorchs_numbers[<port>]``: the port on tapegrad gives torch's numbers for
  what must agree. Random draws differ between the libraries, so everything compared starts from
  the same numpy data, or from torch's initial weights copied into the tapegrad run.

A name tapegrad does not provide yet (``tapegrad.autograd.Function`` ...) becomes a stand-in that
raises ImportError where a port first uses it, so each test fails on its own first missing piece.
"""

import importlib
import math
import os
import re
import types
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from helpers import skip_if_sanitized
from material import blitz_autograd, blitz_cifar, blitz_nn, blitz_tensors, homework, lab3, lab4


# ---------------------------------------------------------------------------------------------
# The two libraries
# ---------------------------------------------------------------------------------------------

class Missing:
    """Stands for a name a library does not provide: calling it, subclassing it or reading an
    attribute raises the ImportError that importing it gave."""

    def __init__(self, name, error):
        self._name = name
        self._error = error

    def _fail(self, *args, **kwargs):
        raise ImportError(f"{self._name} is not importable: {self._error!r}") from self._error

    __call__ = _fail

    def __mro_entries__(self, bases):
        self._fail()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        self._fail()

    def __repr__(self):
        return f"<missing {self._name}>"


def _import(module, attr=None):
    """``import module`` or ``from module import attr``, or a Missing stand-in."""
    name = module if attr is None else f"{module}.{attr}"
    try:
        found = importlib.import_module(module)
        return found if attr is None else getattr(found, attr)
    except (ImportError, AttributeError) as e:
        return Missing(name, e)


def load(name):
    """The namespace a port runs on: torch, nn, F, optim, Function, Tensor, DataLoader,
    TensorDataset, imported the way the course's code imports them."""
    if name == "torch":
        pytest.importorskip("torch")
    top = importlib.import_module(name)
    data = f"{name}.utils.data"
    return types.SimpleNamespace(
        name=name, torch=top, nn=_import(f"{name}.nn"), F=_import(f"{name}.nn.functional"),
        optim=_import(f"{name}.optim"), Function=_import(f"{name}.autograd", "Function"),
        Tensor=_import(name, "Tensor"), DataLoader=_import(data, "DataLoader"),
        TensorDataset=_import(data, "TensorDataset"))


@pytest.fixture(scope="module", autouse=True)
def torch_on_one_thread():
    """torch's thread pool on this small shared machine makes tiny ops 10-100x slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["torch", "tapegrad"])
def lib(request):
    return load(request.param)


@pytest.fixture
def torch_lib():
    return load("torch")


@pytest.fixture
def tapegrad_lib():
    return load("tapegrad")


def rss_bytes():
    """This process's resident set size (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# Lab 3
# ---------------------------------------------------------------------------------------------

def test_lab3_function_has_value_0_and_gradient_minus6_6_at_6_6_both_ways_of_applying_it(lib):
    r = lab3.value_and_gradient(lib)
    assert r["value"] == 0.0 and r["grad"] == [-6.0, 6.0]
    assert r["instance_value"] == 0.0 and r["instance_grad"] == [-6.0, 6.0]
    assert r["has_grad_fn"]


def test_lab3_descent_with_steps_half_third_quarter_goes_6_6_then_9_3_then_8_4_and_stays(lib):
    path = lab3.descent_path(lib)
    np.testing.assert_allclose(path, [[6, 6], [9, 3], [8, 4], [8, 4]], atol=1e-6)


@pytest.mark.parametrize("clear", ["zero", "none"])
def test_lab3_constant_step_optimizer_stops_early_near_the_minimum_8_4(lib, clear):
    r = lab3.minimize_with_optimizer(lib, lr=0.1, tol=1e-4, clear=clear)
    assert 5 < r["iterations"] < 1000
    np.testing.assert_allclose(r["x"], [8, 4], atol=0.02)
    assert abs(r["history"][-1] - (-12)) < 1e-3
    assert all(b <= a for a, b in zip(r["history"], r["history"][1:]))


def five_point_weights(dtype=np.float64, seed=3):
    """[w1 (2, 2), b1 (2,), w2 (2,), b2 (1,)] standard normal, as numpy arrays."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in [(2, 2), (2,), (2,), (1,)]]


def test_lab3_five_point_gradients_by_hand_by_autograd_and_by_differences_agree(lib):
    r = lab3.three_gradients(lib, five_point_weights())
    for hand, auto, fd in zip(r["hand"], r["autograd"], r["fd"]):
        assert hand.dtype == auto.dtype == fd.dtype == np.float64
        assert hand.shape == auto.shape == fd.shape
        np.testing.assert_allclose(hand, auto, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(fd, auto, rtol=0, atol=1e-8)


def test_lab3_ten_restarts_of_100_steps_find_a_loss_below_the_constant_predictors(lib):
    r = lab3.random_restarts(lib)
    assert len(r["losses"]) == 10 and all(math.isfinite(v) for v in r["losses"])
    assert r["best_loss"] == min(r["losses"])
    # Always answering 0.2 costs -(0.2 ln 0.2 + 0.8 ln 0.8) = 0.500; the best restart learns more.
    assert r["best_loss"] < 0.45
    assert [tuple(p.shape) for p in r["best_params"]] == [(2, 2), (2,), (2,), (1,)]


def test_lab3_decision_boundary_grid_goes_to_numpy_and_to_a_matplotlib_file(lib, tmp_path):
    pytest.importorskip("matplotlib")
    history, params = lab3.train_from(lib, five_point_weights(np.float32))
    x, y = lab3.five_points(lib)
    path = tmp_path / "boundary.png"
    as_array, as_numpy = lab3.decision_boundary(lib, params, path, history=history)
    assert path.stat().st_size > 1000
    assert as_array.shape == as_numpy.shape == (50, 50)
    assert as_array.dtype == as_numpy.dtype == np.float32
    np.testing.assert_array_equal(as_array, as_numpy)
    assert ((as_array > 0) & (as_array < 1)).all()
    # Row i of the "ij" grid is x1 = linspace(-2, 2, 50)[i]: the corner (-2, -2) is [0, 0].
    with lib.torch.no_grad():
        corner = lab3.predict(lib, lib.torch.tensor([[-2.0, -2.0], [2.0, -2.0]]), *params)
    np.testing.assert_allclose(as_array[[0, -1], 0], corner.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Lab 4
# ---------------------------------------------------------------------------------------------

def test_lab4_hand_backprop_matches_autograd_in_shape_and_value(lib):
    lib.torch.manual_seed(0)
    weights, biases = lab4.init_network(lib, [2, 5, 3, 1])
    assert all(not w.requires_grad for w in weights + biases)
    assert all(float(abs(w).max()) <= math.sqrt(6 / (w.shape[0] + w.shape[1])) for w in weights)
    assert all(b.tolist() == [0.0] * b.shape[0] for b in biases)
    r = lab4.compare_with_autograd(lib, weights, biases)
    assert r["shapes"] == [(2, 5), (5, 3), (3, 1), (5,), (3,), (1,)]
    for hand, auto, shape in zip(r["hand"], r["autograd"], r["shapes"]):
        assert hand.shape == auto.shape == shape
        np.testing.assert_allclose(hand, auto, rtol=1e-5, atol=1e-7)


@skip_if_sanitized
def test_lab4_2500_epochs_update_the_weights_in_place_lower_the_loss_and_keep_memory_flat(lib):
    lib.torch.manual_seed(0)
    weights, biases = lab4.init_network(lib, [2, 5, 3, 1])
    same_objects = list(weights) + list(biases)
    rss = {}

    def measure(epoch):
        if epoch in (499, 2499):
            rss[epoch] = rss_bytes()

    losses = lab4.fit(lib, weights, biases, epochs=2500, lr=0.25, after_epoch=measure)
    assert all(a is b for a, b in zip(weights + biases, same_objects))
    assert all(not w.requires_grad and w.grad_fn is None for w in weights + biases)
    assert len(losses) == 2500 and losses[-1] < 0.01 < losses[0]
    assert np.all(np.diff(losses) <= 1e-9)
    # A graph chained across epochs costs about 100 kB an epoch; allocator noise is far below.
    assert rss[2499] - rss[499] < 32 * 2 ** 20


# ---------------------------------------------------------------------------------------------
# Homework
# ---------------------------------------------------------------------------------------------

def test_homework_tensor_basics_dtypes_grad_fn_leaves_and_data_updates(lib):
    seen = homework.tensor_basics(lib)
    seen.pop("int_requires_grad_message", None)
    w_after = seen.pop("w_after_update")
    assert seen == {
        "int_requires_grad": "RuntimeError", "int_dtype_is_long": True,
        "float_dtype_is_float32": True, "float_requires_grad": True,
        "leaf_grad_fn_is_none": True, "result_has_grad_fn": True, "a_is_leaf": True,
        "c_is_leaf": False, "grad_before_backward": None, "a_grad": [3.0, 4.0],
        "b_grad": [1.0, 2.0], "w_still_leaf": True}
    np.testing.assert_allclose(w_after, [0.8, 1.6], rtol=1e-6)


def test_homework_changing_exps_output_in_place_makes_backward_raise_about_versions(lib):
    message = homework.version_experiment(lib)
    assert message is not None, "l.backward() did not raise after y /= 2"
    assert "version" in message


@pytest.mark.parametrize("hidden", [5, 10, 100, 500])
def test_homework_finite_differences_match_analytic_gradients_with_error_of_order_eps2(lib, hidden):
    r = homework.gradient_table(lib, hidden)
    assert [g.shape for g in r["analytic"]] == [(3, hidden), (hidden,), (hidden,), (1,)]
    for err2, err3, err5 in zip(r["errors"][1e-2], r["errors"][1e-3], r["errors"][1e-5]):
        assert err3 < 1e-6 and err5 < 1e-9 and err5 < err3
        # Truncation error ~ eps^2: ten times smaller eps, a hundred times smaller error.
        assert 30 < err2 / err3 < 300


# ---------------------------------------------------------------------------------------------
# The blitz
# ---------------------------------------------------------------------------------------------

def test_blitz_tensors_tutorial_prints_what_pytorch_prints(lib):
    seen = blitz_tensors.tensors_tutorial(lib)
    ones = [[1.0, 0.0, 1.0, 1.0]] * 4
    assert seen == {
        "x_data": [[1, 2], [3, 4]], "x_data_is_long": True,
        "x_np_after_array_change": [[10, 2], [3, 40]],
        "np_array_after_tensor_change": [[10, 2], [3, 40]],
        "x_ones": [[1, 1], [1, 1]], "x_ones_is_long": True, "x_rand_shape": (2, 2),
        "x_rand_is_float": True, "x_rand_in_unit_interval": True,
        "factory_shapes": [(2, 3)] * 3, "ones_and_zeros": [[[1.0] * 3] * 2, [[0.0] * 3] * 2],
        "shape": (3, 4), "shape_equals_tuple": True, "dtype_is_float32": True,
        "first_row": [1.0] * 4, "first_column": [1.0] * 4, "last_column": [1.0] * 4,
        "after_column_zeroed": ones, "cat_shape": (4, 12), "cat": [row * 3 for row in ones],
        "matmul": [[3.0] * 4] * 4, "matmul_agrees": True, "mul": ones, "mul_agrees": True,
        "agg_item": 12.0, "agg_item_type": "float",
        "after_add_": [[6.0, 5.0, 6.0, 6.0]] * 4,
        "numpy_view_after_add_": [2.0] * 5, "from_numpy_after_np_add": [2.0] * 5}


def test_blitz_autograd_backward_with_a_gradient_gives_9a2_and_minus_2b(lib):
    assert blitz_autograd.vector_backward(lib) == {
        "a_grad": [36.0, 81.0], "b_grad": [-12.0, -8.0],
        "a_check": [True, True], "b_check": [True, True]}


def test_blitz_autograd_a_result_requires_grad_only_if_an_input_does(lib):
    assert blitz_autograd.requires_grad_flow(lib) == {"a": False, "b": True}


def test_blitz_autograd_frozen_parameters_get_no_gradient_and_only_the_new_fc_trains(lib):
    r = blitz_autograd.frozen_model(lib)
    names = ["features.0.weight", "features.0.bias", "fc.weight", "fc.bias"]
    assert r["names"] == names
    trains = {n: n.startswith("fc.") for n in names}
    assert r["requires_grad"] == trains and r["has_grad"] == trains and r["changed"] == trains
    assert r["out_shape"] == (3, 10)


LENET_SHAPES = {"conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,), "conv2.weight": (16, 6, 5, 5),
                "conv2.bias": (16,), "fc1.weight": (120, 400), "fc1.bias": (120,),
                "fc2.weight": (84, 120), "fc2.bias": (84,), "fc3.weight": (10, 84),
                "fc3.bias": (10,)}


def test_blitz_lenet_has_pytorchs_parameters_and_trains_by_hand_and_with_sgd(lib, capsys):
    lib.torch.manual_seed(0)
    seen = blitz_nn.lenet_tutorial(lib)
    assert str(seen["printed"]) in capsys.readouterr().out
    for layer in ["conv1", "conv2", "fc1", "fc2", "fc3", "Conv2d", "Linear"]:
        assert layer in seen["printed"]
    assert seen["n_params"] == 10 and seen["conv1_weight_size"] == (6, 1, 5, 5)
    assert {k: v.shape for k, v in seen["initial_state"].items()} == LENET_SHAPES
    assert seen["out"].shape == (1, 10)
    assert {k: v.shape for k, v in seen["grads"].items()} == LENET_SHAPES
    assert seen["loss_has_grad_fn"] and seen["grad_fn_has_next"]
    assert seen["bias_grad_before"] is None and seen["bias_grad_after"].shape == (6,)
    np.testing.assert_allclose(
        seen["state_after_manual_update"]["conv1.bias"],
        seen["initial_state"]["conv1.bias"] - 0.01 * seen["bias_grad_after"], rtol=1e-6, atol=1e-7)
    assert seen["sgd_losses"][-1] < seen["sgd_losses"][0]


def test_blitz_cifar_classifier_trains_two_epochs_saves_loads_and_counts_accuracy(lib, tmp_path,
                                                                                   capsys):
    lib.torch.manual_seed(0)
    path = str(tmp_path / "cifar_net.pth")
    seen = blitz_cifar.cifar_tutorial(lib, blitz_cifar.random_cifar(), path)
    out = capsys.readouterr().out
    # 10 mini-batches of 4 per epoch, a line every 5: two lines an epoch.
    assert len(seen["printed"]) == 4 and all(line in out for line in seen["printed"])
    assert all(re.fullmatch(r"\[[12], +(5|10)\] loss: \d+\.\d{3}", line) for line in seen["printed"])
    assert "Finished Training" in out
    assert len(seen["batch_losses"]) == 20 and all(math.isfinite(v) for v in seen["batch_losses"])
    assert os.path.exists(path)
    for k, v in seen["trained_state"].items():
        np.testing.assert_array_equal(seen["loaded_state"][k], v)
        assert not np.array_equal(seen["initial_state"][k], v), k
    assert len(seen["ground_truth"].split()) == len(seen["predicted"].split()) == 4
    assert set(seen["predicted"].split()) <= set(blitz_cifar.CLASSES)
    assert seen["total"] == 20 and seen["test_outputs"].shape == (20, 10)
    assert seen["total_pred"] == {c: 2 for c in blitz_cifar.CLASSES}
    predicted = seen["test_outputs"].argmax(axis=1)
    assert seen["correct"] == int((predicted == blitz_cifar.random_cifar()[3]).sum())
    assert seen["accuracy"] == 100 * seen["correct"] // 20
    assert sum(a * 2 / 100 for a in seen["class_accuracy"].values()) == pytest.approx(seen["correct"])


# ---------------------------------------------------------------------------------------------
# tapegrad against PyTorch
# ---------------------------------------------------------------------------------------------

def assert_same(ours, theirs, rtol, atol, ignore=(), where="result"):
    """ours == theirs through dicts, lists and tuples; numbers and arrays to rtol/atol."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        keys = set(theirs) - set(ignore)
        assert set(ours) - set(ignore) == keys, where
        for k in keys:
            assert_same(ours[k], theirs[k], rtol, atol, ignore, f"{where}[{k!r}]")
    elif isinstance(theirs, (list, tuple)) and not all(isinstance(v, (int, float)) for v in theirs):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, rtol, atol, ignore, f"{where}[{i}]")
    elif isinstance(theirs, (bool, str, type(None))):
        assert ours == theirs, where
    else:
        theirs = np.asarray(theirs)
        ours = np.asarray(ours)
        assert ours.shape == theirs.shape, where
        if theirs.dtype.kind == "f":
            assert ours.dtype == theirs.dtype, f"{where}: {ours.dtype} != {theirs.dtype}"
            np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=where)
        else:
            np.testing.assert_array_equal(ours, theirs, err_msg=where)


@dataclass
class Row:
    """A port to compare: run(lib, torch_result, tmp_path) -> result, the torch run first (its
    torch_result is None), then tapegrad's, which may start from torch's weights."""
    run: Callable
    rtol: float = 0.0
    atol: float = 0.0
    ignore: tuple = field(default=())


LENET_INPUTS = {k: np.random.default_rng(5).standard_normal(s).astype(np.float32)
                for k, s in [("image", (1, 1, 32, 32)), ("out_grad", (1, 10)), ("target", (10,))]}
LAB4_WEIGHTS = [((np.random.default_rng(1).random((i, o)) * 2 - 1) * np.sqrt(6 / (i + o)))
                .astype(np.float32) for i, o in [(2, 5), (5, 3), (3, 1)]]


def _cifar(lib, ref, tmp_path):
    state = None if ref is None else ref["initial_state"]
    return blitz_cifar.cifar_tutorial(lib, blitz_cifar.random_cifar(),
                                      str(tmp_path / f"{lib.name}_cifar_net.pth"),
                                      state=state, shuffle=False)


COMPARED = {
    "lab3_value_and_gradient": Row(lambda lib, ref, tmp: lab3.value_and_gradient(lib)),
    "lab3_descent_path": Row(lambda lib, ref, tmp: lab3.descent_path(lib), rtol=1e-6),
    "lab3_three_gradients": Row(lambda lib, ref, tmp: lab3.three_gradients(
        lib, five_point_weights()), rtol=1e-9, atol=5e-9),
    "lab3_training_from_the_same_weights": Row(lambda lib, ref, tmp: [float(h) for h in lab3.train_from(
        lib, five_point_weights(np.float32))[0]], rtol=1e-4, atol=1e-5),
    "lab3_decision_boundary": Row(lambda lib, ref, tmp: lab3.decision_boundary(
        lib, lab3.train_from(lib, five_point_weights(np.float32))[1], tmp / f"{lib.name}.png"),
        rtol=1e-4, atol=1e-5),
    "lab4_gradients": Row(lambda lib, ref, tmp: lab4.gradients_from(lib, LAB4_WEIGHTS),
                          rtol=1e-5, atol=1e-7),
    "lab4_training": Row(lambda lib, ref, tmp: lab4.fit_from(lib, LAB4_WEIGHTS),
                         rtol=1e-4, atol=1e-6),
    "homework_tensor_basics": Row(lambda lib, ref, tmp: homework.tensor_basics(lib), rtol=1e-7,
                                  ignore=("int_requires_grad_message",)),
    **{f"homework_gradient_table_{h}": Row(
        lambda lib, ref, tmp, h=h: homework.gradient_table(lib, h), rtol=1e-9, atol=1e-9,
        ignore=("errors",)) for h in [5, 10, 100, 500]},
    "blitz_tensors": Row(lambda lib, ref, tmp: blitz_tensors.tensors_tutorial(lib)),
    "blitz_autograd_vector_backward": Row(lambda lib, ref, tmp: blitz_autograd.vector_backward(lib)),
    "blitz_autograd_requires_grad": Row(lambda lib, ref, tmp: blitz_autograd.requires_grad_flow(lib)),
    "blitz_autograd_frozen_model": Row(lambda lib, ref, tmp: blitz_autograd.frozen_model(lib)),
    "blitz_lenet": Row(lambda lib, ref, tmp: blitz_nn.lenet_tutorial(
        lib, state=None if ref is None else ref["initial_state"], inputs=LENET_INPUTS),
        rtol=1e-4, atol=1e-5, ignore=("printed",)),
    "blitz_cifar": Row(_cifar, rtol=1e-4, atol=1e-5, ignore=("printed",)),
}


@pytest.mark.parametrize("port", COMPARED)
def test_tapegrad_gives_pytorchs_numbers(port, torch_lib, tapegrad_lib, tmp_path):
    row = COMPARED[port]
    theirs = row.run(torch_lib, None, tmp_path)
    ours = row.run(tapegrad_lib, theirs, tmp_path)
    assert_same(ours, theirs, row.rtol, row.atol, row.ignore)


def test_tapegrad_optimizer_takes_pytorchs_steps_and_stops_within_one_iteration_of_it(torch_lib,
                                                                                     tapegrad_lib):
    # float32 rounding of lr * grad may differ in the last bit, which can move the early stop by one.
    theirs = lab3.minimize_with_optimizer(torch_lib)
    ours = lab3.minimize_with_optimizer(tapegrad_lib)
    assert abs(ours["iterations"] - theirs["iterations"]) <= 1
    n = min(len(ours["history"]), len(theirs["history"]))
    np.testing.assert_allclose(ours["history"][:n], theirs["history"][:n], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours["x"], theirs["x"], atol=2e-3)
