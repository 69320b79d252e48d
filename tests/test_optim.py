"""tapegrad.optim: each optimiser's steps against a numpy reference of PyTorch's update rule, state
handling, argument checks, learning-rate schedules, state_dict round trips, and a short training run."""

import math

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import optim

STEPS = 5
SHAPES = [(3, 4), (5,)]


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    """manual_seed sets process-wide state: every test starts and ends without it."""
    vg.init._generator = None
    yield
    vg.init._generator = None


# ---- numpy references (PyTorch's documented update rules), one parameter ----

class SGDReference:
    def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.buf = None

    def step(self, p, g):
        d = g + self.weight_decay * p
        if self.momentum != 0:
            if self.buf is None:
                self.buf = d.copy()
            else:
                self.buf = self.momentum * self.buf + (1 - self.dampening) * d
            d = d + self.momentum * self.buf if self.nesterov else self.buf
        return p - self.lr * d


class AdamReference:
    def __init__(self, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.m = self.v = 0.0
        self.t = 0

    def step(self, p, g):
        self.t += 1
        if self.decoupled:
            p = p * (1 - self.lr * self.weight_decay)
        else:
            g = g + self.weight_decay * p
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        return p - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def AdamWReference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return AdamReference(lr, betas, eps, weight_decay, decoupled=True)


class RMSpropReference:
    def __init__(self, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.weight_decay, self.momentum = weight_decay, momentum
        self.square_avg = self.buf = 0.0

    def step(self, p, g):
        g = g + self.weight_decay * p
        self.square_avg = self.alpha * self.square_avg + (1 - self.alpha) * g * g
        update = g / (np.sqrt(self.square_avg) + self.eps)
        if self.momentum != 0:
            self.buf = self.momentum * self.buf + update
            update = self.buf
        return p - self.lr * update


CASES = [
    # id, optimiser, reference, keyword arguments of both
    ("sgd", optim.SGD, SGDReference, {"lr": 0.1}),
    ("sgd-momentum", optim.SGD, SGDReference, {"lr": 0.1, "momentum": 0.9}),
    ("sgd-dampening", optim.SGD, SGDReference, {"lr": 0.1, "momentum": 0.8, "dampening": 0.3}),
    ("sgd-nesterov", optim.SGD, SGDReference, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd-weight-decay", optim.SGD, SGDReference, {"lr": 0.1, "weight_decay": 0.1}),
    ("sgd-all", optim.SGD, SGDReference, {"lr": 0.05, "momentum": 0.7, "nesterov": True, "weight_decay": 0.2}),
    ("adam", optim.Adam, AdamReference, {"lr": 0.01}),
    ("adam-betas", optim.Adam, AdamReference, {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-6}),
    ("adam-weight-decay", optim.Adam, AdamReference, {"lr": 0.01, "weight_decay": 0.3}),
    ("adamw", optim.AdamW, AdamWReference, {"lr": 0.01}),
    ("adamw-weight-decay", optim.AdamW, AdamWReference, {"lr": 0.05, "weight_decay": 0.5}),
    ("rmsprop", optim.RMSprop, RMSpropReference, {"lr": 0.01}),
    ("rmsprop-momentum", optim.RMSprop, RMSpropReference, {"lr": 0.01, "momentum": 0.9}),
    ("rmsprop-weight-decay", optim.RMSprop, RMSpropReference, {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.2}),
    ("rmsprop-all", optim.RMSprop, RMSpropReference,
     {"lr": 0.02, "alpha": 0.8, "eps": 1e-4, "weight_decay": 0.1, "momentum": 0.5}),
]
CASE_IDS = [row[0] for row in CASES]
OPTIMISERS = [row[1:] for row in CASES]
STATEFUL = [row for row in CASES if row[0] not in ("sgd", "sgd-weight-decay")]  # keep per-parameter arrays


def gradients(seed, shapes=SHAPES, steps=STEPS):
    """Per step, one random gradient per parameter."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


def parameters(seed, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed + 100)
    return [vg.TensorNode(rng.standard_normal(s).astype(dtype)) for s in shapes]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("cls, reference, kwargs", OPTIMISERS, ids=CASE_IDS)
def test_optimiser_steps_match_the_numpy_reference(cls, reference, kwargs, seed):
    params = parameters(seed)
    opt = cls(params, **kwargs)
    refs = [reference(**kwargs) for _ in params]
    expected = [p.value.copy() for p in params]
    for step, grads in enumerate(gradients(seed)):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for i, (p, ref, g) in enumerate(zip(params, refs, grads)):
            expected[i] = ref.step(expected[i], g)
            np.testing.assert_allclose(p.value, expected[i], rtol=1e-11, atol=1e-13,
                                       err_msg=f"parameter {i} after step {step + 1}")


@pytest.mark.parametrize("cls, reference, kwargs", OPTIMISERS, ids=CASE_IDS)
def test_optimiser_updates_float32_parameters_in_float32(cls, reference, kwargs):
    params = parameters(0, dtype=np.float32)
    opt = cls(params, **kwargs)
    refs = [reference(**kwargs) for _ in params]
    expected = [p.value.astype(np.float64) for p in params]
    for grads in gradients(0):
        for p, g in zip(params, grads):
            p.grad = g.astype(np.float32)
        opt.step()
        expected = [ref.step(e, g.astype(np.float32).astype(np.float64)) for ref, e, g in zip(refs, expected, grads)]
    for p, e in zip(params, expected):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.value, e, rtol=2e-5, atol=2e-6)
    for st in opt.state:
        assert all(v.dtype == np.float32 for v in st.values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("cls, reference, kwargs", OPTIMISERS, ids=CASE_IDS)
def test_parameters_without_a_gradient_are_not_changed_and_get_no_state(cls, reference, kwargs):
    with_grad, without = parameters(0)
    before = without.value.copy()
    version = without._version
    opt = cls([with_grad, without], **kwargs)
    for grads in gradients(0)[:3]:
        with_grad.grad = grads[0]
        opt.step()
    np.testing.assert_array_equal(without.value, before)
    assert without._version == version and not without._has_grad
    assert opt.state[1] == {}


def test_adam_counts_steps_per_parameter_from_its_first_gradient():
    early, late = parameters(3)
    opt = optim.Adam([early, late], lr=0.1)
    ref_early, ref_late = AdamReference(0.1), AdamReference(0.1)
    expected_early, expected_late = early.value.copy(), late.value.copy()
    for step, (g_early, g_late) in enumerate(gradients(3)):
        early.grad = g_early
        expected_early = ref_early.step(expected_early, g_early)
        if step >= 2:  # late first gets a gradient at the third step: bias correction starts at t = 1
            late.grad = g_late
            expected_late = ref_late.step(expected_late, g_late)
        opt.step()
    np.testing.assert_allclose(early.value, expected_early, rtol=1e-11)
    np.testing.assert_allclose(late.value, expected_late, rtol=1e-11)
    assert opt.state[0]["step"] == 5 and opt.state[1]["step"] == 3


@pytest.mark.parametrize("cls, reference, kwargs", OPTIMISERS, ids=CASE_IDS)
def test_step_updates_the_parameter_buffer_in_place_and_bumps_its_version(cls, reference, kwargs):
    (p,) = parameters(0, shapes=[(4, 3)])
    buffer = p.value
    before = buffer.copy()
    version = p._version
    opt = cls([p], **kwargs)
    p.grad = np.ones((4, 3))
    opt.step()
    assert p._version > version
    assert np.shares_memory(buffer, p.value)
    assert not np.array_equal(buffer, before)
    np.testing.assert_array_equal(buffer, p.value)


def test_a_graph_that_saved_a_parameter_refuses_to_backward_after_a_step():
    w = vg.TensorNode(np.ones((2, 2)))
    out = (w * w).sum()  # multiply saves w for its backward
    w.grad = np.ones((2, 2))
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(Exception, match="version"):
        out.backward()


def test_zero_grad_clears_every_parameters_gradient():
    params = parameters(0)
    for p, g in zip(params, gradients(0)[0]):
        p.grad = g
    opt = optim.Adam(params)
    opt.zero_grad()
    assert not any(p._has_grad for p in params)


def leaf():
    return vg.TensorNode(np.ones(3))


@pytest.mark.parametrize("make, error, message", [
    (lambda: optim.SGD([], lr=0.1), ValueError, "empty list"),
    (lambda: optim.Adam(iter([])), ValueError, "empty list"),
    (lambda: optim.SGD([np.ones(3)], lr=0.1), TypeError, "parameter 0 is a ndarray, not a TensorNode"),
    (lambda: optim.RMSprop([leaf(), 1.0]), TypeError, "parameter 1 is a float"),
    (lambda: optim.SGD([leaf() * 2.0], lr=0.1), ValueError, "made by an op"),
    (lambda: optim.SGD([leaf()], lr=-0.1), ValueError, "learning rate must be >= 0"),
    (lambda: optim.Adam([leaf()], lr=-1e-3), ValueError, "learning rate must be >= 0"),
    (lambda: optim.AdamW([leaf()], lr=-1e-3), ValueError, "learning rate must be >= 0"),
    (lambda: optim.RMSprop([leaf()], lr=-1e-2), ValueError, "learning rate must be >= 0"),
    (lambda: optim.SGD([leaf()], lr=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda: optim.SGD([leaf()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda: optim.Adam([leaf()], betas=(1.0, 0.999)), ValueError, "betas must be in"),
    (lambda: optim.Adam([leaf()], betas=(0.9, 1.0)), ValueError, "betas must be in"),
    (lambda: optim.Adam([leaf()], betas=(-0.1, 0.999)), ValueError, "betas must be in"),
    (lambda: optim.AdamW([leaf()], betas=(0.9, 1.5)), ValueError, "betas must be in"),
], ids=["empty", "empty-iterator", "array", "number", "non-leaf", "sgd-lr", "adam-lr", "adamw-lr", "rmsprop-lr",
        "nesterov-without-momentum", "nesterov-with-dampening", "beta1-one", "beta2-one", "beta1-negative",
        "adamw-beta2"])
def test_optimiser_rejects_invalid_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---- learning-rate schedules ----

def test_step_lr_multiplies_by_gamma_every_step_size_epochs():
    opt = optim.SGD([leaf()], lr=0.2)
    schedule = optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = [opt.lr]
    for _ in range(10):
        schedule.step()
        lrs.append(opt.lr)
        assert schedule.get_last_lr() == opt.lr
    np.testing.assert_allclose(lrs, [0.2 * 0.5 ** (epoch // 3) for epoch in range(11)], rtol=1e-15)


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_annealing_follows_half_a_cosine_to_eta_min_then_stays(eta_min):
    opt = optim.Adam([leaf()], lr=0.1)
    schedule = optim.CosineAnnealingLR(opt, T_max=8, eta_min=eta_min)
    lrs = [opt.lr]
    for _ in range(12):
        schedule.step()
        lrs.append(opt.lr)
    expected = [eta_min + (0.1 - eta_min) * (1 + math.cos(math.pi * min(e, 8) / 8)) / 2 for e in range(13)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)
    assert lrs[4] == pytest.approx((0.1 + eta_min) / 2) and lrs[8] == pytest.approx(eta_min, abs=1e-15)


@pytest.mark.parametrize("make", [lambda opt: optim.StepLR(opt, step_size=0),
                                  lambda opt: optim.CosineAnnealingLR(opt, T_max=0)], ids=["step_lr", "cosine"])
def test_schedules_reject_a_period_below_one(make):
    with pytest.raises(ValueError, match="must be >= 1"):
        make(optim.SGD([leaf()], lr=0.1))


def test_the_optimiser_steps_with_the_scheduled_learning_rate():
    w = vg.TensorNode(np.zeros(2))
    opt = optim.SGD([w], lr=1.0)
    schedule = optim.StepLR(opt, step_size=1, gamma=0.1)
    schedule.step()
    w.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(w.value, [-0.1, -0.1], rtol=1e-15)


# ---- state_dict ----

def run(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("cls, reference, kwargs", OPTIMISERS, ids=CASE_IDS)
def test_an_optimiser_restored_midway_from_state_dict_ends_where_the_original_does(cls, reference, kwargs):
    grads = gradients(7, steps=6)
    straight = parameters(7)
    run(cls(straight, **kwargs), straight, grads)

    first_half = parameters(7)
    opt = cls(first_half, **kwargs)
    run(opt, first_half, grads[:3])
    saved = opt.state_dict()
    resumed = [vg.TensorNode(p.value.copy()) for p in first_half]
    other = dict(kwargs, lr=123.0)  # lr and state come from the state_dict
    restored = cls(resumed, **other)
    restored.load_state_dict(saved)
    assert restored.lr == kwargs["lr"]
    run(restored, resumed, grads[3:])
    for a, b in zip(straight, resumed):
        # not bitwise: the engine's vectorised kernels round differently with the buffers' alignment
        np.testing.assert_allclose(a.value, b.value, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("cls, reference, kwargs", [row[1:] for row in STATEFUL], ids=[row[0] for row in STATEFUL])
def test_state_dict_is_a_copy_that_later_steps_leave_alone(cls, reference, kwargs):
    params = parameters(0)
    opt = cls(params, **kwargs)
    run(opt, params, gradients(0)[:2])
    saved = opt.state_dict()
    frozen = {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in saved["state"].items()}
    assert any(isinstance(v, np.ndarray) for st in frozen.values() for v in st.values())
    run(opt, params, gradients(1)[:2])
    for i, st in frozen.items():
        for k, v in st.items():
            np.testing.assert_array_equal(saved["state"][i][k], v, err_msg=f"{i}/{k}")


@pytest.mark.parametrize("cls, reference, kwargs", [row[1:] for row in STATEFUL], ids=[row[0] for row in STATEFUL])
def test_load_state_dict_copies_the_state_so_later_steps_leave_the_dict_alone(cls, reference, kwargs):
    params = parameters(0)
    opt = cls(params, **kwargs)
    run(opt, params, gradients(0)[:2])
    saved = opt.state_dict()
    frozen = {i: {k: np.array(v, copy=True) for k, v in st.items()} for i, st in saved["state"].items()}
    restored_params = parameters(0)
    restored = cls(restored_params, **kwargs)
    restored.load_state_dict(saved)
    run(restored, restored_params, gradients(1)[:2])
    for i, st in frozen.items():
        for k, v in st.items():
            np.testing.assert_array_equal(saved["state"][i][k], v, err_msg=f"{i}/{k}")


def test_load_state_dict_rejects_the_state_of_another_optimiser_type():
    saved = optim.SGD([leaf()], lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="state of a SGD optimiser, not a Adam"):
        optim.Adam([leaf()]).load_state_dict(saved)
    with pytest.raises(ValueError, match="not a AdamW"):
        optim.AdamW([leaf()]).load_state_dict(optim.Adam([leaf()]).state_dict())


def test_load_state_dict_rejects_a_state_for_another_number_of_parameters():
    saved = optim.Adam([leaf(), leaf()]).state_dict()
    with pytest.raises(ValueError, match="state for 2 parameters, this optimiser has 1"):
        optim.Adam([leaf()]).load_state_dict(saved)


def test_load_state_dict_rejects_state_of_another_shape():
    w = leaf()
    opt = optim.Adam([w])
    w.grad = np.ones(3)
    opt.step()
    with pytest.raises(ValueError, match="has shape \\(3,\\), the parameter \\(4,\\)"):
        optim.Adam([vg.TensorNode(np.ones(4))]).load_state_dict(opt.state_dict())


# ---- end to end ----

def test_adam_trains_an_mlp_on_the_synthetic_task_to_over_90_percent_validation_accuracy():
    vg.manual_seed(0)
    (xtrain, ytrain), (xval, yval), classes = vg.load_synth(num_train=2000, num_val=500, seed=1)
    model = vg.MLP([2, 16, classes])
    opt = optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)
    for epoch in range(4):
        order = rng.permutation(len(xtrain))
        for start in range(0, len(xtrain), 50):
            batch = order[start:start + 50]
            loss = vg.cross_entropy(model(vg.TensorNode(xtrain[batch], requires_grad=False)), ytrain[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with vg.no_grad():
        predictions = model(vg.TensorNode(xval, requires_grad=False)).value.argmax(axis=1)
    assert (predictions == yval).mean() > 0.9


@pytest.mark.parametrize("make", [
    lambda ps: vg.optim.SGD(ps, momentum=-0.1),
    lambda ps: vg.optim.SGD(ps, weight_decay=-1.0),
    lambda ps: vg.optim.Adam(ps, eps=-1e-8),
    lambda ps: vg.optim.RMSprop(ps, alpha=1.5),
    lambda ps: vg.optim.RMSprop(ps, momentum=-0.5),
], ids=["sgd-momentum", "sgd-weight-decay", "adam-eps", "rmsprop-alpha", "rmsprop-momentum"])
def test_optimisers_reject_negative_or_out_of_range_hyper_parameters_like_pytorch(make):
    with pytest.raises(ValueError, match="must be"):
        make([vg.TensorNode(np.zeros(2))])
