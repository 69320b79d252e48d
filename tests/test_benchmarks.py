"""The benchmark suite: its numpy reference agrees with tapegrad, and run.py writes its JSON.

Speed is measured by benchmarks/run.py, never asserted here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import models  # noqa: E402
import numpy_reference as npref  # noqa: E402

import tapegrad as vg  # noqa: E402


def batch(n_in, classes, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((models.BATCH, n_in)) * scale, rng.integers(0, classes, models.BATCH)


@pytest.mark.parametrize("n_in, hidden, classes, scale", [(2, 8, 2, 1.0), (5, 20, 3, 1.0), (30, 120, 10, 20.0)])
def test_numpy_reference_matches_tapegrad_loss_and_gradients(n_in, hidden, classes, scale):
    init = models.glorot_init(n_in, hidden, classes, seed=1)
    x, y = batch(n_in, classes, seed=2, scale=scale)
    results = {}
    for lib in ("tapegrad", "numpy-ref"):
        t = models.make_trainer(lib, init, np.float64)
        results[lib] = t.gradients(*t.prepare(x, y))
    (loss_tg, grads_tg), (loss_np, grads_np) = results["tapegrad"], results["numpy-ref"]
    assert loss_np == pytest.approx(loss_tg, rel=1e-12)
    for g_tg, g_np in zip(grads_tg, grads_np):
        assert g_np.shape == g_tg.shape
        np.testing.assert_allclose(g_np, g_tg, rtol=1e-10, atol=1e-12)


def test_numpy_reference_logsoftmax_rows_are_log_probabilities():
    x = npref.TensorNode(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]]))
    lp = npref.logsoftmax(x).value
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), [1.0, 1.0])
    assert np.isfinite(lp[1, 0])


def test_numpy_reference_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    init = [v + 0.1 * rng.standard_normal(v.shape) for v in models.glorot_init(3, 6, 4, seed=0)]
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 4, 5)

    def loss_of(params):
        return float(npref.logceloss(npref.MLP(*params)(npref.TensorNode(x)), y).value)

    model = npref.MLP(*init)
    loss = npref.logceloss(model(npref.TensorNode(x)), y)
    loss.backward()
    eps = 1e-6
    for i, p in enumerate(model.parameters()):
        numeric = np.zeros(p.shape)
        for idx in np.ndindex(p.shape):
            up = [v.copy() for v in init]
            down = [v.copy() for v in init]
            up[i][idx] += eps
            down[i][idx] -= eps
            numeric[idx] = (loss_of(up) - loss_of(down)) / (2 * eps)
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-6, atol=1e-8)


def test_numpy_reference_zero_grad_clears_parameters():
    model = npref.MLP(*models.glorot_init(2, 8, 2, seed=0))
    x, y = batch(2, 2, seed=3)
    loss = npref.logceloss(model(npref.TensorNode(x)), y)
    loss.backward()
    assert any(np.abs(p.grad).sum() > 0 for p in model.parameters())
    loss.zero_grad()
    assert all(np.abs(p.grad).sum() == 0 for p in model.parameters())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_training_step_gives_the_same_loss_in_tapegrad_and_the_numpy_reference(dtype):
    init = models.glorot_init(2, 8, 2, seed=0)
    (x, y), _, _ = vg.load_synth(num_train=1000, num_val=10, seed=0)
    losses = {}
    for lib in ("tapegrad", "numpy-ref"):
        t = models.make_trainer(lib, init, dtype if lib == "tapegrad" else np.float64, lr=0.01)
        _, losses[lib] = t.epoch(*t.prepare(x, y))
    assert losses["tapegrad"] == pytest.approx(losses["numpy-ref"], rel=1e-5 if dtype == np.float32 else 1e-10)


def test_run_quick_ops_writes_json_with_the_expected_keys(tmp_path):
    out = tmp_path / "ops.json"
    result = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), "--quick", "--only", "ops",
                             "--repeats", "1", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "| work | tapegrad | numpy-ref | torch |" in result.stdout
    data = json.loads(out.read_text())
    assert {"meta", "settings", "rows", "table_markdown"} <= set(data)
    assert {"cpu", "logical_cores", "numpy", "tapegrad_gemm_backend", "torch"} <= set(data["meta"])
    assert data["meta"]["tapegrad_gemm_backend"] == vg.gemm_backend()
    keys = {row["key"] for row in data["rows"]}
    assert keys == {f"ops.{op}.{mode}" for op in ("add", "matmul", "sigmoid") for mode in ("grad", "nograd")}
    for row in data["rows"]:
        assert {"work", "unit", "samples", "summary", "ratios", "target"} <= set(row)
        assert row["summary"]["tapegrad"]["median"] > 0
        assert row["summary"]["numpy-ref"]["median"] > 0
        if row["key"].endswith(".grad"):
            assert row["target"]["against"] == "torch"


def test_run_rejects_an_unknown_section():
    result = subprocess.run([sys.executable, os.path.join(BENCH, "run.py"), "--only", "cifar"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "unknown section" in result.stderr


# ---- the CNN benchmarks: flop counts, the PyTorch mirror of a model, cnn_epoch.py end to end ----

import cnn_epoch  # noqa: E402
import run as bench_run  # noqa: E402
import train_cnn  # noqa: E402  (cnn_epoch puts experiments/ on the path)


def test_conv_flops_counts_the_forward_and_both_gradients_except_the_datas():
    model = train_cnn.small_cnn(1, 28, np.float32)
    n = 128
    conv1 = 2 * n * 32 * 26 * 26 * 9        # the first layer: forward and weight gradient only
    conv2 = 2 * n * 64 * 11 * 11 * 32 * 9   # forward, weight and input gradients
    linear = 2 * n * 10 * 1600
    assert bench_run.conv_flops(model, (n, 1, 28, 28)) == 2 * conv1 + 3 * conv2 + 3 * linear


def test_the_torch_mirror_of_a_cnn_computes_what_tapegrad_computes():
    torch = pytest.importorskip("torch")
    model = train_cnn.lenet(1, 28, np.float32)  # padding 2 on the first convolution
    x = np.random.default_rng(0).uniform(-1, 1, (3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        theirs = cnn_epoch.torch_model(torch, model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(vg.TensorNode(x, requires_grad=False)).value, theirs, atol=1e-5)


def test_cnn_epoch_trains_both_libraries_and_writes_its_json(tmp_path):
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 20)):
        vg.write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        vg.write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte"), (np.arange(n) % 10).astype(np.uint8))
    out = tmp_path / "epoch.json"
    result = subprocess.run([sys.executable, os.path.join(BENCH, "cnn_epoch.py"), "--data-path", str(tmp_path),
                             "--epochs", "1", "--batch-size", "16", "--threads", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"tapegrad", "torch"} and data["settings"]["threads"] == 1
    accuracy = data["summary"]["tapegrad"]["final_accuracy"]
    assert abs(accuracy - data["summary"]["torch"]["final_accuracy"]) <= 0.05  # same start, same batches
    assert "s per epoch" in result.stdout


def test_jit_trainer_gives_the_eager_trainers_losses_and_jit_step_prints_its_rows(capsys):
    """models.py's "jit" update replays the "sgd" trainer's step exactly; jit_step.py runs."""
    init = models.glorot_init(2, 8, 2, seed=3)
    (x, y), _, _ = vg.load_synth(num_train=1000, num_val=10, seed=3)
    runs = []
    for update in ("sgd", "jit"):
        t = models.make_trainer("tapegrad", init, np.float64, lr=0.01, update=update)
        xs, ys = t.prepare(x, y)
        runs.append(t.epoch(xs, ys)[1])
    assert runs[0] == runs[1]
    import jit_step
    jit_step.main(["--rounds", "1"])
    out = capsys.readouterr().out
    assert "| replay alone (Program.run) |" in out and "| replay of logsoftmax (128, 2), forward + backward |" in out
    jit_step.main(["--replays", "3", "--dtype", "float32"])
    assert capsys.readouterr().out.startswith("3 replays of the synth step (float32): ")


def test_instructions_runs_each_loop_and_refuses_unknown_work(capsys):
    import instructions
    for work in instructions.WORK:
        instructions.main(["--loop", work, "3"])  # what valgrind counts, run uncounted
    with pytest.raises(SystemExit):
        instructions.main(["no_such_work"])
    assert "unknown work 'no_such_work'" in capsys.readouterr().err
