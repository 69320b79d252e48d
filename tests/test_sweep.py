"""experiments/sweep.py: grids of train_mlp.py settings, and whole sweeps on real Dask clusters."""

import csv
import importlib.util
import json
import os
import queue
import re
import subprocess
import sys
import threading

import pytest

from test_experiments import EXPERIMENTS, HIDER, assert_png

spec = importlib.util.spec_from_file_location("sweep", os.path.join(EXPERIMENTS, "sweep.py"))
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

QUICK = ["-e", "2", "-b", "500"]  # two short epochs on the synthetic data: well under a second per run

# A scheduler and two worker processes started in another process and folder, as on a cluster:
# its workers have no experiments/ folder on their path, so the sweep must send its scripts.
CLUSTER = """
import sys
from dask.distributed import LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the test closes stdin
"""


def environment(tmp_path, hide=()):
    """os.environ with PYTHONPATH made absolute (the runs start in tmp_path); hide: modules made
    unimportable."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if hide:
        folder = tmp_path / "hide"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(HIDER.format(names=set(hide)))
        paths.insert(0, str(folder))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_sweep(tmp_path, *args, hide=()):
    return subprocess.run([sys.executable, os.path.join(EXPERIMENTS, "sweep.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env=environment(tmp_path, hide))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stored(out):
    """{variant name: record} of the result files in out/runs."""
    records = {}
    for name in os.listdir(out / "runs"):
        with open(out / "runs" / name) as f:
            record = json.load(f)
        records[record["name"]] = record
    return records


# ---- settings and variants ----

def test_grid_values_expand_to_every_combination_last_setting_fastest():
    grid = sweep.parse_assignments(["hidden=16,64-64", "activation=relu,sigmoid"], "--grid")
    assert sweep.expand(grid, []) == [{"hidden": "16", "activation": "relu"}, {"hidden": "16", "activation": "sigmoid"},
                                      {"hidden": "64-64", "activation": "relu"},
                                      {"hidden": "64-64", "activation": "sigmoid"}]


def test_listed_variants_are_crossed_with_the_grid():
    variants = [{"hidden": "8"}, {"hidden": "8-8", "residual": "true"}]
    assert sweep.expand({"seed": ["0", "1"]}, variants) == [
        {"hidden": "8", "seed": "0"}, {"hidden": "8", "seed": "1"},
        {"hidden": "8-8", "residual": "true", "seed": "0"}, {"hidden": "8-8", "residual": "true", "seed": "1"}]


@pytest.mark.parametrize("name, text, flags", [
    ("hidden", "64-64", ["--hidden", "64", "64"]),
    ("residual", "true", ["--residual"]),
    ("residual", "False", ["--no-residual"]),
    ("learning-rate", "0.1", ["--learning-rate=0.1"]),
    ("lr", "0.1", ["--learning-rate=0.1"]),
    ("dataset", "fashion", ["--dataset=fashion"]),
    ("batch_size", "32", ["--batch-size=32"]),
    ("init", "zeros", ["--init=zeros"]),
])
def test_a_setting_becomes_the_train_mlp_flag_of_that_name(name, text, flags):
    assert sweep.to_argv({sweep.canonical(name): text}) == flags


@pytest.mark.parametrize("tokens, message", [
    (["hiden=16"], "unknown train_mlp.py setting 'hiden'"),
    (["save=run.npz"], "cannot be swept"),
    (["plot=a.png"], "cannot be swept"),
    (["hidden"], "write name=value"),
    (["hidden=16,"], "write name=value"),
    (["=16"], "write name=value"),
])
def test_a_bad_grid_entry_is_refused_with_its_text(tokens, message):
    with pytest.raises(sweep.SweepError, match=re.escape(message)):
        sweep.parse_assignments(tokens, "--grid")


def test_a_switch_takes_only_true_or_false():
    with pytest.raises(sweep.SweepError, match="residual='maybe': a switch takes true or false"):
        sweep.to_argv({"residual": "maybe"})


CONFIGS = {
    "q10.json": '{"grid": {"hidden": [16, [8, 8]], "seed": [0, 1]}, "variants": [{"residual": true}, {}],'
                ' "flags": ["-e", "2"]}',
    "q10.toml": 'flags = ["-e", "2"]\n[grid]\nhidden = [16, [8, 8]]\nseed = [0, 1]\n'
                '[[variants]]\nresidual = true\n[[variants]]\n',
    "q10.yaml": "grid:\n  hidden: [16, [8, 8]]\n  seed: [0, 1]\nvariants:\n  - residual: true\n  - {}\n"
                "flags: {epochs: 2}\n",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_config_file_gives_the_variants_of_the_same_flags(name, tmp_path):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    if name.endswith(".toml") and sys.version_info < (3, 11):
        pytest.importorskip("tomli")
    (tmp_path / name).write_text(CONFIGS[name])
    grid, listed, flags = sweep.load_config(str(tmp_path / name))
    from_file = sweep.make_variants(sweep.expand(grid, listed), flags)
    from_flags = sweep.make_variants(
        sweep.expand(sweep.parse_assignments(["hidden=16,8-8", "seed=0,1"], "--grid"),
                     [{"residual": "true"}, {}]), ["--epochs", "2"])
    assert [v["key"] for v in from_file] == [v["key"] for v in from_flags]
    assert len(from_file) == 8
    assert from_file[0]["config"]["hidden"] == [16] and from_file[2]["config"]["hidden"] == [8, 8]
    assert from_file[0]["config"]["residual"] is True and from_file[4]["config"]["residual"] is False


@pytest.mark.parametrize("name, text, message", [
    ("a.json", '{"grid": {"hidden": [16]}, "epochs": 3}', "expected a mapping with the keys grid, variants and flags"),
    ("a.json", '{"grid": {"hidden": [16]', "JSONDecodeError"),
    ("a.json", '{"grid": {"hidden": []}}', "grid 'hidden' has no values"),
    ("a.json", '{"grid": {"hiden": [16]}}', "unknown train_mlp.py setting 'hiden'"),
    ("a.json", '{"variants": [[16]]}', "each variant is a mapping"),
    ("a.ini", "[grid]", "must end in .json, .toml, .yaml or .yml"),
])
def test_a_bad_config_file_is_refused_naming_the_file(name, text, message, tmp_path):
    (tmp_path / name).write_text(text)
    with pytest.raises(sweep.SweepError, match=re.escape(message)):
        sweep.load_config(str(tmp_path / name))


def test_a_missing_config_file_is_refused_naming_it(tmp_path):
    with pytest.raises(sweep.SweepError, match=r"--config .*absent.json: No such file"):
        sweep.load_config(str(tmp_path / "absent.json"))


def test_variant_keys_follow_the_resolved_settings():
    def keys(settings_list, flags=()):
        return [v["key"].rsplit("-", 1)[1] for v in sweep.make_variants(settings_list, list(flags))]

    assert keys([{"hidden": "16"}]) == keys([{"hidden": "16"}])  # stable from run to run
    assert keys([{"activation": "sigmoid"}]) == keys([{}])  # sigmoid is the default: the same run
    assert keys([{"hidden": "16"}], ["-e", "2"]) == keys([{"hidden": "16", "epochs": "2"}])
    assert keys([{"hidden": "16"}], ["-e", "2"]) != keys([{"hidden": "16"}], ["-e", "3"])
    assert len(set(keys([{"seed": "0"}, {"seed": "1"}, {"seed": "2"}]))) == 3


def test_every_variant_gets_seed_zero_unless_a_seed_is_given():
    unseeded, seeded = sweep.make_variants([{"hidden": "16"}, {"hidden": "16", "seed": "3"}], ["-e", "1"])
    assert unseeded["argv"] == ["--seed", "0", "-e", "1", "--hidden", "16"] and unseeded["config"]["seed"] == 0
    assert seeded["argv"] == ["-e", "1", "--hidden", "16", "--seed=3"] and seeded["config"]["seed"] == 3


def test_the_same_run_listed_twice_is_trained_once():
    variants = sweep.make_variants([{"seed": "0"}, {"seed": "0"}, {"seed": "1"}], [])
    assert [v["name"] for v in variants] == ["seed=0", "seed=1"]


def test_a_variant_train_mlp_refuses_keeps_its_message_and_no_config():
    (variant,) = sweep.make_variants([{"hidden": "0"}], [])
    assert variant["config"] is None
    assert variant["error"] == "train_mlp.py: error: hidden layer sizes must be >= 1"


# ---- tables ----

def record(accuracies, losses, times, status="ok"):
    return dict(status=status, split="validation", accuracies=accuracies, losses=losses, times=times)


def test_the_summary_gives_mean_and_spread_over_seeds_and_lists_failures():
    variants = sweep.make_variants(sweep.expand({"hidden": ["4", "8"], "seed": ["0", "1"]}, []), ["-e", "2"])
    records = {variants[0]["key"]: record([0.80, 0.90], [0.5, 0.3], [1.0, 1.0]),
               variants[1]["key"]: record([0.84, 0.92], [0.4, 0.2], [1.5, 1.5]),
               variants[2]["key"]: record([0.95, 0.97], [0.2, 0.1], [2.0, 2.0]),
               variants[3]["key"]: dict(status="failed", error="RuntimeError: out of luck")}
    small, large = sweep.summarize(variants, records)
    assert (small["group"], small["runs"], small["ok"]) == ("hidden=4", 2, 2)
    assert small["final_accuracy_mean"] == pytest.approx(0.91)
    assert small["final_accuracy_std"] == pytest.approx(0.0141421, rel=1e-5)  # sample std of 0.90, 0.92
    assert small["best_accuracy_max"] == pytest.approx(0.92) and small["train_seconds_mean"] == pytest.approx(2.5)
    assert (large["runs"], large["ok"], large["final_accuracy_std"]) == (2, 1, None)
    text = sweep.markdown([small, large], ["hidden"], variants, records, ["-e", "2"], "validation")
    assert "| 4 | 2/2 | 0.9100 ± 0.0141 | 0.9100 ± 0.0141 | 0.2500 ± 0.0707 | 2.50 ± 0.71 |" in text
    assert "| 8 | 1/2 | **0.9700** | 0.9700 | 0.1000 | 4.00 |" in text
    assert "- `hidden=8 seed=1`: RuntimeError: out of luck" in text


# ---- whole sweeps ----

def test_a_sweep_on_the_embedded_cluster_reports_a_failing_variant_and_resumes(tmp_path):
    out = tmp_path / "q10"
    first = ["--variant", "activation=relu", "--variant", "activation=tanh hidden=4", "--variant", "data=cifar",
             "--variant", "hidden=0"]
    result = run_sweep(tmp_path, *first, *QUICK, "--out", out, "--workers", 2)
    assert result.returncode == 1, result.stderr
    assert "4 variants, 0 with results" in result.stdout and "3 to train" in result.stdout
    assert "on a local Dask cluster of 2 worker processes, 1 thread per task" in result.stdout
    assert "## not run: hidden=0: train_mlp.py: error: hidden layer sizes must be >= 1" in result.stdout
    assert re.search(r"\[\d/3\] data=cifar: FAILED: Dataset cifar not recognized", result.stdout)
    assert len(re.findall(r"\[\d/3\] activation=(relu|tanh hidden=4): final validation accuracy 0\.\d{4}",
                          result.stdout)) == 2
    assert "2 of 4 variants failed" in result.stderr

    rows = {row["variant"]: row for row in read_csv(out / "results.csv")}
    assert {name: row["status"] for name, row in rows.items()} == {
        "activation=relu": "ok", "activation=tanh hidden=4": "ok", "data=cifar": "failed", "hidden=0": "failed"}
    assert rows["data=cifar"]["error"].startswith("Dataset cifar not recognized")
    runs = stored(out)
    assert sorted(runs) == ["activation=relu", "activation=tanh hidden=4"]  # failures are not kept: re-run next time
    relu = runs["activation=relu"]
    assert len(relu["accuracies"]) == len(relu["losses"]) == len(relu["times"]) == 2
    assert float(rows["activation=relu"]["final_accuracy"]) == pytest.approx(relu["accuracies"][-1], abs=5e-5)
    assert relu["config"]["activation"] == "relu" and relu["config"]["seed"] == 0
    # each task pinned to one thread, in a worker process of its own
    assert relu["threads"] == 1 and all(relu["environment"][k] == "1" for k in sweep.THREAD_VARIABLES)
    assert relu["environment"]["MALLOC_TRIM_THRESHOLD_"] != "65536"  # Dask's default, slow for training
    assert relu["worker"].split(":")[1] != str(os.getpid())
    assert "## Starting training" in relu["log"]
    summary = (out / "summary.md").read_text()
    # settings a variant leaves out are shown as train_mlp resolves them (hidden: decided at run time)
    assert "| relu | (default) | synth | 1/1 |" in summary and "| sigmoid | (default) | cifar | 0/1 |" in summary
    assert "| (default) | 0 | (default) | 0/1 | - |" in summary  # refused by train_mlp: nothing resolved
    if sweep.vg.plot.available():
        assert_png(out / "curves.png")
    else:
        assert "no figure: matplotlib is not installed" in result.stderr
    relu_file = next(p for p in (out / "runs").iterdir() if p.name.startswith("activation=relu-"))
    written = relu_file.stat().st_mtime_ns

    again = run_sweep(tmp_path, *first, "--variant", "activation=sigmoid", *QUICK, "--out", out, "--workers", 2)
    assert again.returncode == 1, again.stderr
    assert "5 variants, 2 with results" in again.stdout and "2 to train" in again.stdout
    assert re.search(r"\[\d/2\] activation=sigmoid: final validation accuracy", again.stdout)
    assert re.search(r"\[\d/2\] data=cifar: FAILED", again.stdout)
    assert "activation=relu:" not in again.stdout  # skipped, not trained again
    assert relu_file.stat().st_mtime_ns == written
    assert len(read_csv(out / "results.csv")) == 5
    assert sorted(stored(out)) == ["activation=relu", "activation=sigmoid", "activation=tanh hidden=4"]


def test_a_sweep_on_a_running_scheduler_sends_its_scripts_and_averages_over_seeds(tmp_path):
    (tmp_path / "cluster.py").write_text(CLUSTER)
    cluster = subprocess.Popen([sys.executable, "cluster.py"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=tmp_path, env=environment(tmp_path))
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(cluster.stdout.readline()), daemon=True).start()
        address = lines.get(timeout=120).strip()
        assert address.startswith("tcp://127.0.0.1:"), "the cluster did not start"
        out = tmp_path / "seeds"
        result = run_sweep(tmp_path, "--grid", "activation=relu,tanh", "seed=0,1", *QUICK, "--out", out,
                           "--scheduler", address, "--no-plot")
    finally:
        cluster.stdin.close()
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()
        cluster.stdout.close()
    assert result.returncode == 0, result.stderr
    assert f"on {address}, 1 thread per task" in result.stdout
    assert len(re.findall(r"\[\d/4\] activation=(relu|tanh) seed=[01]: final validation accuracy", result.stdout)) == 4
    summary = read_csv(out / "summary.csv")
    assert [(row["setting"], row["runs"], row["ok"]) for row in summary] == [("activation=relu", "2", "2"),
                                                                              ("activation=tanh", "2", "2")]
    runs = stored(out)
    for row in summary:
        finals = [runs[f"{row['setting']} seed={s}"]["accuracies"][-1] for s in (0, 1)]
        assert float(row["final_accuracy_mean"]) == pytest.approx(sum(finals) / 2, abs=1e-6)
        assert float(row["final_accuracy_min"]) == pytest.approx(min(finals), abs=1e-6)
    assert re.search(r"\| relu \| 2/2 \| (\*\*)?0\.\d{4} ± 0\.\d{4}", (out / "summary.md").read_text())
    assert not (out / "curves.png").exists()


def test_a_dry_run_lists_the_variants_without_dask_and_a_real_run_says_how_to_install_it(tmp_path):
    listed = run_sweep(tmp_path, "--grid", "init=glorot_normal,zeros", "-e", "1", "--dry-run",
                       hide=("dask", "distributed"))
    assert listed.returncode == 0, listed.stderr
    assert "init=zeros  [to run]" in listed.stdout
    assert "train_mlp.py --seed 0 -e 1 --init=zeros" in listed.stdout
    refused = run_sweep(tmp_path, "--grid", "init=zeros", "-e", "1", hide=("dask", "distributed"))
    assert refused.returncode != 0
    assert "needs Dask distributed" in refused.stderr and 'pip install ".[sweep]"' in refused.stderr


@pytest.mark.parametrize("args, message", [
    (["--grid", "hiden=4"], "unknown train_mlp.py setting 'hiden'"),
    (["--grid", "hidden=4", "--hiden", "4"], "are not train_mlp.py's"),
    (["--grid", "hidden=4", "--save", "x.npz"], "--save and --plot are one file per run"),
    (["--variant", "hidden=4,8"], "one value per setting"),
    (["--grid", "hidden=4", "--workers", "0"], "must be >= 1"),
])
def test_a_sweep_that_cannot_start_says_why_before_starting_a_cluster(args, message, tmp_path):
    result = run_sweep(tmp_path, *args, "--out", tmp_path / "out")
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "out").exists()
