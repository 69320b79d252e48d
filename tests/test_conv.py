"""Convolutional networks: conv2d, the pools and pad against PyTorch (values and gradients, float32
and float64), the same bits at any thread count, the layers of tapegrad.nn (Conv2d's
initialisation, BatchNorm2d's statistics, Flatten, Dropout on images) and one LeNet training step
against PyTorch's. The numpy references and finite differences of the op table are in test_ops.py;
the PyTorch tests skip where torch is not installed."""

import math

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import nn


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def threads():
    """Sets the engine's thread count for a test and restores it after."""
    before = vg.get_num_threads()
    yield vg.set_num_threads
    vg.set_num_threads(before)


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    vg.init._generator = None
    yield
    vg.init._generator = None


TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def against_torch(torch, ours, theirs, arrays, dtype, seed=0, distinct=False):
    """Values and gradients (of sum(out * G), G random) of ours(*nodes) and theirs(*tensors)."""
    rng = np.random.default_rng(seed)
    arrays = [a.astype(dtype) for a in arrays]
    nodes = [vg.TensorNode(a.copy()) for a in arrays]
    out = ours(*nodes)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    vg.sum(out * upstream).backward()
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(*tensors)
    (expected * torch.tensor(upstream)).sum().backward()
    tol = TOLERANCE[dtype]
    assert out.dtype == dtype and out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.value, expected.detach().numpy(), rtol=tol, atol=tol)
    for n, t in zip(nodes, tensors):
        np.testing.assert_allclose(n.grad, t.grad.numpy(), rtol=tol, atol=tol * 10)


CONV_CONFIGS = [
    # (input shape, weight shape, with bias, keyword arguments): direct kernel, GEMM path, 1x1, groups
    ((2, 3, 9, 8), (4, 3, 3, 3), True, {}),
    ((3, 1, 12, 11), (5, 1, 5, 5), True, {"padding": 2}),
    ((2, 4, 9, 9), (6, 4, 3, 3), False, {"stride": 2, "padding": 1}),
    ((2, 6, 10, 9), (6, 2, 3, 2), True, {"groups": 3, "dilation": (2, 1), "padding": (2, 0)}),
    ((19, 12, 7, 7), (8, 12, 3, 3), True, {"padding": 1}),  # 108 values per window, 3 chunks of images
    ((5, 6, 6, 5), (4, 6, 1, 1), True, {}),
    ((5, 6, 6, 5), (4, 6, 1, 1), True, {"stride": 2}),
    ((2, 8, 8, 8), (8, 1, 3, 3), True, {"groups": 8, "padding": "same"}),
    ((2, 2, 7, 6), (3, 2, 2, 3), True, {"padding": "same", "dilation": 2}),
    ((2, 3, 6, 6), (2, 3, 3, 3), True, {"padding": "valid", "stride": (1, 2)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("x_shape, w_shape, bias, kw", CONV_CONFIGS, ids=[str(c[3]) + str(c[1]) for c in CONV_CONFIGS])
def test_conv2d_matches_torch_in_value_and_gradient(torch, x_shape, w_shape, bias, kw, dtype):
    import torch.nn.functional as F
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)] + ([rng.standard_normal(w_shape[0])] if bias else [])
    against_torch(torch, lambda *v: vg.conv2d(*v, **kw), lambda *t: F.conv2d(*t, **kw), arrays, dtype)


POOL_CONFIGS = [
    ("max", {"kernel_size": 2}),
    ("max", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max", {"kernel_size": (3, 2), "stride": (2, 1), "dilation": (2, 1), "ceil_mode": True}),
    ("max", {"kernel_size": 2, "stride": 1}),
    ("avg", {"kernel_size": 2}),
    ("avg", {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avg", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ("avg", {"kernel_size": (2, 3), "stride": 1, "divisor_override": 5}),
    ("adaptive", {"output_size": (3, 4)}),
    ("adaptive", {"output_size": 1}),
    ("adaptive", {"output_size": (None, 5)}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kind, kw", POOL_CONFIGS, ids=[f"{k}-{kw}" for k, kw in POOL_CONFIGS])
def test_pools_match_torch_in_value_and_gradient(torch, kind, kw, dtype):
    import torch.nn.functional as F
    ours = {"max": vg.max_pool2d, "avg": vg.avg_pool2d, "adaptive": vg.adaptive_avg_pool2d}[kind]
    theirs = {"max": F.max_pool2d, "avg": F.avg_pool2d, "adaptive": F.adaptive_avg_pool2d}[kind]
    rng = np.random.default_rng(2)
    x = rng.permutation(3 * 4 * 11 * 9).reshape(3, 4, 11, 9) * 0.01  # distinct: one maximum per window
    against_torch(torch, lambda v: ours(v, **kw), lambda t: theirs(t, **kw), [x], dtype)


@pytest.mark.parametrize("amounts, value", [((1, 2), 0.0), ((1, 0, 2, 3), 1.5), ((-1, 2, 0, -2), None),
                                            ((1, 1, 1, 1, 1, 1), -1.0)])
def test_pad_matches_torch_in_value_and_gradient(torch, amounts, value):
    import torch.nn.functional as F
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5))
    against_torch(torch, lambda v: vg.pad(v, amounts, value=value), lambda t: F.pad(t, amounts, value=value),
                  [x], np.float64)


@pytest.mark.parametrize("x_shape, w_shape, kw", [  # each above the 2^24 multiply-adds that split over threads
    ((33, 16, 16, 16), (16, 16, 3, 3), {"padding": 1}),
    ((40, 2, 28, 28), (16, 2, 5, 5), {}),
    ((33, 96, 16, 16), (64, 96, 1, 1), {}),
], ids=["gemm", "direct", "pointwise"])
def test_conv2d_gives_the_same_bits_on_one_and_two_threads(threads, x_shape, w_shape, kw):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w, b = rng.standard_normal(w_shape).astype(np.float32), rng.standard_normal(w_shape[0]).astype(np.float32)
    results = []
    for n in (1, 2):
        threads(n)
        nodes = [vg.TensorNode(a.copy()) for a in (x, w, b)]
        out = vg.conv2d(*nodes, **kw)
        vg.sum(out * out).backward()
        results.append([out.value.copy()] + [n.grad.copy() for n in nodes])
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_conv2d_of_an_input_without_grad_gives_only_the_parameters_gradients():
    x = vg.TensorNode(np.ones((2, 1, 5, 5)), requires_grad=False)
    w, b = vg.TensorNode(np.ones((3, 1, 3, 3))), vg.TensorNode(np.zeros(3))
    vg.conv2d(x, w, b).sum().backward()
    np.testing.assert_array_equal(w.grad, np.full((3, 1, 3, 3), 2 * 9.0))  # 2 images x 9 outputs of ones
    np.testing.assert_array_equal(b.grad, np.full(3, 2 * 9.0))


def test_conv2d_of_an_empty_batch_is_empty_and_its_gradients_are_zero():
    x, w = vg.TensorNode(np.ones((0, 2, 5, 5))), vg.TensorNode(np.ones((3, 2, 3, 3)))
    out = vg.conv2d(x, w)
    assert out.shape == (0, 3, 3, 3)
    out.sum().backward()
    np.testing.assert_array_equal(w.grad, np.zeros((3, 2, 3, 3)))


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_of_images_without_channels_is_its_bias_in_any_number_of_groups(groups):
    """0 input channels split into any number of empty groups (0 % groups == 0): every output is the
    bias, and only the bias gets a gradient (hypothesis found groups=2 refused, groups=1 computed)."""
    x = vg.TensorNode(np.ones((2, 0, 3, 3)))
    w, b = vg.TensorNode(np.ones((4, 0, 2, 2))), vg.TensorNode(np.arange(4.0))
    out = vg.conv2d(x, w, b, groups=groups)
    np.testing.assert_array_equal(out.value, np.broadcast_to(np.arange(4.0)[None, :, None, None], (2, 4, 2, 2)))
    out.sum().backward()
    np.testing.assert_array_equal(b.grad, np.full(4, 8.0))
    assert x.grad.shape == (2, 0, 3, 3) and w.grad.shape == (4, 0, 2, 2)


# ---- layers ----

def test_conv2d_layer_has_torchs_parameter_shapes_and_initial_bounds():
    layer = nn.Conv2d(6, 16, 5, groups=2)
    assert layer.weight.shape == (16, 3, 5, 5) and layer.bias.shape == (16,)
    bound = 1 / math.sqrt(3 * 5 * 5)
    big = nn.Conv2d(64, 64, 3)  # 36,864 weights: the spread of U(-b, b) shows
    b64 = 1 / math.sqrt(64 * 9)
    for values, b in ((layer.weight.value, bound), (layer.bias.value, bound), (big.weight.value, b64)):
        assert np.all(np.abs(values) <= b)
    assert abs(big.weight.value.std() - b64 / math.sqrt(3)) < 0.02 * b64
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [p.shape for p in nn.Conv2d(1, 2, 3, bias=False).parameters()] == [(2, 1, 3, 3)]


def test_conv2d_layer_computes_conv2d_with_its_parameters():
    layer = nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, dtype=np.float32)
    x = vg.TensorNode(np.random.default_rng(5).standard_normal((2, 2, 7, 6)).astype(np.float32))
    out = layer(x)
    expected = vg.conv2d(x, layer.weight, layer.bias, stride=2, padding=1)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.value, expected.value)


@pytest.mark.parametrize("args, message", [
    ((3, 4, 3, 1, 0, 1, 2), "in_channels 3 and out_channels 4 must both be divisible by groups 2"),
    ((0, 4, 3), "in_channels must be a positive int, got 0"),
    ((3, 4, 0), r"kernel_size must be positive, got \(0, 0\)"),
])
def test_conv2d_layer_refuses_bad_sizes(args, message):
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(*args)


def test_he_uniform_with_torchs_slope_bounds_a_conv_weight_by_one_over_the_root_of_its_receptive_fan_in():
    assert vg.init._fans((16, 3, 5, 5)) == (75, 400)
    w = vg.init.kaiming_uniform((16, 3, 5, 5), a=math.sqrt(5))
    assert np.abs(w).max() <= 1 / math.sqrt(75) and np.abs(w).max() > 0.9 / math.sqrt(75)
    glorot = vg.init.glorot_uniform((16, 3, 5, 5))
    assert np.abs(glorot).max() <= math.sqrt(6 / (75 + 400))


def test_pool_and_flatten_layers_apply_their_functions():
    x = vg.TensorNode(np.random.default_rng(6).standard_normal((2, 3, 6, 6)))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).value, vg.max_pool2d(x, 2).value)
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1)(x).value, vg.avg_pool2d(x, 3, 1, 1).value)
    np.testing.assert_array_equal(nn.AdaptiveAvgPool2d(2)(x).value, vg.adaptive_avg_pool2d(x, 2).value)
    assert nn.Flatten()(x).shape == (2, 108) and nn.Flatten(0, 1)(x).shape == (6, 6, 6)
    assert vg.flatten(x).shape == (216,) and x.flatten().shape == (216,)


def test_batchnorm2d_matches_torch_in_training_and_evaluation(torch):
    rng = np.random.default_rng(7)
    ours, theirs = nn.BatchNorm2d(3, dtype=np.float64), torch.nn.BatchNorm2d(3).double()
    for step in range(2):
        x = rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step
        node, tensor = vg.TensorNode(x.copy()), torch.tensor(x, requires_grad=True)
        out, expected = ours(node), theirs(tensor)
        upstream = rng.standard_normal(x.shape)
        vg.sum(out * upstream).backward()
        (expected * torch.tensor(upstream)).sum().backward()
        np.testing.assert_allclose(out.value, expected.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(node.grad, tensor.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.running_mean.value, theirs.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.running_var.value, theirs.running_var.numpy(), atol=1e-12)
    ours.eval(), theirs.eval()
    x = rng.standard_normal((2, 3, 5, 6))
    np.testing.assert_allclose(ours(vg.TensorNode(x)).value, theirs(torch.tensor(x)).detach().numpy(), atol=1e-12)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_batchnorm2d_refuses_images_with_other_channels():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, 3, H, W\), got \(2, 4, 5, 5\)"):
        nn.BatchNorm2d(3)(vg.TensorNode(np.ones((2, 4, 5, 5))))


def test_dropout_on_images_zeroes_about_p_of_the_values_and_scales_the_rest():
    vg.init.manual_seed(0)
    x = vg.TensorNode(np.ones((8, 4, 16, 16)))
    out = nn.Dropout(0.25)(x).value
    assert out.shape == x.shape
    assert set(np.unique(out)) == {0.0, 1 / 0.75}
    assert abs(np.mean(out == 0) - 0.25) < 0.02
    np.testing.assert_array_equal(nn.Dropout(0.25).eval()(x).value, x.value)


def lenet(module, dtype):
    """The blitz's LeNet (3 x 32 x 32 input) from `module` (tapegrad.nn or torch.nn)."""
    kw = {"dtype": dtype} if module is nn else {}
    return module.Sequential(
        module.Conv2d(3, 6, 5, **kw), module.ReLU(), module.MaxPool2d(2), module.Conv2d(6, 16, 5, **kw), module.ReLU(),
        module.MaxPool2d(2), module.Flatten(), module.Linear(400, 120, **kw), module.ReLU(), module.Linear(120, 84, **kw),
        module.ReLU(), module.Linear(84, 10, **kw))


def test_a_lenet_training_step_matches_torchs(torch):
    ours, theirs = lenet(nn, np.float64), lenet(torch.nn, None).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})  # torch's initial parameters
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((6, 3, 32, 32)), rng.integers(0, 10, 6)
    opt = vg.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    for _ in range(2):
        loss = vg.cross_entropy(ours(vg.TensorNode(x, requires_grad=False)), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        topt.step()
        topt.zero_grad()
        assert abs(loss.item() - tloss.item()) < 1e-10
    for p, t in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.value, t.detach().numpy(), atol=1e-10)


@pytest.mark.parametrize("kw, first, second", [({"kernel_size": 2}, 1.0, 0.0), ({"kernel_size": 2, "stride": 1}, 2.0, 2.0)],
                         ids=["2x2-windows", "overlapping"])
def test_max_pool2d_of_a_window_with_nan_is_nan_and_its_gradient_goes_to_the_first_nan(kw, first, second):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = x[0, 0, 1, 1] = np.nan  # (1, 0) comes first in the windows that hold both
    node = vg.TensorNode(x)
    out = vg.max_pool2d(node, **kw)
    assert np.isnan(out.value[0, 0, 0, 0]) and not np.isnan(out.value[0, 0, -1, -1])
    vg.sum(out).backward()
    assert (node.grad[0, 0, 1, 0], node.grad[0, 0, 1, 1], node.grad[0, 0, 0, 0]) == (first, second, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_conv2d_weight_gradient_stays_finite_for_taps_that_never_read_an_inf(dtype):
    x = np.ones((2, 1, 4, 7), dtype=dtype)
    x[:, 0, 0, 6] = np.inf  # the last column: read only by the second tap of a 1 x 2 window
    w = vg.TensorNode(np.ones((3, 1, 1, 2), dtype=dtype))
    vg.sum(vg.conv2d(vg.TensorNode(x, requires_grad=False), w)).backward()
    assert np.all(np.isfinite(w.grad[:, 0, 0, 0])) and np.all(w.grad[:, 0, 0, 0] == 2 * 4 * 6)
    assert np.all(np.isinf(w.grad[:, 0, 0, 1]))
