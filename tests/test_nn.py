"""Modules, Linear, and the activations and losses of vugrad's course against numpy and finite differences."""

import numpy as np
import pytest

import tapegrad as vg
from helpers import engine_grads, numeric_grads

SEEDS = [0, 1, 2]


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_logsoftmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


# ---- Linear ----

@pytest.mark.parametrize("seed", SEEDS)
def test_linear_computes_x_times_w_transposed_plus_b(seed):
    rng = np.random.default_rng(seed)
    layer = vg.Linear(4, 3)
    layer.b.value[...] = rng.standard_normal((1, 3))
    x = rng.standard_normal((5, 4))
    y = layer(vg.TensorNode(x))
    assert y.shape == (5, 3)
    np.testing.assert_allclose(y.value, x @ layer.w.value.T + layer.b.value, rtol=1e-12)


def test_linear_weights_follow_glorot_normal_and_bias_starts_at_zero():
    np.random.seed(0)
    layer = vg.Linear(600, 400)
    assert layer.w.shape == (400, 600) and layer.b.shape == (1, 400)
    assert abs(layer.w.value.std() / np.sqrt(2.0 / (600 + 400)) - 1) < 0.01
    assert abs(layer.w.value.mean()) < 0.01 * np.sqrt(2.0 / (600 + 400))
    np.testing.assert_array_equal(layer.b.value, np.zeros((1, 400)))


def test_linear_rejects_inputs_of_the_wrong_shape():
    layer = vg.Linear(4, 3)
    for bad in (np.ones((5, 3)), np.ones(4), np.ones((2, 2, 4))):
        with pytest.raises(ValueError, match=r"Linear: expected input of shape \(n, 4\)"):
            layer(vg.TensorNode(bad))


def test_linear_parameters_are_its_weight_and_bias():
    layer = vg.Linear(2, 3)
    params = layer.parameters()
    assert len(params) == 2 and params[0] is layer.w and params[1] is layer.b


# ---- Module.parameters ----

class MLP(vg.Module):
    def __init__(self, sizes):
        super().__init__()
        self.first = vg.Linear(sizes[0], sizes[1])
        self.second = vg.Linear(sizes[1], sizes[2])

    def forward(self, x):
        return self.second(vg.sigmoid(self.first(x)))


class Collection(vg.Module):
    def __init__(self):
        super().__init__()
        self.scale = vg.TensorNode(np.ones(1))
        self.constant = vg.TensorNode(np.ones(1), requires_grad=False)
        self.layers = [vg.Linear(2, 2), vg.Linear(2, 1)]
        self.named = {"gate": vg.TensorNode(np.zeros(2))}
        self.again = self.scale
        self.inner = MLP((1, 2, 1))
        self.label = "not a parameter"


def test_parameters_collect_nested_modules_in_attribute_order():
    mlp = MLP((3, 4, 2))
    params = mlp.parameters()
    expected = [mlp.first.w, mlp.first.b, mlp.second.w, mlp.second.b]
    assert len(params) == 4 and all(p is e for p, e in zip(params, expected))


def test_parameters_look_into_lists_and_dicts_skip_constants_and_repeat_nothing():
    module = Collection()
    params = module.parameters()
    expected = [module.scale, *module.layers[0].parameters(), *module.layers[1].parameters(),
                module.named["gate"], *module.inner.parameters()]
    assert len(params) == len(expected) and all(p is e for p, e in zip(params, expected))
    assert all(p is not module.constant for p in params)


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Collection must define forward"):
        Collection()(vg.TensorNode(np.ones(1)))


# ---- activations and losses ----

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(3, 4), (1, 5), (4, 1)])
@pytest.mark.parametrize("fn, reference", [(vg.softmax, np_softmax), (vg.logsoftmax, np_logsoftmax),
                                           (vg.sigmoid, lambda x: 1 / (1 + np.exp(-x)))],
                         ids=["softmax", "logsoftmax", "sigmoid"])
def test_activation_matches_numpy_and_finite_differences(fn, reference, shape, seed):
    rng = np.random.default_rng(seed)
    x, upstream = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    np.testing.assert_allclose(fn(vg.TensorNode(x.copy())).value, reference(x), rtol=1e-12, atol=1e-14)

    def loss(nodes):
        return vg.Sum.do_forward(fn(nodes[0]) * upstream)

    (grad,), _ = engine_grads(loss, [x])
    (numeric,) = numeric_grads(loss, [x])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsoftmax_and_softmax_are_stable_for_large_logits(dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1000.0]], dtype=dtype)
    node = vg.TensorNode(x)
    logp = vg.logsoftmax(node)
    p = vg.softmax(node)
    assert logp.dtype == dtype and p.dtype == dtype
    assert np.all(np.isfinite(logp.value)) and np.all(np.isfinite(p.value))
    np.testing.assert_allclose(logp.value, np_logsoftmax(x.astype(np.float64)), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(p.value, np_softmax(x.astype(np.float64)), rtol=1e-6, atol=1e-7)
    vg.Sum.do_forward(vg.Select.do_forward(logp, indices=np.array([0, 1, 2]))).backward()
    assert np.all(np.isfinite(node.grad))
    expected = -np_softmax(x.astype(np.float64))
    expected[np.arange(3), [0, 1, 2]] += 1
    np.testing.assert_allclose(node.grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_celoss_and_logceloss_are_summed_negative_log_likelihoods(seed):
    rng = np.random.default_rng(seed)
    logits, targets = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    expected = -np_logsoftmax(logits)[np.arange(6), targets].sum()
    from_logprobs = vg.logceloss(vg.logsoftmax(vg.TensorNode(logits.copy())), targets)
    from_probs = vg.celoss(vg.softmax(vg.TensorNode(logits.copy())), targets)
    for loss in (from_logprobs, from_probs):
        assert loss.shape == ()
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loss_fn, activation", [(vg.logceloss, vg.logsoftmax), (vg.celoss, vg.softmax)],
                         ids=["logceloss", "celoss"])
def test_cross_entropy_grads_match_softmax_minus_one_hot_and_finite_differences(loss_fn, activation, seed):
    rng = np.random.default_rng(seed)
    logits, targets = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)

    def loss(nodes):
        return loss_fn(activation(nodes[0]), targets)

    (grad,), _ = engine_grads(loss, [logits])
    expected = np_softmax(logits)
    expected[np.arange(5), targets] -= 1
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, numeric_grads(loss, [logits])[0], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", SEEDS)
def test_two_layer_mlp_gradients_match_finite_differences(seed):
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    mlp = MLP((3, 4, 2))
    x, targets = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    names = ["first.w", "first.b", "second.w", "second.b"]
    arrays = [p.value.copy() for p in mlp.parameters()]

    def loss(nodes):
        mlp.first.w, mlp.first.b, mlp.second.w, mlp.second.b = nodes
        return vg.logceloss(vg.logsoftmax(mlp(vg.TensorNode(x))), targets)

    grads, _ = engine_grads(loss, arrays)
    for name, g, n in zip(names, grads, numeric_grads(loss, arrays)):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8, err_msg=name)


def test_training_the_mlp_on_the_synthetic_task_lowers_the_loss():
    np.random.seed(0)
    (xtrain, ytrain), _, classes = vg.load_synth(num_train=500, num_val=10, seed=0)
    mlp = MLP((2, 8, classes))
    losses = []
    for _ in range(60):
        loss = vg.logceloss(vg.logsoftmax(mlp(vg.TensorNode(xtrain))), ytrain)
        losses.append(loss.item())
        loss.backward()
        for p in mlp.parameters():
            p.value -= 0.5 / len(xtrain) * p.grad
        loss.zero_grad()
        loss.clear()
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", range(1, 11))
def test_row_kernels_agree_with_numpy_for_every_short_row_length(m, dtype):
    """Rows of 1 to 8 elements run with their length fixed at compile time (with_short_length):
    softmax, log_softmax and cross_entropy over m classes, and a bias's gradient over m units,
    against numpy, forward and backward, for each of those lengths and two longer ones."""
    import tapegrad as torch
    import tapegrad.nn.functional as F
    rng = np.random.default_rng(m)
    X, G = (rng.standard_normal((37, m)).astype(dtype) for _ in range(2))
    t = rng.integers(0, m, 37)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    x64 = X.astype(np.float64)
    soft, logsoft = np_softmax(x64), np_logsoftmax(x64)
    for fn, ref, grad in ((F.softmax, soft, soft * (G - (G * soft).sum(1, keepdims=True))),
                          (F.log_softmax, logsoft, G - soft * G.sum(1, keepdims=True))):
        x = torch.tensor(X, requires_grad=True)
        y = fn(x, dim=-1)
        y.backward(torch.tensor(G))
        np.testing.assert_allclose(y.detach().numpy(), ref, **tol)
        np.testing.assert_allclose(x.grad.numpy(), grad, **tol)
    x = torch.tensor(X, requires_grad=True)
    loss = F.cross_entropy(x, torch.tensor(t), reduction="sum")
    loss.backward()
    np.testing.assert_allclose(loss.item(), -logsoft[np.arange(37), t].sum(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), soft - np.eye(m)[t], **tol)
    b = torch.tensor(np.zeros(m, dtype=dtype), requires_grad=True)
    (torch.tensor(X) + b).backward(torch.tensor(G))
    np.testing.assert_allclose(b.grad.numpy(), G.astype(np.float64).sum(0), **tol)
