"""The PyTorch dialect's nn, optim, utils.data, save/load and copies: tapegrad.nn's modules and
functions against torch's on identical weights (a torch state_dict loaded into ours) in float32 and
float64 (outputs, losses, gradients, optimiser steps, state_dict keys and shapes, reprs), and the
Module, optimiser, data-loader and checkpoint behaviour PyTorch code relies on. The comparisons
with torch skip where torch is not installed."""

import collections
import copy
import io
import math
import os
import pickle

import numpy as np
import pytest

import tapegrad as vg
import tapegrad.nn as nn
import tapegrad.nn.functional as F
import tapegrad.optim as optim
from tapegrad.utils.data import DataLoader, Dataset, TensorDataset, default_collate, random_split

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)  # torch's initial weights, which the comparisons copy into ours
    return torch


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    """manual_seed sets process-wide state: every test starts and ends without it."""
    vg.init._generator = None
    yield
    vg.init._generator = None


def tensor(array, requires_grad=False):
    """A PyTorch-dialect tensor of array (a plain leaf on an engine without the dialect)."""
    make = getattr(vg, "tensor", None)
    if make is None:
        return vg.TensorNode(np.asarray(array), requires_grad=requires_grad)
    return make(np.asarray(array), requires_grad=requires_grad)


def value(t):
    """The numpy value of one of our tensors (or a gradient, which may be an array)."""
    return t.value if isinstance(t, vg.TensorNode) else np.asarray(t)


def tolerance(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def torch_dtype(torch, dtype):
    return torch.float32 if dtype == np.float32 else torch.float64


def pair(torch, ours, theirs, dtype):
    """Both in dtype, and theirs' state (as numpy arrays) loaded into ours."""
    theirs = theirs.to(torch_dtype(torch, dtype))
    ours = ours.to(dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def same_forward_and_backward(torch, ours, theirs, x, dtype, *, target=None):
    """Run both on x (and upstream gradients), comparing outputs, input gradients and parameter
    gradients."""
    tol = tolerance(dtype)
    mine, t = tensor(x.astype(dtype), requires_grad=True), torch.tensor(x.astype(dtype), requires_grad=True)
    out, expected = ours(mine), theirs(t)
    np.testing.assert_allclose(value(out), expected.detach().numpy(), **tol)
    upstream = np.random.default_rng(99).standard_normal(out.shape).astype(dtype)
    vg.sum(out * upstream).backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(value(mine.grad), t.grad.numpy(), **tol)
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(value(p.grad), grads[name].grad.numpy(), err_msg=name, **tol)


# ---- the blitz's network, written once for both libraries ----

def blitz_net(nn_module, functional, flatten):
    """The 60-minute blitz's CIFAR-10 classifier, as its tutorial writes it."""

    class Net(nn_module.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn_module.Conv2d(3, 6, 5)
            self.pool = nn_module.MaxPool2d(2, 2)
            self.conv2 = nn_module.Conv2d(6, 16, 5)
            self.fc1 = nn_module.Linear(16 * 5 * 5, 120)
            self.fc2 = nn_module.Linear(120, 84)
            self.fc3 = nn_module.Linear(84, 10)

        def forward(self, x):
            x = self.pool(functional.relu(self.conv1(x)))
            x = self.pool(functional.relu(self.conv2(x)))
            x = flatten(x, 1)
            x = functional.relu(self.fc1(x))
            x = functional.relu(self.fc2(x))
            return self.fc3(x)

    return Net()


def nets(torch):
    return blitz_net(nn, F, vg.flatten), blitz_net(torch.nn, torch.nn.functional, torch.flatten)


def test_the_blitz_net_prints_and_names_its_state_as_torchs(torch):
    ours, theirs = nets(torch)
    assert repr(ours) == repr(theirs)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert all(v.dtype == np.float32 for v in ours.state_dict().values())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make_optimiser", [
    lambda o, params: o.SGD(params, lr=0.001, momentum=0.9),
    lambda o, params: o.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-3),
    # eps 1e-5 for the adaptive ones: with the default 1e-8 a gradient near 0 makes g / sqrt(average of g**2)
    # ill-conditioned, and the rounding of that gradient (in either library) decides the step's size
    lambda o, params: o.Adam(params, lr=1e-3, eps=1e-5),
    lambda o, params: o.AdamW(params, lr=1e-3, weight_decay=0.1, eps=1e-5),
    lambda o, params: o.RMSprop(params, lr=1e-3, momentum=0.5, eps=1e-5),
], ids=["sgd-momentum", "sgd-nesterov", "adam", "adamw", "rmsprop"])
def test_the_blitz_training_loop_matches_torch_step_by_step(torch, dtype, make_optimiser):
    ours, theirs = pair(torch, *nets(torch), dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 32, 32)).astype(dtype)
    labels = rng.integers(0, 10, 8)
    criterion, tcriterion = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    optimizer = make_optimiser(optim, ours.parameters())  # a generator, as the blitz passes it
    toptimizer = make_optimiser(torch.optim, theirs.parameters())
    tol = tolerance(dtype)
    for step in range(3):
        optimizer.zero_grad()
        toptimizer.zero_grad()
        loss = criterion(ours(tensor(x)), tensor(labels))
        tloss = tcriterion(theirs(torch.tensor(x)), torch.tensor(labels))
        loss.backward()
        tloss.backward()
        np.testing.assert_allclose(loss.item(), tloss.item(), **tol)
        grads = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(value(p.grad), grads[name].grad.numpy(), err_msg=f"{name} at step {step}",
                                       rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)
        optimizer.step()
        toptimizer.step()
    expected = theirs.state_dict()
    for name, v in ours.state_dict().items():
        np.testing.assert_allclose(value(v), expected[name].numpy(), err_msg=name,
                                   rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


def test_a_torch_state_dict_of_tensors_loads_as_well_as_one_of_arrays(torch):
    ours, theirs = nets(torch)
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(value(ours(tensor(x))), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


# ---- layers against torch's ----

LAYERS = [
    # id, make (from an nn module namespace), input shape
    ("linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("linear-no-bias", lambda m: m.Linear(5, 3, bias=False), (4, 5)),
    ("linear-3d-input", lambda m: m.Linear(5, 3), (2, 4, 5)),
    ("linear-1d-input", lambda m: m.Linear(5, 3), (5,)),
    ("conv", lambda m: m.Conv2d(3, 4, 3), (2, 3, 7, 6)),
    ("conv-strided-padded", lambda m: m.Conv2d(2, 4, (3, 2), stride=2, padding=1, bias=False), (2, 2, 7, 8)),
    ("conv-groups-dilation", lambda m: m.Conv2d(4, 6, 3, dilation=2, groups=2), (2, 4, 9, 9)),
    ("conv-same", lambda m: m.Conv2d(2, 3, 4, padding="same"), (1, 2, 6, 6)),
    ("conv-unbatched", lambda m: m.Conv2d(2, 3, 3), (2, 5, 5)),
    ("batchnorm1d", lambda m: m.BatchNorm1d(4), (6, 4)),
    ("batchnorm1d-3d", lambda m: m.BatchNorm1d(3, momentum=None), (4, 3, 5)),
    ("batchnorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 6)),
    ("batchnorm2d-no-affine", lambda m: m.BatchNorm2d(3, affine=False), (4, 3, 5, 6)),
    ("maxpool", lambda m: m.MaxPool2d(2), (2, 3, 6, 6)),
    ("maxpool-overlapping", lambda m: m.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    ("avgpool", lambda m: m.AvgPool2d(2), (2, 3, 6, 6)),
    ("adaptive-avgpool", lambda m: m.AdaptiveAvgPool2d((2, 3)), (2, 3, 7, 8)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4, 5)),
    ("relu", lambda m: m.ReLU(), (4, 5)),
    ("sigmoid", lambda m: m.Sigmoid(), (4, 5)),
    ("tanh", lambda m: m.Tanh(), (4, 5)),
    ("softmax-dim0", lambda m: m.Softmax(dim=0), (4, 5)),
    ("softmax-dim1", lambda m: m.Softmax(dim=1), (4, 5)),
    ("log-softmax", lambda m: m.LogSoftmax(dim=1), (4, 5)),
    ("leaky-relu", lambda m: m.LeakyReLU(0.2), (4, 5)),
    ("softplus", lambda m: m.Softplus(), (4, 5)),
    ("softplus-beta-threshold", lambda m: m.Softplus(beta=2.0, threshold=1.0), (4, 5)),
    ("silu", lambda m: m.SiLU(), (4, 5)),
    ("identity", lambda m: m.Identity(), (4, 5)),
    ("dropout-in-eval", lambda m: m.Dropout(0.5).eval(), (4, 5)),
    ("sequential", lambda m: m.Sequential(m.Linear(5, 4), m.Tanh(), m.Linear(4, 2)), (3, 5)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make, shape", [row[1:] for row in LAYERS], ids=[row[0] for row in LAYERS])
def test_layer_outputs_and_gradients_match_torch_on_the_same_weights(torch, make, shape, dtype):
    ours, theirs = pair(torch, make(nn), make(torch.nn), dtype)
    x = (np.random.default_rng(3).standard_normal(shape) * 3).astype(dtype)
    same_forward_and_backward(torch, ours, theirs, x, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("make, shape", [
    (lambda m: m.BatchNorm1d(4, momentum=0.3), (6, 4)),
    (lambda m: m.BatchNorm1d(4, momentum=None), (6, 4)),
    (lambda m: m.BatchNorm2d(3), (4, 3, 5, 6)),
], ids=["1d", "1d-cumulative", "2d"])
def test_batchnorm_running_statistics_and_evaluation_match_torch(torch, make, shape, dtype):
    ours, theirs = pair(torch, make(nn), make(torch.nn), dtype)
    rng = np.random.default_rng(4)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        ours(tensor(x))
        theirs(torch.tensor(x))
    tol = tolerance(dtype)
    expected = theirs.state_dict()
    assert list(ours.state_dict()) == list(expected)
    for name, v in ours.state_dict().items():
        np.testing.assert_allclose(value(v), expected[name].numpy(), err_msg=name, **tol)
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_allclose(value(ours(tensor(x))), theirs(torch.tensor(x)).detach().numpy(), **tol)


def test_layer_reprs_are_torchs(torch):
    for make in [row[1] for row in LAYERS] + [
        lambda m: m.Conv2d(3, 6, 3, padding=1, bias=False, stride=2, groups=3),
        lambda m: m.ReLU(inplace=True), lambda m: m.Dropout(0.25), lambda m: m.BatchNorm1d(3, affine=False),
        lambda m: m.CrossEntropyLoss(), lambda m: m.MSELoss(), lambda m: m.BCELoss(),
        lambda m: m.ModuleList([m.ReLU(), m.Linear(2, 3)]), lambda m: m.ModuleDict({"a": m.Tanh()}),
        lambda m: m.Sequential(collections.OrderedDict([("conv", m.Conv2d(1, 2, 3)), ("act", m.ReLU())])),
    ]:
        assert repr(make(nn)) == repr(make(torch.nn))


# ---- losses and functions against torch's ----

def class_targets(rng, n=6, classes=4):
    return rng.integers(0, classes, n)


LOSSES = [
    # id, (module maker, functional name, kwargs), input maker, target maker
    ("cross-entropy", "CrossEntropyLoss", "cross_entropy", {}, lambda r: r.standard_normal((6, 4)) * 2, class_targets),
    ("cross-entropy-weight", "CrossEntropyLoss", "cross_entropy", {"weight": [1.0, 2.0, 0.5, 3.0]},
     lambda r: r.standard_normal((6, 4)), class_targets),
    ("cross-entropy-ignore", "CrossEntropyLoss", "cross_entropy", {"ignore_index": 1},
     lambda r: r.standard_normal((6, 4)), lambda r: np.array([0, 1, 2, 1, 3, 0])),
    ("cross-entropy-smoothing", "CrossEntropyLoss", "cross_entropy",
     {"label_smoothing": 0.2, "weight": [1.0, 2.0, 0.5, 3.0]}, lambda r: r.standard_normal((6, 4)), class_targets),
    ("cross-entropy-probabilities", "CrossEntropyLoss", "cross_entropy", {"label_smoothing": 0.1},
     lambda r: r.standard_normal((6, 4)), lambda r: r.dirichlet(np.ones(4), 6)),
    ("cross-entropy-unbatched", "CrossEntropyLoss", "cross_entropy", {},
     lambda r: r.standard_normal(4), lambda r: np.array(2)),
    ("nll", "NLLLoss", "nll_loss", {}, lambda r: r.standard_normal((6, 4)), class_targets),
    ("nll-weight-ignore", "NLLLoss", "nll_loss", {"weight": [1.0, 2.0, 0.5, 3.0], "ignore_index": 0},
     lambda r: r.standard_normal((6, 4)), class_targets),
    ("mse", "MSELoss", "mse_loss", {}, lambda r: r.standard_normal((5, 3)), lambda r: r.standard_normal((5, 3))),
    ("l1", "L1Loss", "l1_loss", {}, lambda r: r.standard_normal((5, 3)), lambda r: r.standard_normal((5, 3))),
    ("bce", "BCELoss", "binary_cross_entropy", {}, lambda r: r.uniform(0.05, 0.95, (5, 3)),
     lambda r: r.uniform(0, 1, (5, 3))),
    ("bce-weight", "BCELoss", "binary_cross_entropy", {"weight": [[1.0, 0.5, 2.0]]},
     lambda r: r.uniform(0.05, 0.95, (5, 3)), lambda r: r.uniform(0, 1, (5, 3))),
    ("bce-logits", "BCEWithLogitsLoss", "binary_cross_entropy_with_logits", {}, lambda r: r.standard_normal((5, 3)) * 3,
     lambda r: r.uniform(0, 1, (5, 3))),
    ("bce-logits-pos-weight", "BCEWithLogitsLoss", "binary_cross_entropy_with_logits",
     {"pos_weight": [1.0, 3.0, 0.5], "weight": [[2.0, 1.0, 1.0]]}, lambda r: r.standard_normal((5, 3)) * 3,
     lambda r: r.uniform(0, 1, (5, 3))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("module, function, kwargs, make_input, make_target", [row[1:] for row in LOSSES],
                         ids=[row[0] for row in LOSSES])
def test_losses_match_torch_as_modules_and_functions(torch, module, function, kwargs, make_input, make_target,
                                                     reduction, dtype):
    rng = np.random.default_rng(5)
    x, target = make_input(rng).astype(dtype), make_target(rng)
    if target.dtype.kind == "f":
        target = target.astype(dtype)
    ours_kw = dict(kwargs, reduction=reduction)
    theirs_kw = {k: (torch.tensor(np.asarray(v, dtype)) if isinstance(v, list) else v) for k, v in ours_kw.items()}
    tol = tolerance(dtype)
    for make_ours, make_theirs in [
        (lambda: getattr(nn, module)(**ours_kw), lambda: getattr(torch.nn, module)(**theirs_kw)),
        (lambda: lambda a, b: getattr(F, function)(a, b, **ours_kw),
         lambda: lambda a, b: getattr(torch.nn.functional, function)(a, b, **theirs_kw)),
    ]:
        mine, t = tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        loss, expected = make_ours()(mine, tensor(target)), make_theirs()(t, torch.tensor(target))
        assert loss.shape == tuple(expected.shape)
        np.testing.assert_allclose(value(loss), expected.detach().numpy(), **tol)
        upstream = np.random.default_rng(6).standard_normal(loss.shape).astype(dtype)
        vg.sum(loss * upstream).backward()
        (expected * torch.tensor(upstream)).sum().backward()
        np.testing.assert_allclose(value(mine.grad), t.grad.numpy(), **tol)


FUNCTIONS = [
    # id, call (with F being either library's functional), input shape
    ("relu", lambda f, x: f.relu(x), (3, 4)),
    ("sigmoid", lambda f, x: f.sigmoid(x), (3, 4)),
    ("tanh", lambda f, x: f.tanh(x), (3, 4)),
    ("softmax", lambda f, x: f.softmax(x, dim=1), (3, 4)),
    ("softmax-dim0", lambda f, x: f.softmax(x, dim=0), (3, 4, 2)),
    ("log-softmax", lambda f, x: f.log_softmax(x, dim=-1), (3, 4)),
    ("leaky-relu", lambda f, x: f.leaky_relu(x, negative_slope=0.1), (3, 4)),
    ("softplus", lambda f, x: f.softplus(x, beta=1.5, threshold=2.0), (3, 4)),
    ("silu", lambda f, x: f.silu(x), (3, 4)),
    ("logsigmoid", lambda f, x: f.logsigmoid(x), (3, 4)),
    ("normalize", lambda f, x: f.normalize(x, dim=1), (3, 4)),
    ("normalize-p1", lambda f, x: f.normalize(x, p=1.0, dim=0), (3, 4)),
    ("max-pool", lambda f, x: f.max_pool2d(x, 2), (2, 3, 6, 6)),
    ("avg-pool", lambda f, x: f.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), (2, 3, 6, 6)),
    ("adaptive-avg-pool", lambda f, x: f.adaptive_avg_pool2d(x, 1), (2, 3, 5, 5)),
    ("pad", lambda f, x: f.pad(x, (1, 2, 0, 1), value=0.5), (2, 3, 4)),
    ("dropout-not-training", lambda f, x: f.dropout(x, 0.3, training=False), (3, 4)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("call, shape", [row[1:] for row in FUNCTIONS], ids=[row[0] for row in FUNCTIONS])
def test_functional_matches_torch(torch, call, shape, dtype):
    x = (np.random.default_rng(7).standard_normal(shape) * 3).astype(dtype)
    mine, t = tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = call(F, mine), call(torch.nn.functional, t)
    tol = tolerance(dtype)
    np.testing.assert_allclose(value(out), expected.detach().numpy(), **tol)
    upstream = np.random.default_rng(8).standard_normal(out.shape).astype(dtype)
    vg.sum(out * upstream).backward()
    (expected * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(value(mine.grad), t.grad.numpy(), **tol)


def test_softmax_without_dim_warns_and_picks_torchs_dimension(torch):
    x = np.random.default_rng(9).standard_normal((3, 4))
    for shape in [(4,), (3, 4), (2, 3, 4)]:
        x = np.random.default_rng(9).standard_normal(shape)
        with pytest.warns(UserWarning, match="Implicit dimension"):
            ours = F.softmax(tensor(x))
        with pytest.warns(UserWarning):
            theirs = torch.nn.functional.softmax(torch.tensor(x))
        np.testing.assert_allclose(value(ours), theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_functional_dropout_in_training_zeroes_about_p_and_scales_the_rest(p):
    vg.manual_seed(0)
    x = np.random.default_rng(1).uniform(1, 2, (300, 400))
    out = value(F.dropout(tensor(x), p))
    dropped = out == 0
    assert abs(dropped.mean() - p) < 0.01
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=1e-12)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.cross_entropy(tensor(np.zeros((2, 3))), np.array([0, 3])), (IndexError, ValueError), "target 3"),
    (lambda: F.cross_entropy(tensor(np.zeros((2, 3))), np.array([0, 1, 2])), ValueError, "expected 2 class targets"),
    (lambda: F.cross_entropy(tensor(np.zeros((2, 3))), np.array([0.5, 1.0])), TypeError, "must be integers"),
    (lambda: F.nll_loss(tensor(np.zeros((2, 3))), [0, 1], reduction="average"), ValueError, "reduction must be"),
    (lambda: F.mse_loss(tensor(np.zeros(2)), np.zeros(2), reduction="max"), ValueError, "reduction must be"),
    (lambda: F.binary_cross_entropy(tensor(np.full(2, 0.5)), np.zeros(3)), ValueError, "target of shape"),
    (lambda: F.linear(tensor(np.zeros((2, 4))), tensor(np.zeros((3, 5)))), ValueError, "in_features = 5"),
    (lambda: F.dropout(tensor(np.zeros(2)), 1.5), ValueError, "between 0 and 1"),
    (lambda: F.max_pool2d(tensor(np.zeros((2, 2))), 2), ValueError, "3-d .* or 4-d"),
    (lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError, "CrossEntropyLoss: reduction must be"),
], ids=["target-out-of-range", "target-count", "float-targets", "nll-reduction", "mse-reduction", "bce-shape",
        "linear-sizes", "dropout-p", "pool-rank", "loss-module-reduction"])
def test_functional_refuses_bad_arguments_naming_the_function(call, error, message):
    with pytest.raises(error, match=message):
        call()
