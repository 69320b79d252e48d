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
    """A PyTorch-dialect tensor holding a copy of array (numpy's dtype kept)."""
    return vg.tensor(np.asarray(array), requires_grad=requires_grad)


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


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's own warning
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


# ---- Module: registration, walking, modes, dtype ----

class Block(nn.Module):
    """Parameters and sub-modules assigned in a mixed order."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.scale = nn.Parameter(tensor(np.ones(4, np.float32)))
        self.act = nn.ReLU()
        self.second = nn.Linear(4, 2)
        self.register_buffer("steps", tensor(np.zeros(1, np.float32)))
        self.register_buffer("scratch", tensor(np.zeros(2, np.float32)), persistent=False)

    def forward(self, x):
        return self.second(self.act(self.first(x)) * self.scale)


def test_a_modules_own_parameters_come_before_its_childrens_as_in_torch(torch):
    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first = torch.nn.Linear(3, 4)
            self.scale = torch.nn.Parameter(torch.ones(4))
            self.act = torch.nn.ReLU()
            self.second = torch.nn.Linear(4, 2)
            self.register_buffer("steps", torch.zeros(1))
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    ours, theirs = Block(), TorchBlock()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()] == \
        ["scale", "first.weight", "first.bias", "second.weight", "second.bias"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert repr(ours).replace("Block", "TorchBlock") == repr(theirs)


def test_parameters_is_a_generator_of_each_parameter_once_and_nn_parameter_marks_them():
    m = Block()
    params = m.parameters()
    assert iter(params) is params
    params = list(params)
    assert len(params) == 5 and all(isinstance(p, nn.Parameter) for p in params)
    m.tied = m.first.weight
    assert len(list(m.parameters())) == 5 and len(list(m.named_parameters(remove_duplicate=False))) == 6
    assert not isinstance(tensor(np.ones(2)), nn.Parameter)
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale", "tied"]


def test_a_frozen_parameter_stays_in_parameters_and_state_dict():
    m = Block()
    m.first.weight.requires_grad = False
    assert "first.weight" in dict(m.named_parameters()) and "first.weight" in m.state_dict()
    m.requires_grad_(False)
    assert len(list(m.parameters())) == 5 and not any(p.requires_grad for p in m.parameters())


def test_nn_parameter_shares_the_tensors_values_and_requires_grad():
    data = tensor(np.arange(3.0))
    p = nn.Parameter(data)
    assert p.requires_grad and p.is_leaf and not data.requires_grad
    p.value[0] = 7.0
    assert data.value[0] == 7.0
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert nn.Parameter(np.ones((2, 2))).shape == (2, 2)


def test_children_modules_and_apply_walk_the_tree_parents_first_and_apply_children_first():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    assert [type(m).__name__ for m in net.children()] == ["Linear", "Sequential"]
    assert [type(m).__name__ for m in net.modules()] == ["Sequential", "Linear", "Sequential", "ReLU", "Linear"]
    order = []
    assert net.apply(lambda m: order.append(type(m).__name__)) is net
    assert order == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
            nn.init.zeros_(m.bias)

    net.apply(init_weights)
    assert np.all(value(net[0].weight) == 0.5) and np.all(value(net[1][1].bias) == 0)


def test_train_and_eval_reach_every_sub_module_and_change_dropout_and_batchnorm():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(4)))
    assert net.eval() is net and not any(m.training for m in net.modules())
    x = tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_array_equal(value(net[1](x)), value(x))
    assert net.train() is net and all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="mode must be a bool"):
        net.train("no")


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_sets_gradients_to_none_or_to_zeros(set_to_none):
    net = nn.Linear(3, 2)
    vg.sum(net(tensor(np.ones((4, 3), np.float32)))).backward()
    assert all(p._has_grad for p in net.parameters())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        if set_to_none:
            assert not p._has_grad
        else:
            assert p._has_grad and not np.any(value(p.grad))


def test_to_double_and_float_convert_floating_parameters_and_buffers_keeping_their_places():
    m = Block()
    m.bn = nn.BatchNorm1d(2)
    m.tied = m.first.weight
    keys = list(m.state_dict())
    assert m.double() is m
    state = m.state_dict()
    assert all(value(v).dtype == np.float64 for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert list(state) == keys and value(m.scratch).dtype == np.float64
    assert m.tied is m.first.weight and m.first.weight.requires_grad
    assert m(tensor(np.ones((1, 3)))).dtype == np.float64
    assert m.to(np.float32) is m and m.first.weight.dtype == np.float32
    assert m.to("cpu") is m and m.cpu() is m
    with pytest.raises(ValueError, match="CPU only"):
        m.to("cuda:0")


def test_nn_parameters_are_torch_tensors_whose_grad_is_none_until_a_backward():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert all(p.dialect == "pytorch" and p.grad is None for p in net.parameters())
    assert all(b.dialect == "pytorch" and not b.requires_grad for b in net.buffers())
    vg.sum(net(tensor(np.ones((4, 3), np.float32)))).backward()
    assert all(p.grad.dialect == "pytorch" and p.grad.grad_fn is None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert net.state_dict()["1.num_batches_tracked"].dtype == np.int64


def test_converting_a_module_keeps_each_parameters_dialect():
    mixed = nn.Sequential(vg.Linear(3, 4, dtype=np.float32), nn.Linear(4, 2)).double()
    assert [(p.dialect, p.dtype) for p in mixed.parameters()] == [("vugrad", np.float64)] * 2 + \
        [("pytorch", np.float64)] * 2


def test_layers_take_a_dtype_and_default_to_float32():
    assert nn.Linear(2, 3).weight.dtype == np.float32
    assert nn.Conv2d(1, 2, 3, dtype=np.float64).weight.dtype == np.float64
    assert nn.BatchNorm2d(3, dtype=np.float64).running_var.dtype == np.float64


# ---- load_state_dict ----

def test_load_state_dict_refuses_missing_unexpected_and_misshapen_entries_before_changing_anything():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    before = {k: value(v).copy() for k, v in net.state_dict().items()}
    state = {k: np.zeros_like(v) for k, v in before.items()}
    del state["2.bias"]
    state["extra"] = np.zeros(1)
    state["0.weight"] = np.zeros((3, 3))
    with pytest.raises(nn.LoadStateDictError) as caught:
        net.load_state_dict(state)
    message = str(caught.value)
    assert "missing: 2.bias" in message and "unexpected: extra" in message and "0.weight has shape (3, 3)" in message
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, RuntimeError)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(value(v), before[k])


def test_load_state_dict_not_strict_loads_what_matches_and_reports_the_rest():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    result = net.load_state_dict({"0.weight": np.ones((2, 3)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"] and result.unexpected_keys == ["other"]
    assert np.all(value(net[0].weight) == 1)
    assert repr(nn.Linear(1, 1).load_state_dict(nn.Linear(1, 1).state_dict())) == "<All keys matched successfully>"


def test_state_dict_values_share_the_parameters_memory_and_have_no_graph():
    net = nn.Linear(2, 2)
    state = net.state_dict()
    assert isinstance(state, collections.OrderedDict)
    assert not state["weight"].requires_grad and np.shares_memory(value(state["weight"]), value(net.weight))
    assert net.state_dict(keep_vars=True)["weight"] is net.weight


# ---- containers ----

def test_sequential_indexes_slices_iterates_and_renumbers_as_torch(torch):
    def build(m):
        return m.Sequential(m.Linear(2, 3), m.ReLU(), m.Linear(3, 4), m.Tanh())

    ours, theirs = build(nn), build(torch.nn)
    assert len(ours) == 4 and isinstance(ours[-1], nn.Tanh) and [type(m) for m in ours][1] is nn.ReLU
    assert repr(ours[1:3]) == repr(theirs[1:3]) and isinstance(ours[1:3], nn.Sequential)
    del ours[1], theirs[1]
    ours.append(nn.Sigmoid()), theirs.append(torch.nn.Sigmoid())
    ours.insert(0, nn.Identity()), theirs.insert(0, torch.nn.Identity())
    assert repr(ours) == repr(theirs)
    assert [k for k in ours.state_dict()] == [k for k in theirs.state_dict()]
    with pytest.raises(IndexError, match="index 9 is out of range"):
        ours[9]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_a_module_used_twice_in_a_sequential_runs_twice():
    act = nn.Tanh()
    seq = nn.Sequential(act, act)
    x = np.array([0.5, -1.0], np.float32)
    np.testing.assert_allclose(value(seq(tensor(x))), np.tanh(np.tanh(x)), rtol=1e-6)


def test_module_list_and_dict_register_their_modules(torch):
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
            self.blocks.append(nn.Linear(2, 1))
            self.heads = nn.ModuleDict({"a": nn.Linear(1, 3), "b": nn.Linear(1, 2)})

    m = Heads()
    assert list(m.state_dict()) == [f"blocks.{i}.{p}" for i in range(3) for p in ("weight", "bias")] + \
        [f"heads.{k}.{p}" for k in "ab" for p in ("weight", "bias")]
    assert len(m.blocks) == 3 and isinstance(m.blocks[1:], nn.ModuleList) and "a" in m.heads
    assert m.heads.keys() == ["a", "b"] and isinstance(m.heads["b"], nn.Linear)
    del m.heads["a"]
    assert list(m.heads) == ["b"]
    with pytest.raises(KeyError, match="already exists"):
        nn.ModuleDict({"train": nn.ReLU()})


def test_vugrad_modules_and_torch_modules_nest_in_each_other():
    mixed = nn.Sequential(vg.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert list(mixed.state_dict()) == ["0.w", "0.b", "2.weight", "2.bias"]
    holder = vg.Sequential(nn.Linear(3, 2), vg.Linear(2, 1))
    assert [n for n, _ in holder.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.1.w",
                                                         "layers.1.b"]
    assert mixed(tensor(np.ones((5, 3)))).shape == (5, 2)


# ---- initialisation ----

def test_linear_and_conv2d_start_uniform_within_one_over_root_fan_in():
    vg.manual_seed(0)
    for layer, fan_in in [(nn.Linear(400, 300), 400), (nn.Conv2d(32, 64, 3), 32 * 9), (nn.Conv2d(8, 4, 5, groups=4), 50)]:
        bound = 1 / math.sqrt(fan_in)
        for p in (layer.weight, layer.bias):
            v = value(p)
            assert np.abs(v).max() <= bound
        w = value(layer.weight)
        if w.size > 10_000:  # the spread of U(-b, b) shows
            assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound and np.abs(w).max() > 0.99 * bound


def test_fans_and_gains_are_torchs(torch):
    for shape in [(5, 3), (16, 3, 5, 5), (8, 2, 3, 1), (4, 6, 2, 2, 2)]:
        assert nn.init._calculate_fan_in_and_fan_out(tensor(np.zeros(shape))) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(tensor(np.zeros(3)))


INITIALISERS = [
    # id, call, expected (low, high) bounds or None, expected std
    ("uniform", lambda t: nn.init.uniform_(t, -0.5, 1.5), (-0.5, 1.5), 2 / math.sqrt(12)),
    ("normal", lambda t: nn.init.normal_(t, 1.0, 0.3), None, 0.3),
    ("xavier-uniform", lambda t: nn.init.xavier_uniform_(t, gain=2.0), (-2 * math.sqrt(6 / 300), 2 * math.sqrt(6 / 300)),
     2 * math.sqrt(2 / 300)),
    ("xavier-normal", lambda t: nn.init.xavier_normal_(t), None, math.sqrt(2 / 300)),
    ("kaiming-uniform", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu"),
     (-math.sqrt(6 / 100), math.sqrt(6 / 100)), math.sqrt(2 / 100)),
    ("kaiming-normal-fan-out", lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), None,
     math.sqrt(2 / 200)),
    ("trunc-normal", lambda t: nn.init.trunc_normal_(t, std=1.0, a=-1.0, b=1.0), (-1.0, 1.0), 0.5376),
]


@pytest.mark.parametrize("call, bounds, std", [row[1:] for row in INITIALISERS], ids=[row[0] for row in INITIALISERS])
def test_initialisers_fill_in_place_with_torchs_distributions(call, bounds, std):
    vg.manual_seed(1)
    t = tensor(np.zeros((200, 100), np.float32))  # fan_in 100, fan_out 200
    buffer, version = value(t), t._version
    assert call(t) is t
    v = value(t)
    assert np.shares_memory(v, buffer) and t._version > version and v.dtype == np.float32
    assert abs(v.std() / std - 1) < 0.03  # 20,000 draws: the std's relative error is below 1%
    if bounds is not None:
        assert bounds[0] <= v.min() and v.max() <= bounds[1]


def test_constant_initialisers_and_eye():
    t = tensor(np.zeros((2, 3)))
    np.testing.assert_array_equal(value(nn.init.ones_(t)), np.ones((2, 3)))
    np.testing.assert_array_equal(value(nn.init.constant_(t, 0.25)), np.full((2, 3), 0.25))
    np.testing.assert_array_equal(value(nn.init.eye_(t)), np.eye(2, 3))
    np.testing.assert_array_equal(value(nn.init.zeros_(t)), np.zeros((2, 3)))


# ---- optim ----

def leaves(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [tensor(rng.standard_normal(3), requires_grad=True) for _ in range(n)]


def test_parameter_groups_take_their_own_hyper_parameters_as_in_torch(torch):
    ours, theirs = pair(torch, nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)),
                        torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)), np.float64)
    opt = optim.SGD([{"params": ours[0].parameters()}, {"params": ours[1].parameters(), "lr": 0.1}],
                    lr=0.01, momentum=0.9)
    topt = torch.optim.SGD([{"params": theirs[0].parameters()}, {"params": theirs[1].parameters(), "lr": 0.1}],
                           lr=0.01, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1] and opt.param_groups[1]["momentum"] == 0.9
    x = np.random.default_rng(0).standard_normal((5, 3))
    for _ in range(3):
        opt.zero_grad(), topt.zero_grad()
        vg.sum(ours(tensor(x)) ** 2).backward()
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        opt.step(), topt.step()
    expected = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(value(v), expected[k].numpy(), rtol=1e-12, atol=1e-14, err_msg=k)


def test_an_optimiser_skips_parameters_without_a_gradient_and_looks_state_up_by_parameter():
    a, b = leaves()
    opt = optim.Adam([a, b], lr=0.1)
    before = value(b).copy()
    vg.sum(a * a).backward()
    opt.step()
    np.testing.assert_array_equal(value(b), before)
    assert opt.state[a]["step"] == 1 and opt.state[b] == {} and opt.state[0] is opt.state[a]


def test_optimiser_zero_grad_sets_to_none_by_default():
    a, b = leaves()
    opt = optim.SGD([a, b], lr=0.1)
    vg.sum(a * b).backward()
    opt.zero_grad(set_to_none=False)
    assert a._has_grad and not np.any(value(a.grad))
    opt.zero_grad()
    assert not a._has_grad and not b._has_grad


def test_step_with_a_closure_returns_its_loss():
    (a,) = leaves(1)
    opt = optim.SGD([a], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = vg.sum(a * a)
        loss.backward()
        return loss

    start = value(a).copy()
    loss = opt.step(closure)
    assert loss.item() == pytest.approx(float(np.sum(start ** 2)))
    np.testing.assert_allclose(value(a), start - 0.5 * 2 * start, rtol=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD([{"params": leaves(1)}, {"params": []}]), "without parameters"),
    (lambda: optim.SGD([{"params": leaves(1), "lr": -1.0}]), "learning rate must be >= 0"),
    (lambda: optim.SGD([{"params": leaves(1), "betas": (0.9, 0.9)}]), "unknown hyper-parameter"),
    (lambda: optim.Adam([{"params": leaves(1), "betas": (0.9, 1.0)}]), "betas must be in"),
    (lambda: optim.Adam(leaves(1), amsgrad=True), "amsgrad=True is not supported"),
    (lambda: optim.SGD(leaves(1), maximize=True), "maximize=True is not supported"),
    (lambda: optim.SGD(leaves(1), lr=0.1, colour="red"), "unexpected keyword argument 'colour'"),
], ids=["empty-group", "group-lr", "group-unknown", "group-betas", "amsgrad", "maximize", "unknown-keyword"])
def test_optimisers_refuse_bad_groups_and_unsupported_options(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_a_parameter_in_two_groups_is_refused():
    (a,) = leaves(1)
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)


@pytest.mark.parametrize("make", [lambda o, ps: o.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda o, ps: o.Adam(ps, lr=0.01), lambda o, ps: o.RMSprop(ps, lr=0.01, momentum=0.5)],
                         ids=["sgd", "adam", "rmsprop"])
def test_a_torch_optimiser_state_dict_loads_and_continues_as_torch(torch, make):
    rng = np.random.default_rng(2)
    start = rng.standard_normal(4)
    t = torch.tensor(start, requires_grad=True)
    topt = make(torch.optim, [t])
    for _ in range(2):
        topt.zero_grad()
        (t ** 3).sum().backward()
        topt.step()
    p = tensor(t.detach().numpy().copy(), requires_grad=True)
    opt = make(optim, [p])
    opt.load_state_dict(topt.state_dict())
    for _ in range(2):
        opt.zero_grad(), topt.zero_grad()
        vg.sum(p ** 3).backward()
        (t ** 3).sum().backward()
        opt.step(), topt.step()
    np.testing.assert_allclose(value(p), t.detach().numpy(), rtol=1e-12)


def test_an_optimiser_state_dict_round_trips_with_its_groups():
    a, b = leaves()
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5, "betas": (0.8, 0.9)}], lr=0.1)
    vg.sum(a * b).backward()
    opt.step()
    saved = opt.state_dict()
    assert saved["param_groups"][1]["params"] == [1] and saved["param_groups"][1]["betas"] == [0.8, 0.9]
    fresh_a, fresh_b = leaves()
    again = optim.Adam([{"params": [fresh_a]}, {"params": [fresh_b]}], lr=0.2)
    again.load_state_dict(saved)
    assert again.param_groups[1]["lr"] == 0.5 and again.param_groups[1]["betas"] == (0.8, 0.9)
    np.testing.assert_array_equal(again.state[1]["exp_avg"], opt.state[1]["exp_avg"])
    with pytest.raises(ValueError, match="2 parameter groups, this optimiser has 1"):
        optim.Adam(leaves(), lr=0.1).load_state_dict(saved)


def test_schedules_set_each_groups_rate_from_its_own_start():
    a, b = leaves()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    schedule = optim.StepLR(opt, step_size=1, gamma=0.5)
    schedule.step()
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.5] and schedule.get_last_lr() == 0.05


# ---- utils.data ----

def test_a_tensor_dataset_batches_as_torchs_data_loader(torch):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)).astype(np.float32), rng.integers(0, 4, 10)
    ours = list(DataLoader(TensorDataset(tensor(x), tensor(y)), batch_size=4))
    theirs = list(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                              batch_size=4))
    assert len(ours) == len(theirs) == 3
    for (a, b), (ta, tb) in zip(ours, theirs):
        np.testing.assert_array_equal(value(a), ta.numpy())
        np.testing.assert_array_equal(value(b), tb.numpy())


def test_batches_of_a_tensor_that_requires_grad_stay_on_its_graph():
    w = tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    (batch,) = next(iter(DataLoader(TensorDataset(w), batch_size=2)))
    vg.sum(batch * 3.0).backward()
    np.testing.assert_array_equal(value(w.grad), [[3, 3], [3, 3], [0, 0]])
    (data,) = next(iter(DataLoader(TensorDataset(tensor(np.ones((3, 2)))), batch_size=2)))
    assert data.grad_fn is None and not data.requires_grad


@pytest.mark.parametrize("samples", [
    [(np.ones(3, np.float32) * i, i) for i in range(5)],
    [(float(i), i) for i in range(5)],
    [{"x": np.full((2, 2), i, np.float64), "label": np.int64(i)} for i in range(5)],
    [[np.float32(i), i, 0.5 * i] for i in range(5)],
], ids=["array-int", "float-int", "dict", "list"])
def test_default_collate_gives_torchs_shapes_and_dtypes(torch, samples):
    from torch.utils.data import default_collate as torch_collate

    def flat(batch):
        if isinstance(batch, dict):
            return [flat(batch[k]) for k in sorted(batch)]
        if isinstance(batch, (list, tuple)):
            return [flat(b) for b in batch]
        return batch

    def describe(batch, numpy_of):
        if isinstance(batch, list):
            return [describe(b, numpy_of) for b in batch]
        array = numpy_of(batch)
        return array.shape, str(array.dtype), array.tolist()

    ours = describe(flat(default_collate(samples)), value)
    theirs = describe(flat(torch_collate(samples)), lambda t: t.numpy())
    assert ours == theirs


def test_a_data_loader_takes_any_sequence_of_pairs_shuffles_each_epoch_and_drops_the_last():
    pairs = [(np.full(2, i, np.float32), i) for i in range(10)]
    loader = DataLoader(pairs, batch_size=3, shuffle=True, drop_last=True, num_workers=2)
    assert len(loader) == 3
    vg.manual_seed(0)
    epochs = [[int(v) for _, labels in loader for v in value(labels)] for _ in range(2)]
    assert all(len(e) == 9 and len(set(e)) == 9 for e in epochs) and epochs[0] != epochs[1]
    assert len(DataLoader(pairs, batch_size=3)) == 4 and len(DataLoader(pairs)) == 10
    xs, labels = next(iter(DataLoader(pairs, batch_size=4)))
    assert xs.shape == (4, 2) and value(labels).tolist() == [0, 1, 2, 3]


def test_a_data_loader_over_a_dataset_class_an_iterable_and_without_batching():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], np.float64)

    assert [value(b).tolist() for b in DataLoader(Squares(), batch_size=2)] == [[[0, 0], [1, 1]], [[2, 4], [3, 9]],
                                                                                [[4, 16]]]
    assert [value(b).tolist() for b in DataLoader(Squares(), batch_size=None)][:2] == [[0, 0], [1, 1]]
    stream = (np.array([float(i)]) for i in range(5))
    assert [b.shape for b in DataLoader(stream, batch_size=2)] == [(2, 1), (2, 1), (1, 1)]
    sampler = [4, 0]
    assert value(next(iter(DataLoader(Squares(), batch_size=2, sampler=sampler)))).tolist() == [[4, 16], [0, 0]]


@pytest.mark.parametrize("make, error, message", [
    (lambda: DataLoader([1, 2], batch_size=0), ValueError, "batch_size should be a positive integer"),
    (lambda: DataLoader([1, 2], num_workers=-1), ValueError, "num_workers option should be non-negative"),
    (lambda: DataLoader([1, 2], sampler=[0], shuffle=True), ValueError, "mutually exclusive"),
    (lambda: DataLoader(5), TypeError, "needs __getitem__ and __len__"),
    (lambda: TensorDataset(tensor(np.zeros(3)), tensor(np.zeros(4))), ValueError, "size mismatch"),
    (lambda: list(DataLoader([np.zeros(2), np.zeros(3)], batch_size=2)), ValueError, "equal size"),
    (lambda: list(DataLoader([object(), object()], batch_size=2)), TypeError, "found object"),
], ids=["batch-size", "workers", "sampler-and-shuffle", "not-a-dataset", "tensor-sizes", "ragged", "objects"])
def test_data_loading_refuses_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_random_split_makes_disjoint_subsets_of_the_given_lengths_or_fractions():
    parts = random_split(list(range(10)), [0.7, 0.3], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [7, 3]
    assert sorted([parts[0][i] for i in range(7)] + [parts[1][i] for i in range(3)]) == list(range(10))
    with pytest.raises(ValueError, match="do not sum"):
        random_split(list(range(10)), [3, 3])


def test_the_array_loader_vg_data_loader_is_unchanged_beside_the_torch_one():
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    batches = list(vg.DataLoader(x, y, batch_size=2))
    assert vg.DataLoader is not DataLoader and isinstance(batches[0][0], np.ndarray)
    np.testing.assert_array_equal(batches[0][0], x[:2])


# ---- save and load ----

def test_torch_save_and_load_of_a_state_dict_write_exactly_the_path_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    vg.manual_seed(0)
    net = blitz_net(nn, F, vg.flatten)
    PATH = "./cifar_net.pth"
    vg.save(net.state_dict(), PATH)
    assert os.listdir(tmp_path) == ["cifar_net.pth"]
    vg.manual_seed(1)
    fresh = blitz_net(nn, F, vg.flatten)
    state = vg.load(PATH, weights_only=True)
    assert isinstance(state["fc1.weight"], vg.TensorNode) and not state["fc1.weight"].requires_grad
    assert list(state) == list(net.state_dict())
    fresh.load_state_dict(state)
    x = tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    np.testing.assert_array_equal(value(fresh(x)), value(net(x)))


def test_saved_tensors_keep_dtype_and_requires_grad_and_arrays_stay_arrays():
    buffer = io.BytesIO()
    vg.save({"p": tensor(np.ones(2, np.float32), requires_grad=True), "a": np.zeros(3), "n": 3}, buffer)
    buffer.seek(0)
    state = vg.load(buffer)
    assert isinstance(state["p"], vg.TensorNode) and state["p"].requires_grad and state["p"].dtype == np.float32
    assert isinstance(state["a"], np.ndarray) and state["n"] == 3


def test_a_model_and_its_optimiser_resume_from_a_checkpoint(tmp_path):
    vg.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(net.parameters(), lr=0.01)
    x = tensor(np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32))
    labels = tensor(np.array([0, 1, 0, 1, 1, 0]))

    def train_step(model, optimiser):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimiser.step()
        return loss.item()

    train_step(net, opt)
    vg.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}, tmp_path / "run.pth")
    vg.manual_seed(5)
    again = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    again_opt = optim.Adam(again.parameters(), lr=0.5)
    state = vg.load(tmp_path / "run.pth")
    again.load_state_dict(state["model"])
    again_opt.load_state_dict(state["optimizer"])
    assert state["epoch"] == 1 and again_opt.lr == 0.01
    assert train_step(again, again_opt) == train_step(net, opt)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(value(again.state_dict()[k]), value(v), err_msg=k)


def test_a_saved_tensor_comes_back_in_its_dialect():
    buffer = io.BytesIO()
    vg.save([vg.TensorNode(np.ones(2)), tensor(np.ones(2))], buffer)
    buffer.seek(0)
    assert [t.dialect for t in vg.load(buffer)] == ["vugrad", "pytorch"]


def test_load_refuses_a_device_other_than_the_cpu(tmp_path):
    vg.save({"a": np.ones(1)}, tmp_path / "a.pth")
    assert vg.load(tmp_path / "a.pth", map_location="cpu")["a"].shape == (1,)
    with pytest.raises(ValueError, match="CPU only"):
        vg.load(tmp_path / "a.pth", map_location="cuda:0")


# ---- copies ----

@pytest.mark.parametrize("copier", [copy.deepcopy, lambda obj: pickle.loads(pickle.dumps(obj))], ids=["deepcopy", "pickle"])
def test_a_copied_module_is_independent_and_computes_the_same(copier):
    vg.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    net.tied = net[0].weight
    best = copier(net)
    assert type(best) is nn.Sequential and list(best.state_dict()) == list(net.state_dict())
    assert best.tied is best[0].weight and best[0].weight is not net[0].weight
    assert best[0].weight.requires_grad and best[0].weight.is_leaf
    x = tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    net.eval(), best.eval()
    np.testing.assert_array_equal(value(best(x)), value(net(x)))
    nn.init.zeros_(net[0].weight)
    assert np.any(value(best[0].weight))


def test_a_deep_copied_state_dict_is_a_snapshot_that_training_leaves_alone():
    net = nn.Linear(2, 2)
    snapshot = copy.deepcopy(net.state_dict())
    nn.init.ones_(net.weight)
    assert not np.all(value(snapshot["weight"]) == 1)
    net.load_state_dict(snapshot)
    np.testing.assert_array_equal(value(net.weight), value(snapshot["weight"]))


def test_a_copied_optimiser_keeps_its_state_and_hyper_parameters():
    a, b = leaves()
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    vg.sum(a * b).backward()
    opt.step()
    twin = copy.deepcopy(opt)
    assert twin.lr == 0.1 and twin.param_groups[0]["momentum"] == 0.9
    np.testing.assert_array_equal(twin.state[0]["momentum_buffer"], opt.state[0]["momentum_buffer"])
    assert twin.params[0] is not a and twin.param_groups[0]["params"][0] is twin.params[0]
