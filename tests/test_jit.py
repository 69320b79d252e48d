"""vg.jit: a recorded training step, replayed in C++, gives eager mode's numbers bit for bit (losses,
parameters, gradients, optimiser state), records again when what it assumed changes, and refuses
with vg.TraceError what a replay could not repeat."""

import numpy as np
import pytest

import tapegrad as vg
import tapegrad.nn as nn
import tapegrad.nn.functional as F
from helpers import Cube, run_in_threads

BATCH = 32


def data(n=8 * BATCH + 12, features=2, classes=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype(dtype), rng.integers(0, classes, n).astype(np.int64)


def batches(x, y):
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)]


def vugrad_model(optimiser, dtype=np.float64, seed=0, **options):
    rng = np.random.default_rng(seed)
    l1, l2 = vg.Linear(2, 8), vg.Linear(8, 2)
    params = [l1.w, l1.b, l2.w, l2.b]
    for p in params:
        p.value = rng.standard_normal(p.shape).astype(dtype) * 0.5
    opt = optimiser(params, **options)

    def step(xb, yb):
        loss = vg.logceloss(vg.logsoftmax(l2(vg.sigmoid(l1(xb)))), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    return step, params, opt


def train(step, x, y, epochs=2, wrap=lambda xb: vg.TensorNode(xb, requires_grad=False)):
    losses = []
    for _ in range(epochs):
        for xb, yb in batches(x, y):
            losses.append(float(step(wrap(xb), yb).value))
    return losses


def values(params):
    return [np.array(p.value, copy=True) for p in params]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimiser, options", [
    (vg.optim.SGD, dict(lr=0.05)),
    (vg.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (vg.optim.Adam, dict(lr=0.01)),
    (vg.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    (vg.optim.RMSprop, dict(lr=0.01, momentum=0.5)),
])
def test_replay_matches_eager_bit_for_bit(optimiser, options, dtype):
    x, y = data(dtype=dtype)
    eager, p_eager, o_eager = vugrad_model(optimiser, dtype, **options)
    step, p_jit, o_jit = vugrad_model(optimiser, dtype, **options)
    jitted = vg.jit(step)
    assert train(jitted, x, y) == train(eager, x, y)
    for a, b in zip(values(p_jit), values(p_eager)):
        np.testing.assert_array_equal(a, b)
    for sa, sb in zip(o_jit.state, o_eager.state):
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])  # momentum buffers, moments and Adam's step counts
    # two signatures (full batches and the last one), each recorded twice; the rest replayed
    assert jitted.records == 4 and jitted.replays == 2 * 9 - 4


def test_arrays_and_nodes_as_arguments():
    """The step may get numpy arrays and make its own leaves from them; labels may be arrays."""
    x, y = data()
    eager, p_eager, _ = vugrad_model(vg.optim.SGD, lr=0.1)
    step, p_jit, _ = vugrad_model(vg.optim.SGD, lr=0.1)

    def from_arrays(step):
        return lambda xb, yb: step(vg.TensorNode(xb, requires_grad=False), yb)

    jitted = vg.jit(from_arrays(step))
    assert train(jitted, x, y, wrap=lambda a: a) == train(from_arrays(eager), x, y, wrap=lambda a: a)
    assert jitted.replays > 0
    assert "leaf of argument 0" in jitted.describe() and "indices from argument 1" in jitted.describe()


def test_pytorch_dialect_step_keeps_gradients_as_eager():
    """PyTorch's order (zero_grad, backward, step): .grad after the call is eager mode's."""
    import tapegrad as torch

    def make():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

        def step(xb, yb):
            opt.zero_grad()
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            return loss, net(xb)

        return step, net

    x, y = data(features=4, classes=3, dtype=np.float32)
    runs = {}
    for mode in ("eager", "jit"):
        step, net = make()
        if mode == "jit":
            step = vg.jit(step)
        out = []
        for xb, yb in batches(x, y)[:-1]:
            loss, logits = step(torch.tensor(xb), torch.tensor(yb))
            out.append((loss.item(), logits.detach().numpy().copy()))
        runs[mode] = (out, [(p.detach().numpy().copy(), p.grad.numpy().copy()) for p in net.parameters()])
    assert step.replays == 6
    for (la, xa), (lb, xb) in zip(*(runs[m][0] for m in ("eager", "jit"))):
        assert la == lb
        np.testing.assert_array_equal(xa, xb)
    for (pa, ga), (pb, gb) in zip(runs["eager"][1], runs["jit"][1]):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ga, gb)


def test_cnn_step():
    import tapegrad as torch

    def make():
        torch.manual_seed(1)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(4 * 4 * 4, 5))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(xb, yb):
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        return step, net, opt

    rng = np.random.default_rng(2)
    xs = rng.standard_normal((6, 8, 1, 8, 8)).astype(np.float32)
    ys = rng.integers(0, 5, (6, 8))
    results = []
    for jitted in (False, True):
        step, net, opt = make()
        step = vg.jit(step) if jitted else step
        losses = [step(torch.tensor(a), torch.tensor(b)).item() for a, b in zip(xs, ys)]
        results.append((losses, [p.detach().numpy().copy() for p in net.parameters()],
                        [st["step"] for st in opt.state]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    assert results[0][2] == results[1][2] == [6] * 4


def test_schedule_and_mode_changes_record_again():
    x, y = data()
    runs = []
    for jitted in (False, True):
        step, params, opt = vugrad_model(vg.optim.SGD, lr=0.1)
        step = vg.jit(step) if jitted else step
        losses = []
        for epoch in range(3):
            opt.lr = 0.1 / (epoch + 1)  # a new learning rate: the recording assumed the old one
            losses += train(step, x, y, epochs=1)
        runs.append((losses, values(params)))
    assert runs[0][0] == runs[1][0]
    # each epoch records its full batches twice again, and its last (smaller) batch once
    assert step.records == 3 * 3 and step.replays == 3 * 6

    model = vg.Sequential(vg.Linear(2, 4), vg.Dropout(0.5), vg.Linear(4, 2))
    model.eval()
    step = vg.jit(lambda xb: model(xb))
    xb = vg.TensorNode(x[:BATCH], requires_grad=False)
    for _ in range(3):
        step(xb)
    assert step.replays == 1
    model.train()
    with pytest.raises(vg.TraceError, match="Dropout in training mode"):
        step(xb)


def test_refusals_name_what_cannot_be_replayed():
    x, y = data()
    xb, yb = vg.TensorNode(x[:BATCH], requires_grad=False), y[:BATCH]
    step, params, opt = vugrad_model(vg.optim.SGD, lr=0.1)
    cases = {
        "the Python Op Cube": lambda: Cube.do_forward(xb),
        r"reads a value with \.item\(\)": lambda: step(xb, yb).item(),
        r"\.grad": lambda: (step(xb, yb), params[0].grad),
        r"value of a node made by an op": lambda: step(xb, yb).value,
        r"\.value = ": lambda: setattr(params[0], "value", np.zeros(params[0].shape)),
        "BatchNorm1d in training mode": lambda: vg.BatchNorm1d(2)(xb),
    }
    for message, body in cases.items():
        with pytest.raises(vg.TraceError, match=message):
            vg.jit(lambda xb, yb: body())(xb, yb)
        assert not vg._core.tracing()

    manual = vg.jit(lambda xb, yb: [p.value.__isub__(0.1) for p in params])
    with pytest.raises(ValueError):  # parameters read while recording are read-only views
        manual(xb, yb)

    def caught(xb, yb):
        try:
            step(xb, yb).item()
        except vg.TraceError:
            pass
        return None

    with pytest.raises(vg.TraceError, match=r"\.item\(\)"):  # caught inside, the recording is still void
        vg.jit(caught)(xb, yb)


def test_values_made_outside_the_tape_are_refused_at_the_second_call():
    x, y = data()
    step, params, opt = vugrad_model(vg.optim.SGD, lr=0.1)
    noisy = vg.jit(lambda xb, yb: step(vg.TensorNode(xb * 1.5, requires_grad=False), yb))  # numpy on an argument
    noisy(x[:BATCH], y[:BATCH])
    with pytest.raises(vg.TraceError, match="other values in the other call"):
        noisy(x[BATCH:2 * BATCH], y[BATCH:2 * BATCH])

    labels = vg.jit(lambda xb, yb: step(xb, yb % 2))  # numpy on the labels: the indices differ
    xb = vg.TensorNode(x[:BATCH], requires_grad=False)
    labels(xb, y[:BATCH])
    with pytest.raises(vg.TraceError, match="attributes"):
        labels(xb, y[BATCH:2 * BATCH])


def test_arguments_and_results():
    x, _ = data()
    w = vg.TensorNode(np.ones((2, 3)))
    both = vg.jit(lambda a: (a @ w, (a @ w).sum()))
    for _ in range(3):
        out = both(vg.TensorNode(x[:4], requires_grad=False))
    assert isinstance(out, tuple) and len(out) == 2 and both.replays == 1
    np.testing.assert_array_equal(out[0].value, x[:4] @ np.ones((2, 3)))
    with pytest.raises(TypeError, match="must return None, a TensorNode"):
        vg.jit(lambda a: 3.0)(vg.TensorNode(x[:4]))
    with pytest.raises(TypeError, match="by position"):
        both(a=vg.TensorNode(x[:4]))
    with pytest.raises(TypeError, match="hashable"):
        both([1, 2])
    with pytest.raises(TypeError, match="expected a function"):
        vg.jit(3)
    scaled = vg.jit(lambda a, k: a * k)  # a hashable constant argument is part of the signature
    for k in (2.0, 2.0, 2.0, 3.0):
        r = scaled(vg.TensorNode(x[:4]), k)
    np.testing.assert_array_equal(r.value, x[:4] * 3.0)
    assert scaled.replays == 1 and scaled.records == 3


def test_backward_options_retain_grad_and_detach():
    x, _ = data()
    w = vg.TensorNode(np.full((2, 2), 0.5))

    def body(a):
        h = a @ w
        h.retain_grad()
        d = h.detach()
        out = (h * d).sum()
        out.backward(retain_graph=True)
        out.backward(np.array(2.0))
        return out, h

    runs = []
    for jitted in (False, True):
        f = vg.jit(body) if jitted else body
        w.grad = None
        for i in range(4):
            out, h = f(vg.TensorNode(x[i:i + 3], requires_grad=False))
        runs.append((out.value.copy(), h.grad.copy(), w.grad.copy()))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_anomaly_mode_and_nesting_run_eagerly():
    x, y = data()
    step, params, _ = vugrad_model(vg.optim.SGD, lr=0.1)
    jitted = vg.jit(step)
    xb = vg.TensorNode(x[:BATCH], requires_grad=False)
    with vg.detect_anomaly():
        for _ in range(3):
            jitted(xb, y[:BATCH])
    assert jitted.records == 0 and jitted.replays == 0
    outer = vg.jit(lambda xb, yb: jitted(xb, yb) * 1.0)
    for _ in range(3):
        outer(xb, y[:BATCH])
    assert outer.replays == 1 and jitted.records == 0


def test_threads_replay_their_own_steps():
    x, y = data(n=40 * BATCH)
    serial = []
    for seed in (0, 1):
        step, params, _ = vugrad_model(vg.optim.SGD, seed=seed, lr=0.1)
        serial.append(train(vg.jit(step), x, y))
    results = {}

    def run(seed):
        step, params, _ = vugrad_model(vg.optim.SGD, seed=seed, lr=0.1)
        results[seed] = train(vg.jit(step), x, y)

    assert not run_in_threads(run, (0, 1))
    assert [results[0], results[1]] == serial


def test_zero_grad_in_place_and_reset():
    x, y = data()
    runs = []
    for jitted in (False, True):
        l1 = vg.Linear(2, 2)
        l1.w.value = np.eye(2)
        opt = vg.optim.SGD([l1.w, l1.b], lr=0.1)

        def step(xb, yb):
            loss = vg.logceloss(vg.logsoftmax(l1(xb)), yb)
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            return loss

        f = vg.jit(step) if jitted else step
        runs.append((train(f, x, y, epochs=1), l1.w.grad.copy()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    f.reset()
    assert "signature" in repr(f) and f.describe() == ""


def test_threads_may_share_one_step_function():
    """Recordings are made one at a time; replays of one signature run one at a time too."""
    w = vg.TensorNode(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=False)
    f = vg.jit(lambda a: vg.sigmoid(a @ w).sum(axis=1))
    x, _ = data(n=64)
    results = {}

    def run(t):
        results[t] = [f(vg.TensorNode(x[i:i + 8], requires_grad=False)).value.copy() for i in range(0, 64, 8)]

    assert not run_in_threads(run, range(4))
    expected = [(1 / (1 + np.exp(-(x[i:i + 8] @ w.value)))).sum(axis=1) for i in range(0, 64, 8)]
    for t in range(4):
        for a, b in zip(results[t], expected):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    assert f.records == 2  # (the replay counter is not atomic: not checked here)
