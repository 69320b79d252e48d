"""Soak: long MLP training keeps the process's resident memory flat.

Each training loop below frees its graph every step (by letting it go out of scope, or with
vugrad's ``loss.zero_grad(); loss.clear()``); after a warm-up, the resident set size (VmRSS in
/proc/self/status) may grow by less than 20 MB over the whole run. Skipped where /proc is missing
and under AddressSanitizer (whose quarantine holds freed memory).

CI runs SOAK_STEPS = 5,000 steps per loop (a fifth of that under anomaly mode, which is 10x slower
per step). The long run (100,000 steps per loop, about a minute):

    TAPEGRAD_SOAK_STEPS=100000 python -m pytest tests/test_soak.py -q

The RSS before and after each loop is printed at the end of the module, also with plain `pytest -q`.
"""

import collections
import os
import time

import numpy as np
import pytest

import tapegrad as vg
from helpers import ReLU, skip_if_sanitized

SOAK_STEPS = int(os.environ.get("TAPEGRAD_SOAK_STEPS", "5000"))
WARMUP = 500
BOUND_MB = 20

REPORT = []

pytestmark = [pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status (Linux)"),
              skip_if_sanitized]


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module", autouse=True)
def report_rss(request):
    """Prints each loop's RSS before and after once the module is done."""
    yield
    lines = [f"soak: {r}" for r in REPORT]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(scope="module")
def data():
    (x, y), _, _ = vg.load_synth(num_train=4096, num_val=10, seed=0)
    return x, y


def batches(x, y, batch=128):
    n = len(x)
    step = 0
    while True:
        start = (step * batch) % (n - batch + 1)
        yield x[start:start + batch], y[start:start + batch]
        step += 1


class VugradMLP(vg.Module):
    """vugrad's experiments/train_mlp.py model: Linear, sigmoid, Linear, log-softmax."""

    def __init__(self, input_size, output_size, hidden_mult=4, init="glorot_normal"):
        super().__init__()
        hidden = hidden_mult * input_size
        self.hidden = vg.Linear(input_size, hidden, init=init)
        self.output = vg.Linear(hidden, output_size, init=init)

    def forward(self, input):
        return vg.logsoftmax(self.output(vg.sigmoid(self.hidden(input))))


def initialiser(seed):
    """Glorot-normal weights from a generator of our own (vg.manual_seed would change the global one)."""
    rng = np.random.default_rng(seed)
    return lambda shape, dtype=np.float64: (rng.standard_normal(shape) * np.sqrt(2 / sum(shape))).astype(dtype)


def steps_out_of_scope(data):
    """vg.MLP, mean cross-entropy, Adam; each step's graph dies when `loss` is rebound."""
    model = vg.MLP([2, 32, 32, 2], activation="relu", init=initialiser(0))
    opt = vg.optim.Adam(model.parameters(), lr=1e-3)
    for xb, yb in batches(*data):
        loss = vg.cross_entropy(model(vg.TensorNode(xb, requires_grad=False)), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield loss.item()


def steps_vugrad(data):
    """vugrad's loop: celoss, backward, p.value -= lr * p.grad, loss.zero_grad(), loss.clear()."""
    model = VugradMLP(2, 2, init=initialiser(1))
    for xb, yb in batches(*data):
        outputs = model(vg.TensorNode(xb))
        loss = vg.logceloss(outputs, yb)
        loss.backward()
        for p in model.parameters():
            p.value -= 0.0001 * p.grad
        loss.zero_grad()
        loss.clear()
        yield loss.item()


def steps_python_op_under_anomaly_mode(data):
    """A Python op in every step, anomaly mode on (each op node keeps the stack that made it)."""
    model = vg.MLP([2, 16, 2], activation=None, init=initialiser(2))
    opt = vg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with vg.detect_anomaly():
        for xb, yb in batches(*data):
            h = ReLU.do_forward(model.layers[0](vg.TensorNode(xb, requires_grad=False)))
            loss = vg.cross_entropy(model.layers[1](h), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            yield loss.item()


# name: (loop, share of SOAK_STEPS it runs; anomaly mode formats a Python stack per op, 10x slower)
LOOPS = {"graph out of scope, Adam": (steps_out_of_scope, 1), "vugrad zero_grad and clear": (steps_vugrad, 1),
         "Python op under detect_anomaly": (steps_python_op_under_anomaly_mode, 0.2)}


@pytest.mark.parametrize("name", list(LOOPS))
def test_training_with_the_graph_freed_each_step_keeps_memory_flat(name, data):
    loop, share = LOOPS[name]
    n = int(SOAK_STEPS * share)
    steps = loop(data)
    try:
        first = [next(steps) for _ in range(WARMUP)]
        last = collections.deque(maxlen=100)  # a list of every loss would itself grow by 3 MB in 100,000 steps
        before = rss_mb()
        peak = before
        start = time.perf_counter()
        for k in range(n):
            loss = next(steps)
            assert np.isfinite(loss), f"step {k}: loss {loss}"
            last.append(loss)
            if k % 1000 == 0:
                peak = max(peak, rss_mb())
        seconds = time.perf_counter() - start
        after = rss_mb()
    finally:
        steps.close()  # leaves detect_anomaly() now, not whenever a failed test's traceback is freed
    peak = max(peak, after)
    REPORT.append(f"{name}: {n} steps in {seconds:.1f} s, RSS {before:.1f} MB after warm-up, "
                  f"{after:.1f} MB at the end (peak {peak:.1f} MB)")
    assert np.mean(last) < np.mean(first[:100])  # it trained
    assert peak - before < BOUND_MB, f"RSS grew from {before:.1f} MB to {peak:.1f} MB over {n} steps"
