"""Thread safety: two Python threads training two separate models at once give the results of
training them one after the other, and grad mode and anomaly mode belong to the thread that sets
them.

The engine releases the GIL in backward, in optimiser steps and in forward kernels on 2**14 or more
elements, so the trainings really overlap in C++ (the wide models below, with 128 x 128
activations, run their forward kernels without the GIL too). Results are compared with
np.array_equal: a model's arithmetic does not depend on what another thread does. The exception is
Adam's and RMSprop's update, whose square root rounds differently in and out of SIMD packets, so
that it depends on where numpy placed the buffers (the last test here): those runs are compared
within rtol 1e-12.
"""

import threading

import numpy as np
import pytest

import tapegrad as vg
from helpers import Cube

STEPS = 300


def initialiser(seed):
    """Glorot-normal weights from a generator of our own (vg.manual_seed would change the global one)."""
    rng = np.random.default_rng(seed)
    return lambda shape, dtype=np.float64: (rng.standard_normal(shape) * np.sqrt(2 / sum(shape))).astype(dtype)


def make_run(sizes, optimizer, batch, seed, dtype=np.float64):
    """A model, its optimiser and its data, built in the calling thread from fixed seeds."""
    model = vg.MLP(sizes, activation="relu", dtype=dtype, init=initialiser(seed))
    (x, y), _, _ = vg.load_synth(num_train=5000, num_val=10, seed=seed)
    x = np.repeat(x, sizes[0] // 2, axis=1).astype(dtype)  # wide inputs for the wide model
    opt = optimizer(model.parameters())
    return dict(model=model, opt=opt, x=x, y=y, batch=batch, losses=[])


def train(run, steps=STEPS, barrier=None):
    """`steps` steps of mean cross-entropy; records the losses. With a barrier, waits for the other
    thread before starting so that both trainings overlap."""
    if barrier is not None:
        barrier.wait()
    model, opt, x, y, batch = run["model"], run["opt"], run["x"], run["y"], run["batch"]
    n = len(x)
    for step in range(steps):
        start = (step * batch) % (n - batch)
        xb = vg.TensorNode(x[start:start + batch], requires_grad=False)
        loss = vg.cross_entropy(model(xb), y[start:start + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        run["losses"].append(loss.item())


def snapshot(run):
    return [p.value.copy() for p in run["model"].parameters()], np.array(run["losses"])


CONFIGS = {
    # the brief's small model: forward kernels hold the GIL, backward and optimiser steps release it
    "small MLP, SGD and SGD with momentum": dict(steps=STEPS, exact=True, runs=[
        ([2, 16, 2], lambda p: vg.optim.SGD(p, lr=0.05), 128, 1, np.float64),
        ([2, 16, 2], lambda p: vg.optim.SGD(p, lr=0.02, momentum=0.9, nesterov=True), 128, 2, np.float64)]),
    # Adam's and RMSprop's square roots round differently in and out of SIMD packets, so their steps
    # depend on where numpy placed the buffers (see the test at the end): equal to the last bits only
    # when the allocations happen to align alike (measured: 8e-16 apart after 300 steps).
    "small MLP, Adam and RMSprop": dict(steps=STEPS, exact=False, runs=[
        ([2, 16, 2], lambda p: vg.optim.Adam(p, lr=1e-2), 128, 3, np.float64),
        ([2, 16, 2], lambda p: vg.optim.RMSprop(p, lr=1e-2), 128, 4, np.float64)]),
    # wide layers: the hidden layers' forward and backward kernels run without the GIL
    "wide MLP, float32 and float64": dict(steps=40, exact=True, runs=[
        ([64, 128, 128, 2], lambda p: vg.optim.SGD(p, lr=0.01), 128, 5, np.float32),
        ([64, 128, 128, 2], lambda p: vg.optim.SGD(p, lr=0.01, momentum=0.9), 128, 6, np.float64)]),
}


def train_both(runs, steps):
    """Trains the runs in threads started together; re-raises what a thread raised."""
    barrier = threading.Barrier(len(runs))
    errors = []

    def worker(run):
        try:
            train(run, steps, barrier)
        except BaseException as e:  # an exception in a thread would otherwise vanish
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"a training thread raised: {errors!r}"


def assert_same_training(sequential, concurrent, steps, exact=True):
    same = np.array_equal if exact else (lambda a, b: np.allclose(a, b, rtol=1e-12, atol=0))
    for k, (seq, con) in enumerate(zip(sequential, concurrent)):
        seq_params, seq_losses = snapshot(seq)
        con_params, con_losses = snapshot(con)
        assert len(con_losses) == steps
        assert same(seq_losses, con_losses), (
            f"model {k}: losses differ first at step {int(np.argmax(seq_losses != con_losses))}")
        for i, (a, b) in enumerate(zip(seq_params, con_params)):
            assert same(a, b), f"model {k}: parameter {i} differs (max {np.max(np.abs(a - b))})"
        assert seq_losses[-10:].mean() < seq_losses[:10].mean()  # the model did learn something


@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_two_threads_training_two_models_match_training_them_one_after_the_other(config):
    steps = config["steps"]
    sequential = [make_run(*run) for run in config["runs"]]
    for run in sequential:
        train(run, steps)
    concurrent = [make_run(*run) for run in config["runs"]]
    train_both(concurrent, steps)
    assert_same_training(sequential, concurrent, steps, config["exact"])


def test_six_threads_training_at_once_match_one_after_the_other():
    optimisers = [lambda p: vg.optim.SGD(p, lr=0.05), lambda p: vg.optim.SGD(p, lr=0.05, momentum=0.5),
                  lambda p: vg.optim.SGD(p, lr=0.01, weight_decay=1e-3)]
    runs = [([2, 32, 32, 2], optimisers[seed % 3], 64, seed, np.float64) for seed in range(10, 16)]
    sequential = [make_run(*run) for run in runs]
    for run in sequential:
        train(run, 100)
    concurrent = [make_run(*run) for run in runs]
    train_both(concurrent, 100)
    assert_same_training(sequential, concurrent, 100)


def run_in_lockstep(first, second):
    """Runs first(phase) in one thread and second(phase) in another, phase by phase: both finish
    phase k before either starts phase k + 1. Returns what each returned per phase."""
    barrier = threading.Barrier(2)
    results = {0: [], 1: []}
    errors = []

    def worker(k, fn):
        try:
            for phase in range(3):
                barrier.wait()
                results[k].append(fn(phase))
        except BaseException as e:
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(k, fn)) for k, fn in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"a thread raised: {errors!r}"
    return results[0], results[1]


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    x = vg.TensorNode(np.ones(3))
    context = vg.no_grad()

    def quiet(phase):
        if phase == 0:
            context.__enter__()  # stays inside no_grad while the other thread works
        if phase == 1:
            return vg.is_grad_enabled(), (x * 2).source is None
        if phase == 2:
            context.__exit__(None, None, None)
            return vg.is_grad_enabled()

    def busy(phase):
        if phase == 1:
            y = (x * 2).sum()
            y.backward()
            return vg.is_grad_enabled(), y.source is not None
        return vg.is_grad_enabled()

    quiet_results, busy_results = run_in_lockstep(quiet, busy)
    assert quiet_results[1] == (False, True)  # inside no_grad: nothing recorded
    assert busy_results[1] == (True, True)    # the other thread records as usual, at the same time
    assert quiet_results[2] is True and busy_results[2] is True
    assert np.array_equal(x.grad, [2.0, 2.0, 2.0])


def test_grad_mode_of_the_main_thread_does_not_reach_a_new_thread():
    seen = []
    with vg.no_grad():
        t = threading.Thread(target=lambda: seen.append(vg.is_grad_enabled()))
        t.start()
        t.join()
        assert not vg.is_grad_enabled()
    assert seen == [True]


def test_detect_anomaly_in_one_thread_does_not_reach_another():
    def nan_grad_graph():
        x = vg.TensorNode(np.array([0.0, 1.0]))
        return vg.sum(vg.sqrt(x))  # the gradient of sqrt at 0 is inf

    def watched(phase):
        if phase == 0:
            vg.set_detect_anomaly(True)
        if phase == 1:
            try:
                nan_grad_graph().backward()
            except RuntimeError as e:
                return "raised: " + str(e).splitlines()[0]
            return "no error"
        if phase == 2:
            vg.set_detect_anomaly(False)

    def unwatched(phase):
        if phase == 1:
            loss = nan_grad_graph()
            loss.backward()  # anomaly mode is off in this thread: inf gradients, no error
            return "no error"

    watched_results, unwatched_results = run_in_lockstep(watched, unwatched)
    assert watched_results[1].startswith("raised: detect_anomaly: backward of sqrt produced nan or inf")
    assert unwatched_results[1] == "no error"


def test_concurrent_backward_through_python_ops_in_two_threads():
    def work(seed, out):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            a = rng.standard_normal((64, 64))
            x = vg.TensorNode(a)
            Cube.do_forward(vg.tanh(x @ x)).sum().backward()
            out.append(x.grad.copy())

    expected = {0: [], 1: []}
    for k in expected:
        work(k, expected[k])
    got = {0: [], 1: []}
    threads = [threading.Thread(target=work, args=(k, got[k])) for k in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in got:
        assert len(got[k]) == 200
        assert all(np.array_equal(a, b) for a, b in zip(expected[k], got[k]))


@pytest.mark.parametrize("optimizer", [vg.optim.SGD, vg.optim.Adam, vg.optim.AdamW, vg.optim.RMSprop],
                         ids=lambda c: c.__name__)
def test_an_optimiser_step_does_not_depend_on_where_numpy_placed_the_parameter(optimizer):
    # Reproducibility: the same values and gradients give the same update whatever the address of
    # the parameter's buffer. The engine updates numpy's buffers in place, and Eigen treats the
    # elements before the first 64-byte boundary outside its SIMD packets.
    rng = np.random.default_rng(0)
    start, grad = rng.standard_normal(64), rng.standard_normal(64)
    results = []
    for offset in range(8):  # 8 float64 positions: every alignment modulo 64 bytes
        memory = np.zeros(64 + 8)
        value = memory[offset:offset + 64]
        value[:] = start
        p = vg.TensorNode(value)  # shares `memory`: a C-contiguous float64 array is not copied
        opt = optimizer([p], lr=0.1)
        for _ in range(3):
            p.grad = grad
            opt.step()
        results.append(p.value.copy())
    differ = [k for k, r in enumerate(results) if not np.array_equal(r, results[0])]
    assert not differ, (f"{optimizer.__name__}: the update at byte offsets {[8 * k for k in differ]} differs from "
                        f"offset 0 by up to {max(np.max(np.abs(results[k] - results[0])) for k in differ):.1e}")
