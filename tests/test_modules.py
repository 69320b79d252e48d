"""vugrad's modules (tapegrad.modules, the loss modules of tapegrad.nn): parameter registration, each layer's forward against numpy, gradient flow
through residual MLPs and batch normalisation, and the loss modules."""

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import modules, nn
from reference import log_softmax, sigmoid, softmax

SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    """manual_seed sets process-wide state: every test starts and ends without it."""
    vg.init._generator = None
    yield
    vg.init._generator = None


def names(module):
    return [name for name, _ in module.named_parameters()]


def randomise_biases(model, rng):
    for layer in model.layers:
        if isinstance(layer, vg.Linear):
            layer.b.value[...] = rng.standard_normal(layer.b.shape)


class Holder(vg.Module):
    """A module whose attributes the tests assign freely."""

    def forward(self, x):
        return x


# ---- registration on attribute assignment ----

def test_assigning_a_leaf_that_requires_grad_registers_it_as_a_parameter():
    m = Holder()
    w = vg.TensorNode(np.ones((2, 3)))
    m.w = w
    assert names(m) == ["w"] and m.parameters()[0] is w and m.w is w


@pytest.mark.parametrize("value", [
    vg.TensorNode(np.ones(3), requires_grad=False),
    vg.TensorNode(np.ones(3)) * 2.0,
    np.ones(3),
    1.5,
    "text",
    [],
], ids=["constant-node", "node-made-by-an-op", "array", "number", "string", "empty-list"])
def test_constants_and_nodes_made_by_ops_are_not_parameters(value):
    m = Holder()
    m.value = value
    assert m.parameters() == [] and list(m.named_children()) == []
    assert m.value is value


def test_sub_modules_and_lists_of_modules_are_registered_with_dotted_names():
    m = Holder()
    m.scale = vg.TensorNode(np.ones(1))
    m.encoder = vg.Linear(2, 3)
    m.blocks = [vg.Linear(3, 3), vg.Linear(3, 3, bias=False)]
    m.heads = (vg.Linear(3, 1), vg.Linear(3, 2))
    assert names(m) == ["scale", "encoder.w", "encoder.b", "blocks.0.w", "blocks.0.b", "blocks.1.w",
                        "heads.0.w", "heads.0.b", "heads.1.w", "heads.1.b"]
    params = dict(m.named_parameters())
    assert params["blocks.1.w"] is m.blocks[1].w and params["heads.1.b"] is m.heads[1].b
    assert [name for name, _ in m.named_children()] == ["encoder", "blocks.0", "blocks.1", "heads.0", "heads.1"]


def test_nested_modules_name_parameters_by_their_full_path():
    inner = Holder()
    inner.layers = [vg.Linear(2, 2), vg.Linear(2, 2)]
    middle = Holder()
    middle.inner = inner
    outer = Holder()
    outer.middle = middle
    outer.mlp = vg.MLP([2, 3, 1])
    assert names(outer) == ["middle.inner.layers.0.w", "middle.inner.layers.0.b",
                            "middle.inner.layers.1.w", "middle.inner.layers.1.b",
                            "mlp.layers.0.w", "mlp.layers.0.b", "mlp.layers.1.w", "mlp.layers.1.b"]
    assert dict(outer.named_parameters())["middle.inner.layers.1.w"] is inner.layers[1].w


def test_a_list_of_modules_filled_after_assignment_is_registered():
    class Stack(vg.Module):
        def __init__(self):
            super().__init__()
            self.layers = []
            for _ in range(2):
                self.layers.append(vg.Linear(2, 2))

        def forward(self, x):
            return x

    assert names(Stack()) == ["layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b"]


def test_reassigning_an_attribute_replaces_what_it_registered():
    m = Holder()
    old, new = vg.TensorNode(np.ones(2)), vg.TensorNode(np.zeros(2))
    m.p = old
    m.p = new
    assert m.parameters() == [new]
    m.p = vg.TensorNode(np.ones(2), requires_grad=False)
    assert m.parameters() == []
    m.p = vg.Linear(2, 1)
    assert names(m) == ["p.w", "p.b"]
    m.p = new
    assert names(m) == ["p"] and list(m.named_children()) == []


def test_reassigning_a_parameter_keeps_its_position_in_named_parameters():
    layer = vg.Linear(2, 3)
    layer.w = vg.TensorNode(np.zeros((3, 2)))
    assert names(layer) == ["w", "b"]


def test_deleting_an_attribute_unregisters_it():
    m = Holder()
    m.w = vg.TensorNode(np.ones(2))
    m.sub = vg.Linear(2, 2)
    del m.sub
    assert names(m) == ["w"]
    del m.w
    assert m.parameters() == [] and not hasattr(m, "w")


def test_parameters_lists_a_shared_parameter_or_module_once():
    m = Holder()
    m.first = vg.Linear(3, 3)
    m.second = vg.Linear(3, 3)
    m.second.w = m.first.w  # tied weights
    m.again = m.first       # the same module twice
    params = m.parameters()
    assert len(params) == 3
    assert params[0] is m.first.w and params[1] is m.first.b and params[2] is m.second.b
    assert names(m) == ["first.w", "first.b", "second.b"]


class VugradStyle(vg.Module):
    """As in the vugrad course: no super().__init__(), weights kept where registration does not look,
    and parameters() overridden."""

    def __init__(self):
        self.weights = {"w": vg.TensorNode(np.full((2, 3), 0.5)), "b": vg.TensorNode(np.zeros((1, 3)))}

    def forward(self, x):
        return x @ self.weights["w"] + self.weights["b"]

    def parameters(self):
        return [self.weights["w"], self.weights["b"]]


def test_a_module_that_overrides_parameters_trains_with_an_optimiser():
    model = VugradStyle()
    x = np.arange(4.0).reshape(2, 2)
    before = [p.value.copy() for p in model.parameters()]
    opt = vg.optim.SGD(model.parameters(), lr=0.1)
    model(vg.TensorNode(x, requires_grad=False)).sum().backward()
    opt.step()
    w, b = model.parameters()
    np.testing.assert_allclose(w.value, before[0] - 0.1 * x.sum(axis=0)[:, None] * np.ones((1, 3)), rtol=1e-14)
    np.testing.assert_allclose(b.value, before[1] - 0.1 * 2.0, rtol=1e-14)
    model.zero_grad()
    assert not any(p._has_grad for p in model.parameters())


def test_train_and_eval_set_training_on_every_sub_module():
    model = vg.Sequential(vg.Linear(3, 4), vg.Dropout(0.5),
                          vg.Sequential(vg.BatchNorm1d(4), vg.MLP([4, 2], activation="tanh")))
    every = [model, *model.layers, *model[2].layers, model[2][1].activation, model[2][1].layers[0]]
    assert all(m.training for m in every)
    assert model.eval() is model
    assert not any(m.training for m in every)
    assert model.train() is model
    assert all(m.training for m in every)
    model.train(False)
    assert not any(m.training for m in every)


def test_zero_grad_clears_the_gradients_of_every_parameter():
    model = vg.MLP([3, 4, 2])
    model(vg.TensorNode(np.ones((5, 3)), requires_grad=False)).sum().backward()
    assert all(p._has_grad for p in model.parameters())
    model.zero_grad()
    assert not any(p._has_grad for p in model.parameters())


# ---- Linear ----

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_computes_x_times_w_transposed_plus_b(bias, seed):
    rng = np.random.default_rng(seed)
    layer = vg.Linear(4, 3, bias=bias)
    x = rng.standard_normal((5, 4))
    expected = x @ layer.w.value.T
    if bias:
        layer.b.value[...] = rng.standard_normal((1, 3))
        expected = expected + layer.b.value
    else:
        assert layer.b is None
    assert names(layer) == (["w", "b"] if bias else ["w"])
    np.testing.assert_allclose(layer(vg.TensorNode(x)).value, expected, rtol=1e-12)


@pytest.mark.parametrize("init", sorted(vg.init.INITIALISERS))
def test_linear_draws_its_weight_from_the_initialiser_it_names(init):
    vg.manual_seed(7)
    layer = vg.Linear(6, 4, init=init)
    vg.manual_seed(7)
    expected = vg.init.INITIALISERS[init]((4, 6))
    np.testing.assert_array_equal(layer.w.value, expected)
    np.testing.assert_array_equal(layer.b.value, np.zeros((1, 4)))


def test_linear_calls_an_initialiser_function_with_the_weight_shape_and_dtype():
    calls = []

    def halves(shape, dtype):
        calls.append((shape, dtype))
        return np.full(shape, 0.5, dtype=dtype)

    layer = vg.Linear(3, 2, init=halves, dtype=np.float32)
    assert calls == [((2, 3), np.float32)]
    assert layer.w.dtype == np.float32 and layer.b.dtype == np.float32
    np.testing.assert_array_equal(layer.w.value, np.full((2, 3), 0.5, np.float32))
    y = layer(vg.TensorNode(np.ones((1, 3), np.float32)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.value, [[1.5, 1.5]], rtol=1e-7)


def test_linear_rejects_an_unknown_initialiser_name():
    with pytest.raises(ValueError, match="unknown initialiser 'glorot'"):
        vg.Linear(2, 2, init="glorot")


# ---- MLP ----

ACTIVATIONS = [
    ("relu", lambda x: np.maximum(x, 0)),
    ("sigmoid", sigmoid),
    ("tanh", np.tanh),
    ("leaky_relu", lambda x: np.where(x > 0, x, 0.01 * x)),
    ("softplus", lambda x: np.logaddexp(0, x)),
    ("identity", lambda x: x),
]
OUTPUT_ACTIVATIONS = [
    (None, lambda x: x),
    ("softmax", softmax),
    ("log_softmax", log_softmax),
]


def mlp_reference(model, x, activation, output_activation, residual):
    h = x
    for layer in model.layers[:-1]:
        a = activation(h @ layer.w.value.T + layer.b.value)
        h = h + a if residual and a.shape == h.shape else a
    last = model.layers[-1]
    return output_activation(h @ last.w.value.T + last.b.value)


@pytest.mark.parametrize("output_activation, output_reference", OUTPUT_ACTIVATIONS, ids=["logits", "softmax", "log_softmax"])
@pytest.mark.parametrize("activation, reference", ACTIVATIONS, ids=[a for a, _ in ACTIVATIONS])
def test_mlp_matches_a_numpy_forward(activation, reference, output_activation, output_reference):
    rng = np.random.default_rng(0)
    model = vg.MLP([3, 5, 4, 2], activation=activation, output_activation=output_activation)
    randomise_biases(model, rng)
    x = rng.standard_normal((6, 3))
    np.testing.assert_allclose(model(vg.TensorNode(x)).value,
                               mlp_reference(model, x, reference, output_reference, residual=False),
                               rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_residual_mlp_adds_the_input_on_hidden_layers_of_equal_size(seed):
    rng = np.random.default_rng(seed)
    model = vg.MLP([3, 4, 4, 4, 2], activation="tanh", residual=True)
    randomise_biases(model, rng)
    x = rng.standard_normal((5, 3))
    out = model(vg.TensorNode(x)).value
    np.testing.assert_allclose(out, mlp_reference(model, x, np.tanh, lambda z: z, residual=True), rtol=1e-11)
    assert not np.allclose(out, mlp_reference(model, x, np.tanh, lambda z: z, residual=False))


def test_mlp_layers_have_the_given_sizes_and_dotted_names():
    model = vg.MLP([784, 32, 16, 10])
    assert names(model) == ["layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b", "layers.2.w", "layers.2.b"]
    assert [p.shape for p in model.parameters()] == [(32, 784), (1, 32), (16, 32), (1, 16), (10, 16), (1, 10)]
    assert model(vg.TensorNode(np.ones((3, 784)))).shape == (3, 10)


@pytest.mark.parametrize("sizes", [[], [4]])
def test_mlp_needs_an_input_and_an_output_size(sizes):
    with pytest.raises(ValueError, match="at least an input and an output size"):
        vg.MLP(sizes)


def test_residual_mlp_gradients_match_finite_differences():
    vg.manual_seed(0)
    model = vg.MLP([3, 4, 4, 2], activation="tanh", residual=True, output_activation="log_softmax")
    randomise_biases(model, np.random.default_rng(1))
    x = vg.TensorNode(np.random.default_rng(2).standard_normal((5, 3)))
    report = vg.gradcheck(lambda x, *params: model(x), [x, *model.parameters()])
    assert report.ok and len(report.rows) == 7


# ---- Sequential, activation modules, Residual ----

def test_sequential_applies_its_modules_in_order_and_indexes_like_a_list():
    rng = np.random.default_rng(0)
    first, second = vg.Linear(3, 4), vg.Linear(4, 2)
    seq = vg.Sequential(first, modules.ReLU(), second)
    assert len(seq) == 3 and seq[0] is first and seq[-1] is second and isinstance(seq[1], modules.ReLU)
    assert names(seq) == ["layers.0.w", "layers.0.b", "layers.2.w", "layers.2.b"]
    x = rng.standard_normal((5, 3))
    expected = np.maximum(x @ first.w.value.T, 0) @ second.w.value.T
    np.testing.assert_allclose(seq(vg.TensorNode(x)).value, expected, rtol=1e-12)


def test_sequential_rejects_what_is_not_a_module():
    with pytest.raises(TypeError, match="function is not a Module"):
        vg.Sequential(vg.Linear(2, 2), lambda x: x)


MODULES = [
    ("relu", modules.ReLU(), lambda x: np.maximum(x, 0)),
    ("sigmoid", modules.Sigmoid(), sigmoid),
    ("tanh", modules.Tanh(), np.tanh),
    ("softplus", modules.Softplus(), lambda x: np.logaddexp(0, x)),
    ("leaky_relu", modules.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu-0.2", modules.LeakyReLU(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    ("softmax", modules.Softmax(), softmax),
    ("softmax-axis0", modules.Softmax(axis=0), lambda x: softmax(x, axis=0)),
    ("log_softmax", modules.LogSoftmax(), log_softmax),
    ("log_softmax-axis0", modules.LogSoftmax(axis=0), lambda x: log_softmax(x, axis=0)),
    ("identity", modules.Identity(), lambda x: x),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("module, reference", [row[1:] for row in MODULES], ids=[row[0] for row in MODULES])
def test_activation_module_matches_numpy(module, reference, seed):
    x = np.random.default_rng(seed).standard_normal((4, 5)) * 3
    np.testing.assert_allclose(module(vg.TensorNode(x)).value, reference(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, cls", [
    ("relu", modules.ReLU), ("sigmoid", modules.Sigmoid), ("tanh", modules.Tanh), ("softplus", modules.Softplus),
    ("leaky_relu", modules.LeakyReLU), ("softmax", modules.Softmax), ("log_softmax", modules.LogSoftmax),
    ("identity", modules.Identity), (None, modules.Identity),
])
def test_get_activation_builds_the_module_it_names(name, cls):
    assert type(modules.get_activation(name)) is cls


def test_get_activation_passes_a_module_through_and_rejects_unknown_names():
    module = modules.LeakyReLU(0.3)
    assert modules.get_activation(module) is module
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        modules.get_activation("gelu")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        vg.MLP([2, 2], activation="swish")


@pytest.mark.parametrize("seed", SEEDS)
def test_residual_adds_the_input_to_the_module_output(seed):
    rng = np.random.default_rng(seed)
    inner = vg.Linear(4, 4)
    block = vg.Residual(inner)
    assert names(block) == ["module.w", "module.b"]
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(block(vg.TensorNode(x)).value, x + x @ inner.w.value.T, rtol=1e-12)


def test_residual_rejects_a_module_that_changes_the_shape():
    with pytest.raises(ValueError, match=r"maps shape \(3, 4\) to \(3, 2\)"):
        vg.Residual(vg.Linear(4, 2))(vg.TensorNode(np.ones((3, 4))))


# ---- Dropout ----

def test_dropout_in_evaluation_is_the_identity():
    x = np.random.default_rng(0).standard_normal((50, 40))
    drop = vg.Dropout(0.5).eval()
    np.testing.assert_array_equal(drop(vg.TensorNode(x)).value, x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_survivors_by_one_over_one_minus_p(p):
    vg.manual_seed(0)
    x = np.random.default_rng(1).uniform(1.0, 2.0, (400, 500))
    out = vg.Dropout(p)(vg.TensorNode(x)).value
    dropped = out == 0
    assert abs(dropped.mean() - p) < 0.01  # the fraction's std is below 0.0012 for 200,000 draws
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_gradient_is_the_mask_scaled_like_the_forward(dtype):
    vg.manual_seed(3)
    x = vg.TensorNode(np.random.default_rng(0).uniform(1.0, 2.0, (20, 30)).astype(dtype))
    out = vg.Dropout(0.25)(x)
    assert out.dtype == dtype
    out.sum().backward()
    np.testing.assert_allclose(x.grad, np.where(out.value == 0, 0.0, 1 / 0.75), rtol=1e-6)


def test_dropout_with_p_zero_is_the_identity_and_with_p_one_gives_zeros():
    x = np.random.default_rng(0).standard_normal((30, 30))
    np.testing.assert_array_equal(vg.Dropout(0.0)(vg.TensorNode(x)).value, x)
    np.testing.assert_array_equal(vg.Dropout(1.0)(vg.TensorNode(x)).value, np.zeros_like(x))


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_a_probability_outside_zero_one(p):
    with pytest.raises(ValueError, match="p must be in"):
        vg.Dropout(p)


def test_dropout_masks_are_reproducible_with_manual_seed():
    x = vg.TensorNode(np.ones((20, 20)))
    drop = vg.Dropout(0.5)
    vg.manual_seed(11)
    first = drop(x).value.copy()
    vg.manual_seed(11)
    again = drop(x).value.copy()
    vg.manual_seed(12)
    other = drop(x).value.copy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


# ---- BatchNorm1d ----

def batch(rng, n=8, features=3):
    return rng.standard_normal((n, features)) * [1.0, 3.0, 0.5] + [0.0, 5.0, -2.0]


@pytest.mark.parametrize("momentum", [0.1, 0.4])
def test_batchnorm_in_training_normalises_with_batch_statistics_and_updates_running_ones_as_pytorch(momentum):
    rng = np.random.default_rng(0)
    bn = vg.BatchNorm1d(3, momentum=momentum)
    np.testing.assert_array_equal(bn.running_mean, np.zeros((1, 3)))
    np.testing.assert_array_equal(bn.running_var, np.ones((1, 3)))
    bn.weight.value[...] = [[1.5, -0.5, 2.0]]
    bn.bias.value[...] = [[0.1, 0.2, -0.3]]
    running_mean, running_var = np.zeros((1, 3)), np.ones((1, 3))
    for n in (8, 5):
        x = batch(rng, n)
        mean, var = x.mean(axis=0, keepdims=True), x.var(axis=0, keepdims=True)
        expected = (x - mean) / np.sqrt(var + 1e-5) * bn.weight.value + bn.bias.value
        np.testing.assert_allclose(bn(vg.TensorNode(x)).value, expected, rtol=1e-10, atol=1e-12)
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1, keepdims=True)
        np.testing.assert_allclose(bn.running_mean, running_mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, running_var, rtol=1e-12)


def test_batchnorm_in_evaluation_uses_the_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(1)
    bn = vg.BatchNorm1d(3, eps=1e-3)
    bn.running_mean[...] = [[0.5, -1.0, 2.0]]
    bn.running_var[...] = [[4.0, 0.25, 1.0]]
    bn.weight.value[...] = [[2.0, 1.0, -1.0]]
    bn.bias.value[...] = [[0.0, 1.0, 0.5]]
    bn.eval()
    x = batch(rng, 1)  # a single instance is fine in evaluation
    expected = (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-3) * bn.weight.value + bn.bias.value
    np.testing.assert_allclose(bn(vg.TensorNode(x)).value, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.running_mean, [[0.5, -1.0, 2.0]])
    np.testing.assert_array_equal(bn.running_var, [[4.0, 0.25, 1.0]])


def test_batchnorm_in_training_needs_more_than_one_instance():
    with pytest.raises(ValueError, match="more than 1 instance"):
        vg.BatchNorm1d(3)(vg.TensorNode(np.ones((1, 3))))


@pytest.mark.parametrize("shape", [(4, 2), (4,), (2, 4, 3)])
def test_batchnorm_rejects_inputs_of_the_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"expected input of shape \(n, 3\)"):
        vg.BatchNorm1d(3)(vg.TensorNode(np.ones(shape)))


def test_batchnorm_gradients_in_training_match_finite_differences():
    rng = np.random.default_rng(2)
    bn = vg.BatchNorm1d(3)
    bn.weight.value[...] = rng.standard_normal((1, 3))
    bn.bias.value[...] = rng.standard_normal((1, 3))
    x = vg.TensorNode(batch(rng, 6))
    report = vg.gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias], names=["x", "weight", "bias"])
    assert report.ok
    assert np.abs(report.analytic[0]).max() > 1e-3  # the input's gradient is not trivially zero


# ---- loss modules ----

def class_targets(rng, n=6, classes=4):
    return rng.integers(0, classes, n)


LOSSES = [
    # module class, input (from rng), target (from rng), per-element loss in numpy
    ("cross_entropy", nn.CrossEntropyLoss,
     lambda rng: rng.standard_normal((6, 4)) * 2, class_targets,
     lambda z, t: -log_softmax(z)[np.arange(len(t)), t]),
    ("nll", nn.NLLLoss,
     lambda rng: log_softmax(rng.standard_normal((6, 4))), class_targets,
     lambda lp, t: -lp[np.arange(len(t)), t]),
    ("bce", nn.BCELoss,
     lambda rng: rng.uniform(0.1, 0.9, (5, 3)), lambda rng: rng.uniform(0, 1, (5, 3)),
     lambda p, t: -(t * np.log(p) + (1 - t) * np.log(1 - p))),
    ("bce_with_logits", nn.BCEWithLogitsLoss,
     lambda rng: rng.standard_normal((5, 3)) * 3, lambda rng: rng.uniform(0, 1, (5, 3)),
     lambda z, t: -(t * np.log(sigmoid(z)) + (1 - t) * np.log(1 - sigmoid(z)))),
    ("mse", nn.MSELoss,
     lambda rng: rng.standard_normal((5, 3)), lambda rng: rng.standard_normal((5, 3)),
     lambda p, t: (p - t) ** 2),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cls, make_input, make_target, reference", [row[1:] for row in LOSSES],
                         ids=[row[0] for row in LOSSES])
def test_loss_module_matches_numpy(cls, make_input, make_target, reference, reduction, seed):
    rng = np.random.default_rng(seed)
    inputs, targets = make_input(rng), make_target(rng)
    per_element = reference(inputs, targets)
    expected = per_element.mean() if reduction == "mean" else per_element.sum()
    loss = cls(reduction=reduction)(vg.TensorNode(inputs), targets)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-11)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cls, make_input, make_target, reference", [row[1:] for row in LOSSES],
                         ids=[row[0] for row in LOSSES])
def test_loss_module_gradients_match_finite_differences(cls, make_input, make_target, reference, reduction):
    rng = np.random.default_rng(5)
    inputs, targets = make_input(rng), make_target(rng)
    loss = cls(reduction=reduction)
    assert vg.gradcheck(lambda x: loss(x, targets), [vg.TensorNode(inputs)]).ok


@pytest.mark.parametrize("seed", SEEDS)
def test_nll_loss_with_sum_reduction_equals_vugrads_logceloss(seed):
    rng = np.random.default_rng(seed)
    logprobs, targets = vg.logsoftmax(vg.TensorNode(rng.standard_normal((7, 5)))), rng.integers(0, 5, 7)
    np.testing.assert_allclose(vg.nll_loss(logprobs, targets, reduction="sum").item(),
                               vg.logceloss(logprobs, targets).item(), rtol=1e-14)
    np.testing.assert_allclose(vg.nll_loss(logprobs, targets).item(),
                               vg.logceloss(logprobs, targets).item() / 7, rtol=1e-14)


def test_nll_loss_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        vg.nll_loss(vg.TensorNode(np.zeros((2, 2))), np.array([0, 1]), reduction="none")
