"""The main job end to end: experiments/train_mlp.py in a subprocess, as a user runs it."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "train_mlp.py")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_train_mlp_reaches_97_percent_on_synth_in_five_epochs():
    result = run("-D", "synth", "-e", "5", "--seed", "1")
    assert result.returncode == 0, result.stderr
    accuracies = [float(a) for a in re.findall(r"validation accuracy: ([0-9.]+)", result.stdout)]
    assert len(accuracies) == 5
    assert accuracies[-1] >= 0.97
    assert accuracies[-1] > accuracies[0]


def test_train_mlp_keeps_vugrad_flags():
    result = run("--dataset", "synth", "--batch-size", "500", "--epochs", "1", "--learning-rate", "0.05", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "60000 in training, 10000 in validation" in result.stdout
    assert len(re.findall(r"validation accuracy", result.stdout)) == 1


def test_train_mlp_rejects_an_unknown_data_set():
    result = run("-D", "cifar", "-e", "1")
    assert result.returncode != 0
    assert "not recognized" in result.stderr
