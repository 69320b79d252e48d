"""The scripts under experiments/ end to end, in a subprocess, as a user runs them (never the network)."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(ROOT, "experiments")
SCRIPT = os.path.join(EXPERIMENTS, "train_mlp.py")
FASHION = "/usr/share/datasets/fashion-mnist"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# a sitecustomize that makes the named top-level modules unimportable, as on a machine without them
HIDER = """
import sys

class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {names!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, _Hide())
"""


def run_script(script, *args, hide=(), tmp_path=None, timeout=300):
    """Run experiments/<script> with args; hide: module names made unimportable (needs tmp_path)."""
    env = dict(os.environ)
    if hide:
        folder = tmp_path / "hide"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(HIDER.format(names=set(hide)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, os.path.join(EXPERIMENTS, script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=tmp_path or ROOT)


def run(*args, **kwargs):
    return run_script("train_mlp.py", *args, **kwargs)


def accuracies(stdout, split="validation"):
    return [float(a) for a in re.findall(fr"{split} accuracy: ([0-9.]+)", stdout)]


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


@pytest.fixture
def matplotlib():
    return pytest.importorskip("matplotlib")


# ---- train_mlp.py: vugrad's run ----

def test_train_mlp_reaches_97_percent_on_synth_in_five_epochs():
    result = run("-D", "synth", "-e", "5", "--seed", "1")
    assert result.returncode == 0, result.stderr
    accs = accuracies(result.stdout)
    assert len(accs) == 5
    assert accs[-1] >= 0.97
    assert accs[-1] > accs[0]
    assert "2-8-2 sigmoid, glorot_normal init, float64; sgd lr 0.01, batch 128, sum cross-entropy" in result.stdout
    assert re.search(r"## done: 5 epochs in [0-9.]+ s \([0-9.]+ s per epoch\); validation accuracy", result.stdout)


def test_train_mlp_keeps_vugrad_flags():
    result = run("--dataset", "synth", "--batch-size", "500", "--epochs", "1", "--learning-rate", "0.05", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "60000 in training, 10000 in validation" in result.stdout
    assert len(re.findall(r"validation accuracy", result.stdout)) == 2  # the epoch's line and the summary
    assert re.search(r"epoch 000  train loss: [0-9.e-]+  validation accuracy: [0-9.]+  \([0-9.]+ s\)", result.stdout)


def test_train_mlp_rejects_an_unknown_data_set():
    result = run("-D", "cifar", "-e", "1")
    assert result.returncode != 0
    assert "not recognized" in result.stderr


# ---- train_mlp.py: the new flags ----

def test_train_mlp_builds_the_model_the_flags_describe():
    result = run("-e", "1", "--seed", "0", "--hidden", "16", "16", "--activation", "relu", "--residual",
                 "--init", "he_normal", "--dtype", "float32", "--optimizer", "sgd", "--momentum", "0.9",
                 "-l", "0.001", "--shuffle", "--reduction", "mean")
    assert result.returncode == 0, result.stderr
    assert ("2-16-16-2 relu residual, he_normal init, float32; sgd lr 0.001 momentum 0.9, batch 128 shuffled, "
            "mean cross-entropy") in result.stdout
    assert len(accuracies(result.stdout)) == 1


@pytest.mark.parametrize("flags, message", [
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies to sgd and rmsprop"),
    (["--hidden", "0"], "hidden layer sizes"),
    (["--init", "bogus"], "invalid choice"),
    (["-b", "0"], "batch size"),
])
def test_train_mlp_rejects_inconsistent_flags(flags, message):
    result = run("-e", "1", *flags)
    assert result.returncode != 0
    assert message in result.stderr


def test_train_mlp_synth_preset_reaches_99_percent_in_five_epochs():
    result = run("--preset", "synth", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "2-32-2 relu" in result.stdout and "adam lr 0.01, cosine schedule" in result.stdout
    accs = accuracies(result.stdout)
    assert len(accs) == 5 and accs[-1] >= 0.99


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="needs Debian's dataset-fashion-mnist")
def test_train_mlp_fashion_preset_reaches_87_percent_test_accuracy_in_five_epochs():
    result = run("--preset", "fashion", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "60000 in training, 10000 in test" in result.stdout
    assert "784-256-10 relu, glorot_normal init, float32; adam lr 0.001, cosine schedule, batch 128 shuffled" \
        in result.stdout
    accs = accuracies(result.stdout, "test")
    assert len(accs) == 5
    assert accs[-1] >= 0.87
    assert re.search(r"## done: 5 epochs .*; test accuracy 0\.8[7-9]", result.stdout)


def test_train_mlp_saves_a_model_that_a_later_run_loads(tmp_path):
    checkpoint = tmp_path / "run.npz"
    flags = ["--seed", "3", "--hidden", "12", "--activation", "tanh", "--optimizer", "adam"]
    first = run("-e", "2", *flags, "--save", checkpoint)
    assert first.returncode == 0, first.stderr
    assert checkpoint.exists()
    trained = accuracies(first.stdout)[-1]
    again = run("-e", "0", *flags, "--load", checkpoint)
    assert again.returncode == 0, again.stderr
    assert "trained for 2 epochs" in again.stdout
    assert f"no training: validation accuracy {trained:.4f}" in again.stdout
    more = run("-e", "1", *flags, "--load", checkpoint)
    assert more.returncode == 0, more.stderr
    assert len(accuracies(more.stdout)) == 1


def test_train_mlp_refuses_a_checkpoint_of_another_model(tmp_path):
    checkpoint = tmp_path / "run.npz"
    assert run("-e", "1", "--seed", "0", "--hidden", "12", "--save", checkpoint).returncode == 0
    result = run("-e", "1", "--seed", "0", "--hidden", "12", "--activation", "relu", "--load", checkpoint)
    assert result.returncode != 0
    assert "another model" in result.stderr and "activation: sigmoid in the checkpoint, relu here" in result.stderr
    missing = run("-e", "0", "--load", tmp_path / "absent.npz")
    assert missing.returncode != 0 and "no checkpoint" in missing.stderr


def test_train_mlp_plots_loss_and_accuracy_curves(tmp_path, matplotlib):
    result = run("-e", "2", "--seed", "0", "--plot", tmp_path / "curves.png")
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "curves.png")


def test_train_mlp_without_matplotlib_and_tqdm_trains_prints_plain_lines_and_explains_the_missing_plot(tmp_path):
    result = run("-e", "2", "--seed", "0", "--plot", tmp_path / "curves.png", hide=("matplotlib", "tqdm"),
                 tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(accuracies(result.stdout)) == 2
    assert 'pip install ".[plot]"' in result.stderr
    assert not (tmp_path / "curves.png").exists()


def test_train_mlp_explains_how_to_get_mnist_when_the_download_fails(tmp_path, monkeypatch, capsys):
    import tapegrad as vg
    spec = importlib.util.spec_from_file_location("train_mlp_under_test", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "data"))
    (tmp_path / "mirror").mkdir()
    monkeypatch.setattr(vg.data, "MNIST_MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))  # offline: no files
    with pytest.raises(SystemExit) as exit_:
        script.main(["-D", "mnist", "-e", "1"])
    message = str(exit_.value.code)
    assert message.startswith("could not load mnist: could not download MNIST")
    assert "Put the four IDX files" in message and "apt-get install dataset-fashion-mnist" in message


# ---- train_cnn.py: the blitz classifier, on data the tests write ----

CIFAR_BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def write_cifar(folder, per_batch=12, test=20, seed=0):
    """CIFAR-10's six binary batch files: records of a label byte and 3072 pixel bytes; returns the test labels."""
    import numpy as np
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = None
    for name in CIFAR_BATCHES:
        n = test if name == "test_batch.bin" else per_batch
        labels = np.arange(n, dtype=np.uint8) % 10
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
    return labels


def write_fashion(folder, ntrain=64, ntest=20, seed=0):
    """Fashion-MNIST's four IDX files (uncompressed) with random pixels and labels 0..9 in turn."""
    import numpy as np
    import tapegrad as vg
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", ntrain), ("t10k", ntest)):
        vg.write_idx(str(folder / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        vg.write_idx(str(folder / f"{prefix}-labels-idx1-ubyte"), (np.arange(n) % 10).astype(np.uint8))


def cnn(*args, **kwargs):
    return run_script("train_cnn.py", "--no-progress", *args, **kwargs)


def test_train_cnn_runs_the_blitz_on_cifar10_with_its_running_loss_and_accuracy_per_class(tmp_path):
    write_cifar(tmp_path / "cifar")
    result = cnn("-D", "cifar10", "--data-path", tmp_path / "cifar", "--print-every", "5", "--seed", "0",
                 tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "## CIFAR-10: 60 training images and 20 test images of 3 x 32 x 32" in out
    assert "## model: lenet (62006 parameters, float32); sgd lr 0.001 momentum 0.9, batch 4" in out  # the blitz's
    assert re.findall(r"^\[(\d), +(\d+)\] loss: [0-9.]+$", out, re.M) == [("1", "5"), ("1", "10"), ("1", "15"),
                                                                        ("2", "5"), ("2", "10"), ("2", "15")]
    assert "Finished Training" in out
    assert re.search(r"^Accuracy of the network on the 20 test images: \d+ %$", out, re.M)
    assert len(re.findall(r"^Accuracy for class: (plane|car|bird|cat|deer|dog|frog|horse|ship|truck) +is [0-9.]+ %$",
                          out, re.M)) == 10


def test_train_cnn_without_cifar10_falls_back_to_fashion_mnist_with_the_small_model(tmp_path):
    write_fashion(tmp_path / "fashion")  # a folder without CIFAR-10's files
    result = cnn("--model", "small", "-D", "auto", "-e", "1", "-b", "16", "-o", "adam", "--print-every", "2",
                 "--seed", "1", "--data-path", tmp_path / "fashion", tmp_path=tmp_path, hide=("tqdm",))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "CIFAR-10 is not available" in out and "training on Fashion-MNIST instead" in out
    assert "## model: small (34826 parameters, float32); adam lr 0.001, batch 16" in out
    assert len(re.findall(r"^\[1, +\d+\] loss:", out, re.M)) == 2
    assert "Accuracy for class: sneaker" in out


def test_train_cnn_runs_lenet_on_fashion_mnist_by_padding_to_32_pixels(tmp_path):
    write_fashion(tmp_path / "fashion")
    result = cnn("-D", "fashion", "--data-path", tmp_path / "fashion", "-e", "1", "-b", "8", "--seed", "0",
                 "--dtype", "float64", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "of 1 x 28 x 28" in result.stdout and "lenet (61706 parameters, float64)" in result.stdout


def test_train_cnn_saves_a_model_that_a_later_run_tests_again(tmp_path):
    write_cifar(tmp_path / "cifar")
    flags = ["-D", "cifar10", "--data-path", tmp_path / "cifar", "--model", "small", "-b", "8", "--seed", "2"]
    first = cnn(*flags, "-e", "1", "--save", tmp_path / "cnn.npz", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    tested = re.search(r"on the 20 test images: (\d+) %", first.stdout).group(1)
    again = cnn(*flags, "-e", "0", "--load", tmp_path / "cnn.npz", tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "trained for 1 epochs" in again.stdout and f"on the 20 test images: {tested} %" in again.stdout
    other = cnn(*flags[:-4], "--model", "lenet", "-e", "0", "--load", tmp_path / "cnn.npz", tmp_path=tmp_path)
    assert other.returncode != 0 and "model: small in the checkpoint, lenet here" in other.stderr


def test_train_cnn_plots_its_running_loss_and_accuracy(tmp_path, matplotlib):
    write_cifar(tmp_path / "cifar")
    result = cnn("-D", "cifar10", "--data-path", tmp_path / "cifar", "-e", "1", "--print-every", "3",
                 "--plot", tmp_path / "curves.png", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "curves.png")


@pytest.mark.parametrize("flags, message", [
    (["-o", "adam", "--momentum", "0.5"], "--momentum applies to sgd and rmsprop"),
    (["-b", "0"], "batch size"),
    (["-D", "cifar10", "--data-path", "/no/such/folder"], "could not load CIFAR-10"),
])
def test_train_cnn_rejects_bad_flags(tmp_path, flags, message):
    result = cnn("-e", "1", *flags, tmp_path=tmp_path)
    assert result.returncode != 0 and message in result.stderr


# ---- the lab scripts ----

LABS = {  # script: (quick arguments, what its output must say)
    "lab_gradient_descent.py": ([], ["step 1: x = (9, 3)", "step 2: x = (8, 4)", "step 3: x = (8, 4)",
                                     "stopped early"]),
    "lab_five_points.py": (["--restarts", "3", "--steps", "30"], ["|hand - autodiff|", "best loss"]),
    "lab_llayer_network.py": (["--epochs", "200"], ["network 2-5-3-1", "after 200 epochs at lr 0.25"]),
    "compare_activations.py": (["-e", "1"], ["sigmoid: ", "relu: ", "validation accuracy per epoch"]),
    "test_error_study.py": (["--resamples", "100", "--repeats", "20"],
                            ["m = 26,492", "Hoeffding 99% interval", "bootstrap, 100 resamples"]),
}


@pytest.mark.parametrize("script", sorted(LABS))
def test_lab_script_prints_its_numbers_and_writes_its_figure(script, tmp_path, matplotlib):
    args, expected = LABS[script]
    result = run_script(script, *args, "--out", tmp_path / "figure.png", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
    assert_png(tmp_path / "figure.png")


@pytest.mark.parametrize("script", sorted(LABS))
def test_lab_script_without_matplotlib_still_prints_its_numbers(script, tmp_path):
    args, expected = LABS[script]
    result = run_script(script, *args, "--out", tmp_path / "figure.png", hide=("matplotlib",), tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout
    assert "no figure" in result.stderr and 'pip install ".[plot]"' in result.stderr
    assert not (tmp_path / "figure.png").exists()


def test_gradient_descent_lab_checks_its_backward_and_stops_near_the_minimum(tmp_path):
    result = run_script("lab_gradient_descent.py", "--no-plot", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "f(6.0, 6.0) = 0, gradient [-6.  6.]" in result.stdout
    assert float(re.search(r"central differences: max abs error ([0-9.e-]+)", result.stdout).group(1)) < 1e-6
    x1, x2 = map(float, re.search(r"x = \(([0-9.]+), ([0-9.]+)\), f = ", result.stdout).groups())
    assert abs(x1 - 8) < 1e-3 and abs(x2 - 4) < 1e-3


def test_five_points_lab_gradients_agree_three_ways_and_a_restart_fits_the_data(tmp_path):
    result = run_script("lab_five_points.py", "--no-plot", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\s+(W1|b1|w2|b2)\s+\([0-9, ]+\)\s+([0-9.e+-]+)\s+([0-9.e+-]+)$", result.stdout, re.M)
    assert len(rows) == 4
    assert all(float(hand) < 1e-12 and float(fd) < 1e-7 for _, hand, fd in rows)
    assert len(re.findall(r"restart \d+: loss", result.stdout)) == 10
    assert float(re.search(r"best loss: ([0-9.]+)", result.stdout).group(1)) < 0.1


def test_llayer_lab_matches_tapegrads_backward_and_fits_the_five_points(tmp_path):
    result = run_script("lab_llayer_network.py", "--no-plot", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    diffs = [float(d) for d in re.findall(r"max abs difference ([0-9.e+-]+)", result.stdout)]
    assert len(diffs) == 2 and max(diffs) < 1e-12
    assert float(re.search(r"after 2500 epochs at lr 0.25: MSE ([0-9.]+)", result.stdout).group(1)) < 0.01
    assert "accuracy 100%" in result.stdout


def test_compare_activations_uses_the_python_relu_op_and_passes_other_flags_to_train_mlp(tmp_path):
    result = run_script("compare_activations.py", "--no-plot", "-e", "2", "--hidden", "6",
                        "--activations", "relu", "tanh", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "relu (a vg.Op written in Python)" in result.stdout
    assert "2-6-2 relu" in result.stdout and "2-6-2 tanh" in result.stdout
    assert len(re.findall(r"^\s+(relu|tanh): 0\.\d{4} 0\.\d{4}   final", result.stdout, re.M)) == 2


def test_test_error_study_interval_holds_the_true_error(tmp_path):
    result = run_script("test_error_study.py", "--no-plot", "--resamples", "200", "--repeats", "50", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "eps 0.01 at 99% confidence -> m = 26,492" in result.stdout
    assert "0/1 test error on m = 26,492 test instances" in result.stdout
    low, high = map(float, re.search(r"interval: \[([0-9.]+), ([0-9.]+)\] \(eps = 0.0100\)", result.stdout).groups())
    assert high - low == pytest.approx(0.02, abs=2e-4)
    assert "inside the Hoeffding interval" in result.stdout
