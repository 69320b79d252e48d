"""Sweep over train_mlp.py settings: each variant a task on a Dask cluster, results as tables and a figure.

    python experiments/sweep.py --grid hidden=16,64 activation=relu,sigmoid seed=0,1,2 -e 3 --out sweeps/q10
    python experiments/sweep.py --config q10.toml --out sweeps/q10            # the grid in a file
    python experiments/sweep.py --variant "hidden=16-16 residual=true" --variant hidden=16-16 -e 3
    python experiments/sweep.py --grid optimizer=sgd,adam seed=0,1 --scheduler tcp://HOST:8786

A setting is any train_mlp.py option by its name (hidden, activation, init, momentum, residual, lr,
optimizer, epochs, ...): `name=a,b,c` gives the values to try, hidden layers are joined with "-"
(hidden=64-64 is two layers of 64), switches take true/false. --grid takes the product of its
settings; --variant adds one variant of its own (repeatable); with both, every variant is crossed
with the grid. A config file (.json, .toml, .yaml) says the same with the keys "grid" (name -> list
of values), "variants" (a list of name -> value) and "flags" (for every variant). Options that are
not the sweep's own go to every variant as they are (-e 3 -D synth --preset fashion ...).

Every variant is trained by train_mlp.run in its own task with its own seed (seed 0 unless a seed is
set), on an embedded Dask LocalCluster of --workers processes with one thread each, or on the Dask
cluster at --scheduler. A task pins the engine's threads (tapegrad.set_num_threads and, in local
worker processes, OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS) to --threads, so that
parallel tasks do not compete for the cores. In --out go runs/<variant>-<hash>.json (one per variant,
keyed by a hash of all its resolved train_mlp.py settings, so a re-run skips the variants already
done), results.csv (one row per variant), summary.csv and summary.md (per setting, mean and spread
over seeds) and curves.png (loss and accuracy per epoch of every setting; needs matplotlib). A
variant that fails is reported with its error, the others go on, and the exit status is 1.
"""

import csv
import glob
import hashlib
import io
import itertools
import json
import os
import re
import socket
import sys
import time
import traceback
from argparse import ArgumentParser, BooleanOptionalAction
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_mlp  # noqa: E402  (the training script next to this one)

import tapegrad as vg  # noqa: E402

INSTALL_HINT = 'pip install distributed tqdm (in a tapegrad checkout: pip install ".[sweep]")'
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
RECORDED_VARIABLES = THREAD_VARIABLES + ("MALLOC_TRIM_THRESHOLD_",)  # what a worker ran with, in its records
PER_RUN_OUTPUTS = ("save", "plot")  # one file per run would be overwritten by every variant
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
METRICS = ("final_accuracy", "best_accuracy", "final_loss", "train_seconds")


class SweepError(ValueError):
    """A sweep that cannot start as given (unknown setting, bad value list, unreadable config file)."""


# ---- settings -> train_mlp.py command lines ----

def train_options():
    """train_mlp.py's options by every name a setting may use: dest (batch_size), long flag without
    dashes (batch-size), with '-' and '_' alike; values: the argparse actions."""
    options = {}
    for action in train_mlp.build_parser()._actions:  # argparse has no public list of its options
        if action.dest == "help":
            continue
        options[action.dest] = action
        for flag in action.option_strings:
            if flag.startswith("--"):
                options.setdefault(flag[2:].replace("-", "_"), action)
    return options


OPTIONS = train_options()


def canonical(name):
    """The train_mlp.py dest that a setting's name means (learning-rate -> lr); SweepError if none."""
    action = OPTIONS.get(str(name).strip().replace("-", "_"))
    if action is None:
        known = ", ".join(sorted({a.dest for a in OPTIONS.values()}))
        raise SweepError(f"sweep.py: unknown train_mlp.py setting {name!r} (known: {known})")
    if action.dest in PER_RUN_OUTPUTS:
        raise SweepError(f"sweep.py: --{action.dest} is one file per run and cannot be swept; the sweep writes "
                         f"its own tables and figure to --out")
    return action.dest


def as_text(value):
    """A value from a config file in the form a setting takes on the command line: lists join with
    '-' (hidden layers), booleans are true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "-".join(as_text(v) for v in value)
    if value is None or isinstance(value, dict):
        raise SweepError(f"sweep.py: a setting's value must be a number, a string, a boolean or a list, "
                         f"not {value!r}")
    return str(value)


def to_argv(settings):
    """train_mlp.py flags for settings {dest: text}: ['--hidden', '64', '64', '--learning-rate=0.1', ...]."""
    argv = []
    for dest, text in settings.items():
        action = OPTIONS[dest]
        flag = max(action.option_strings, key=len)
        if isinstance(action, BooleanOptionalAction):
            flag = action.option_strings[0]  # --residual (the other one is --no-residual)
            word = text.strip().lower()
            if word not in TRUE + FALSE:
                raise SweepError(f"sweep.py: {dest}={text!r}: a switch takes true or false")
            argv.append(flag if word in TRUE else "--no-" + flag[2:])
        elif action.nargs in ("+", "*"):
            argv += [flag, *text.split("-")]
        else:
            argv.append(f"{flag}={text}")  # one token, so a value such as -0.5 is not taken for a flag
    return argv


def parse_assignments(tokens, option):
    """{dest: [texts]} from command-line tokens 'name=a,b,c' (option: the flag they came with, for errors)."""
    settings = {}
    for token in tokens:
        name, sep, values = token.partition("=")
        texts = [v.strip() for v in values.split(",")]
        if not sep or not name.strip() or not all(texts):
            raise SweepError(f"sweep.py: {option} {token!r}: write name=value (or name=a,b,c for several)")
        settings[canonical(name)] = texts
    return settings


def load_config(path):
    """The grid, variants and flags of a .json, .toml or .yaml/.yml file: (grid {dest: [texts]},
    variants [{dest: text}], flags [str])."""
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".json":
            with open(path) as f:
                data = json.load(f)
        elif suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                try:
                    import tomli as tomllib
                except ImportError:
                    raise SweepError("sweep.py: a .toml config needs Python >= 3.11 or pip install tomli") from None
            with open(path, "rb") as f:
                data = tomllib.load(f)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise SweepError("sweep.py: a .yaml config needs PyYAML: pip install pyyaml") from None
            with open(path) as f:
                data = yaml.safe_load(f)
        else:
            raise SweepError(f"sweep.py: --config {path}: the name must end in .json, .toml, .yaml or .yml")
    except OSError as e:
        raise SweepError(f"sweep.py: --config {path}: {e.strerror or e}") from None
    except SweepError:
        raise
    except Exception as e:  # each format's own syntax error
        raise SweepError(f"sweep.py: --config {path}: {type(e).__name__}: {e}") from None
    if not isinstance(data, dict) or set(data) - {"grid", "variants", "flags"}:
        raise SweepError(f"sweep.py: --config {path}: expected a mapping with the keys grid, variants and flags, "
                         f"got {sorted(data) if isinstance(data, dict) else type(data).__name__}")
    grid = {}
    for name, values in (data.get("grid") or {}).items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise SweepError(f"sweep.py: --config {path}: grid {name!r} has no values")
        grid[canonical(name)] = [as_text(v) for v in values]
    variants = []
    for variant in data.get("variants") or []:
        if not isinstance(variant, dict):
            raise SweepError(f"sweep.py: --config {path}: each variant is a mapping name -> value, not {variant!r}")
        variants.append({canonical(k): as_text(v) for k, v in variant.items()})
    flags = data.get("flags") or []
    if isinstance(flags, dict):
        flags = to_argv({canonical(k): as_text(v) for k, v in flags.items()})
    elif not isinstance(flags, list):
        raise SweepError(f"sweep.py: --config {path}: flags is a list of train_mlp.py flags or a mapping")
    return grid, variants, [str(f) for f in flags]


def expand(grid, variants):
    """Every variant's settings {dest: text}: each listed variant (or one empty one) crossed with the
    product of the grid's values, the grid's last setting varying fastest."""
    names = list(grid)
    product = [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    return [{**variant, **point} for variant in (variants or [{}]) for point in product]


def label(settings, skip=()):
    """'hidden=64 activation=relu' for settings {dest: text}, without the names in skip."""
    return " ".join(f"{k}={v}" for k, v in settings.items() if k not in skip)


def describe_exit(error, stderr):
    """The message of an exception; for argparse's SystemExit(2), the error line it printed."""
    if isinstance(error, SystemExit) and not isinstance(error.code, str):
        lines = [line for line in stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {error.code}"
    return f"{type(error).__name__}: {error}" if not isinstance(error, SystemExit) else str(error.code)


def parse_quietly(argv):
    """train_mlp.parse(argv) -> (args, None), or (None, message) where it would exit."""
    stderr = io.StringIO()
    try:
        with redirect_stderr(stderr):
            return train_mlp.parse(argv, prog="train_mlp.py"), None
    except SystemExit as e:
        return None, describe_exit(e, stderr.getvalue())


def make_variants(settings_list, flags):
    """One dict per distinct run: settings, argv (train_mlp.py's command line), name, group (the name
    without the seed), config (train_mlp's resolved settings, None when they do not parse), error,
    key (the file name of its result: a slug of the name and a hash of config)."""
    variants, seen = [], set()
    for settings in settings_list:
        argv = [*flags, *to_argv(settings)]
        args, error = parse_quietly(argv)
        if args is not None and args.seed is None:  # every run reproducible: seed 0 unless one is given
            argv = ["--seed", "0", *argv]
            args, error = parse_quietly(argv)
        config = vars(args) if args is not None else None
        digest = hashlib.sha1(json.dumps(config if config else argv, sort_keys=True).encode()).hexdigest()[:12]
        name = label(settings) or "baseline"  # a variant of no settings of its own: the shared flags alone
        slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", name.replace(" ", "_"))[:80]
        if digest in seen:
            continue  # the same run twice (e.g. seed=0,0): trained once
        seen.add(digest)
        group = label(settings, skip=("seed",)) or "baseline"
        variants.append(dict(settings=settings, argv=argv, name=name, group=group, config=config, error=error,
                             key=f"{slug}-{digest}"))
    return variants


# ---- one task ----

def train_variant(argv, threads=1):
    """Train one variant with train_mlp.run (in a worker process); returns a JSON-ready record:
    status "ok" with split, losses, accuracies and times per epoch, or status "failed" with error and
    traceback; always log (what train_mlp printed), worker, threads (the engine's), environment (the
    thread variables the worker process started with) and wall_seconds."""
    vg.set_num_threads(threads)
    record = {"worker": f"{socket.gethostname()}:{os.getpid()}", "threads": vg.get_num_threads(),
              "environment": {k: os.environ.get(k) for k in RECORDED_VARIABLES}}
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        # one thread per worker, so redirecting the process's streams captures this task alone
        with redirect_stdout(out), redirect_stderr(err):
            result = train_mlp.run(train_mlp.parse(argv, prog="train_mlp.py"))
    except (Exception, SystemExit) as e:  # train_mlp exits with a message on bad data or flags
        record.update(status="failed", error=describe_exit(e, err.getvalue()), traceback=traceback.format_exc())
    else:
        record.update(status="ok", split=result["split"], losses=[float(v) for v in result["losses"]],
                      accuracies=[float(v) for v in result["accuracies"]],
                      times=[float(v) for v in result["times"]])
    record.update(wall_seconds=time.perf_counter() - start, log=out.getvalue() + err.getvalue())
    return record


def scores(record):
    """The table's numbers of one finished record: final and best accuracy, best epoch, final loss, time."""
    accs, losses = record.get("accuracies") or [], record.get("losses") or []
    best = int(np.argmax(accs)) if accs else None
    return dict(final_accuracy=accs[-1] if accs else None, best_accuracy=accs[best] if accs else None,
                best_epoch=best + 1 if accs else None, final_loss=losses[-1] if losses else None,
                train_seconds=float(sum(record.get("times") or [])), epochs=len(accs))


# ---- results on disk ----

def result_path(out, variant):
    """Where the record of a variant that trained is kept: out/runs/<key>.json."""
    return os.path.join(out, "runs", variant["key"] + ".json")


def cached(out, variant):
    """The stored record of a variant that finished before, or None (missing, unreadable, failed or
    of other settings). Found by the hash of its resolved settings, so the same run named otherwise
    (activation=sigmoid, the default, or left out) is found too."""
    digest = variant["key"].rsplit("-", 1)[-1]
    exact = result_path(out, variant)
    others = glob.glob(os.path.join(glob.escape(os.path.join(out, "runs")), f"*-{digest}.json"))
    for path in [exact] + sorted(set(others) - {exact}):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if record.get("status") == "ok" and record.get("config") == variant["config"]:
            return record
    return None


def write_json(path, data):
    """Write data as JSON to path atomically: a run killed mid-write leaves no half file to skip on."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(partial, path)


def spread(values):
    """mean, sample standard deviation (None for fewer than two values), min, max of the non-None values."""
    values = np.array([v for v in values if v is not None], dtype=float)
    if not len(values):
        return None, None, None, None
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return float(values.mean()), std, float(values.min()), float(values.max())


def summarize(variants, records):
    """Per setting (the variants that differ only in seed): {group, settings, runs, ok, records, and
    <metric>_mean/_std/_min/_max for each of METRICS}, in the order of the variants."""
    groups, names = {}, columns(variants)
    for variant in variants:
        settings = {name: shown(variant, name) for name in names}
        groups.setdefault(variant["group"], dict(group=variant["group"], settings=settings, members=[]))
        groups[variant["group"]]["members"].append(records[variant["key"]])
    rows = []
    for g in groups.values():
        done = [r for r in g["members"] if r["status"] == "ok"]
        row = dict(group=g["group"], settings=g["settings"], runs=len(g["members"]), ok=len(done), records=done)
        for metric in METRICS:
            values = [scores(r)[metric] for r in done]
            for stat, v in zip(("mean", "std", "min", "max"), spread(values)):
                row[f"{metric}_{stat}"] = v
        rows.append(row)
    return rows


def columns(variants):
    """The setting names of the sweep in order of first use, the seed left out (it has its own column)."""
    names = []
    for variant in variants:
        names += [k for k in variant["settings"] if k != "seed" and k not in names]
    return names


def shown(variant, name):
    """A setting's value in the tables: as given, else as the shared flags or train_mlp's defaults
    resolved it ("" where train_mlp decides at run time, e.g. hidden: 4x the input)."""
    if name in variant["settings"]:
        return variant["settings"][name]
    value = (variant["config"] or {}).get(name)
    return "" if value is None else as_text(value)


def number(value, digits=4):
    """A table's number with the given decimals, or "" for a missing one."""
    return "" if value is None else f"{value:.{digits}f}"


def write_tables(out, variants, records, flags):
    """results.csv (one row per variant), summary.csv and summary.md (per setting); returns the
    Markdown text."""
    names = columns(variants)
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", *names, "seed", "status", "split", "epochs", "final_accuracy", "best_accuracy",
                         "best_epoch", "final_loss", "train_seconds", "wall_seconds", "worker", "error", "result"])
        for v in variants:
            r, s = records[v["key"]], scores(records[v["key"]])
            ok = r["status"] == "ok"
            writer.writerow([v["name"], *(shown(v, n) for n in names),
                             (v["config"] or {}).get("seed", v["settings"].get("seed", "")), r["status"],
                             r.get("split", ""), s["epochs"], number(s["final_accuracy"]), number(s["best_accuracy"]),
                             s["best_epoch"] or "", number(s["final_loss"], 6), number(s["train_seconds"], 3),
                             number(r.get("wall_seconds"), 3), r.get("worker", ""), r.get("error", ""),
                             os.path.relpath(result_path(out, v), out) if ok else ""])
    rows = summarize(variants, records)
    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        stats = [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "min", "max")]
        writer.writerow(["setting", *names, "runs", "ok", *stats])
        for row in rows:
            writer.writerow([row["group"], *(row["settings"][n] for n in names), row["runs"], row["ok"],
                             *(number(row[s], 6) for s in stats)])
    split = next((r["split"] for r in records.values() if r.get("split")), "validation")
    return markdown(rows, names, variants, records, flags, split)


def markdown(rows, names, variants, records, flags, split):
    """The Markdown summary: one table row per setting (mean ± sd over seeds), then the failures."""
    def cell(row, metric, digits):
        mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
        if mean is None:
            return "-"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")

    best = max((r["final_accuracy_mean"] for r in rows if r["final_accuracy_mean"] is not None), default=None)
    seeds = max(r["runs"] for r in rows) if rows else 0
    lines = [f"{len(variants)} runs: {len(rows)} setting{'s' if len(rows) != 1 else ''}"
             f"{f' x up to {seeds} seeds' if seeds > 1 else ''}; train_mlp.py flags for every run: "
             f"`{' '.join(flags) or '(none)'}`; mean ± sd over seeds.", "",
             "| " + " | ".join([*names, "runs ok", f"final {split} acc.", f"best {split} acc.", "final train loss",
                                "train time (s)"]) + " |",
             "|" + "---|" * (len(names) + 5)]
    for row in rows:
        accuracy = cell(row, "final_accuracy", 4)
        if best is not None and row["final_accuracy_mean"] == best and len(rows) > 1:
            accuracy = f"**{accuracy}**"
        lines.append("| " + " | ".join([*(row["settings"][n] or "(default)" for n in names),
                                        f"{row['ok']}/{row['runs']}", accuracy, cell(row, "best_accuracy", 4),
                                        cell(row, "final_loss", 4), cell(row, "train_seconds", 2)]) + " |")
    failed = [v for v in variants if records[v["key"]]["status"] != "ok"]
    if failed:
        lines += ["", f"Failed ({len(failed)}):", ""]
        lines += [f"- `{v['name']}`: {records[v['key']]['error']}" for v in failed]
    return "\n".join(lines) + "\n"


def plot(path, rows, title):
    """Loss (left) and accuracy (right) per epoch of every setting: each seed's run as a thin line
    and their mean as a thick one (a mean alone hides a seed that got stuck). Returns path."""
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = vg.plot.figure(ncols=2, width=6.0, height=4.5)
    drawn = [row for row in rows if any(r.get("accuracies") for r in row["records"])]
    span = []
    for i, row in enumerate(drawn):
        epochs = min(len(r["accuracies"]) for r in row["records"] if r.get("accuracies"))
        runs = [r for r in row["records"] if len(r.get("accuracies") or []) >= epochs]
        x = np.arange(1, epochs + 1)
        losses = np.array([r["losses"][:epochs] for r in runs])
        accs = np.array([r["accuracies"][:epochs] for r in runs])
        color, style = f"C{i % 10}", ["-", "--", ":", "-."][(i // 10) % 4]
        name = row["group"] + (f" (mean of {len(runs)} seeds)" if len(runs) > 1 else "")
        for ax, values in ((left, losses), (right, accs)):
            if len(runs) > 1:
                ax.plot(x, values.T, color=color, linestyle=style, linewidth=0.7, alpha=0.35)
            ax.plot(x, values.mean(axis=0), color=color, linestyle=style, linewidth=2.0, label=name,
                    marker="o" if epochs <= 20 else None, markersize=3)
        span += [float(v) for v in losses.ravel() if np.isfinite(v) and v > 0]
    if span and max(span) / min(span) > 50:  # a diverging or all-zeros variant would flatten the others
        left.set_yscale("log")
    split = next((r["split"] for row in drawn for r in row["records"]), "validation")
    for ax, ylabel in ((left, "train loss"), (right, f"{split} accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.suptitle(title, fontsize=10)
    return vg.plot.save(fig, path)


# ---- the engine ----

@contextmanager
def dask_client(scheduler=None, workers=None, threads=1):
    """A dask.distributed Client: to the scheduler at the given address, or to an embedded LocalCluster
    of `workers` processes with one thread each, whose processes start with the thread variables of
    the BLAS and OpenMP set to `threads` (restored in this process afterwards)."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise SystemExit(f"sweep.py needs Dask distributed, which is not installed ({e}): {INSTALL_HINT}") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as e:
            raise SystemExit(f"sweep.py: could not reach the Dask scheduler at {scheduler}: {e}") from None
        with client:
            # workers elsewhere have no experiments/ folder: send them the two scripts the tasks import
            for name in ("train_mlp.py", "sweep.py"):
                client.upload_file(os.path.join(HERE, name))
            yield client
        return
    # The nanny sets these before it spawns a worker, so numpy's OpenBLAS and OpenMP start with that
    # many threads. Dask's own list is left out on purpose: its MALLOC_TRIM_THRESHOLD_=65536 makes
    # glibc hand freed activations back to the kernel at every step, which made a Fashion-MNIST epoch
    # 1.4-1.9x slower here (page faults: sys time 0.7-0.9 s -> 2.5-2.8 s over two epochs). The nanny sets them
    # in this process too (and PYTHONHASHSEED), hence the restore.
    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": {k: str(threads) for k in THREAD_VARIABLES}}), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                             dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    finally:
        for k in set(os.environ) - set(saved):
            del os.environ[k]
        os.environ.update(saved)


def progress(total):
    """A progress bar over the tasks (tqdm when installed), and how to print a line beside it."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, print
    bar = tqdm(total=total, unit="run", desc="sweep", file=sys.stderr, dynamic_ncols=True, disable=None)
    return bar, bar.write


def run_all(client, todo, threads, out, records):
    """Submit every variant of todo as a task, store each record as it arrives (results of the ok
    ones in out/runs/), and print a line per variant; returns how many failed."""
    from dask.distributed import as_completed

    futures = {client.submit(train_variant, v["argv"], threads, key=f"train-{v['key']}", pure=False): v
               for v in todo}
    bar, say = progress(len(todo))
    failed = 0
    try:
        for i, future in enumerate(as_completed(futures), 1):
            variant = futures[future]
            try:
                record = future.result()
            except Exception as e:  # the worker died (KilledWorker) or the task could not run at all
                record = dict(status="failed", error=f"{type(e).__name__}: {e}")
            record.update(name=variant["name"], settings=variant["settings"], argv=variant["argv"],
                          config=variant["config"])
            records[variant["key"]] = record
            if record["status"] == "ok":
                write_json(result_path(out, variant), record)
                s = scores(record)
                say(f"[{i}/{len(todo)}] {variant['name']}: final {record['split']} accuracy "
                    f"{number(s['final_accuracy'])} (best {number(s['best_accuracy'])}), {s['train_seconds']:.1f} s")
            else:
                failed += 1
                say(f"[{i}/{len(todo)}] {variant['name']}: FAILED: {record['error']}")
            if bar is not None:
                bar.update()
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise SystemExit(f"sweep.py: interrupted; the finished runs are kept in {out}/runs, "
                         f"and the same command goes on from there") from None
    finally:
        if bar is not None:
            bar.close()
    return failed


# ---- command line ----

def build_parser():
    """The sweep's own options; parse_known_args leaves the others for train_mlp.py."""
    parser = ArgumentParser(prog="sweep.py", description=__doc__.splitlines()[0], allow_abbrev=False,
                            epilog="Any other option goes to every variant's train_mlp.py (see its --help).")
    add = parser.add_argument
    add("--grid", nargs="+", default=[], metavar="NAME=A,B",
        help="settings and their values; every combination is a variant (e.g. hidden=16,64 init=glorot_normal,zeros)")
    add("--variant", action="append", default=[], metavar="'NAME=V NAME=V'",
        help="one variant of its own (repeatable); crossed with --grid when both are given")
    add("--config", metavar="FILE", help="grid, variants and flags in a .json, .toml or .yaml file")
    add("--out", default="sweep-results", help="folder of the results (default ./sweep-results)")
    add("--workers", type=int, help="worker processes of the embedded cluster (default: cores / --threads)")
    add("--threads", type=int, default=1, help="engine and BLAS threads per task (1)")
    add("--scheduler", metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786) instead of a local cluster")
    add("--force", action="store_true", help="train every variant again, even those with results in --out")
    add("--dry-run", action="store_true", help="list the variants, their train_mlp.py flags and which are done")
    add("--no-plot", action="store_true", help="write the tables only")
    return parser


def main(argv=None):
    """Run the sweep that argv (None: sys.argv) describes; returns the exit status (1 when a variant failed)."""
    parser = build_parser()
    args, flags = parser.parse_known_args(argv)
    if args.threads < 1 or (args.workers is not None and args.workers < 1):
        parser.error(f"--workers and --threads must be >= 1, got {args.workers} and {args.threads}")
    try:
        grid, listed, file_flags = load_config(args.config) if args.config else ({}, [], [])
        grid.update(parse_assignments(args.grid, "--grid"))
        for text in args.variant:
            listed.append({k: v[0] if len(v) == 1 else None for k, v in
                           parse_assignments(text.split(), "--variant").items()})
            if None in listed[-1].values():
                raise SweepError(f"sweep.py: --variant {text!r}: one value per setting (use --grid for several)")
        flags = file_flags + flags
        shared, error = parse_quietly(flags)
        if error:
            raise SweepError(f"sweep.py: the flags for every variant ({' '.join(flags)}) are not train_mlp.py's: "
                             f"{error}")
        if any(getattr(shared, name) for name in PER_RUN_OUTPUTS):
            raise SweepError("sweep.py: --save and --plot are one file per run and cannot go to every variant; "
                             "the sweep writes its own tables and figure to --out")
        variants = make_variants(expand(grid, listed), flags)
    except SweepError as e:
        raise SystemExit(str(e)) from None

    out = args.out
    records = {} if args.force else {v["key"]: r for v in variants if (r := cached(out, v)) is not None}
    todo = [v for v in variants if v["key"] not in records and v["error"] is None]
    for v in variants:
        if v["error"] is not None:
            records[v["key"]] = dict(status="failed", error=v["error"], name=v["name"], settings=v["settings"],
                                     argv=v["argv"], config=None)
    if args.dry_run:
        for v in variants:
            state = "done" if v["key"] in records and records[v["key"]]["status"] == "ok" else \
                "invalid: " + v["error"] if v["error"] else "to run"
            print(f"{v['name']}  [{state}]\n    train_mlp.py {' '.join(v['argv'])}")
        return 0
    os.makedirs(out, exist_ok=True)
    done = sum(r["status"] == "ok" for r in records.values())
    print(f"## sweep: {len(variants)} variants, {done} with results in {os.path.join(out, 'runs')} (skipped; "
          f"--force re-runs them), {len(todo)} to train", flush=True)
    for v in variants:
        if v["error"] is not None:
            print(f"## not run: {v['name']}: {v['error']}", flush=True)
    start = time.perf_counter()
    failed = sum(r["status"] != "ok" for r in records.values())
    if todo:
        workers = args.workers or max(1, (os.cpu_count() or 1) // args.threads)
        if args.scheduler and args.workers:
            print("## --workers applies to the local cluster only; the cluster at --scheduler has its own",
                  file=sys.stderr)
        with dask_client(args.scheduler, workers, args.threads) as client:
            where = args.scheduler or f"a local Dask cluster of {workers} worker processes"
            print(f"## on {where}, {args.threads} thread{'s' if args.threads > 1 else ''} per task", flush=True)
            failed += run_all(client, todo, args.threads, out, records)
    print(f"## {len(todo)} run{'s' if len(todo) != 1 else ''} done in {time.perf_counter() - start:.1f} s")

    text = write_tables(out, variants, records, flags)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    written = ["results.csv", "summary.csv", "summary.md"]
    rows = summarize(variants, records)
    if not args.no_plot and any(row["ok"] for row in rows):
        if vg.plot.available():
            data = {v["config"]["data"] for v in variants if v["config"]}
            drawn = sum(row["ok"] > 0 for row in rows)
            plot(os.path.join(out, "curves.png"), rows,
                 f"{data.pop() + ': ' if len(data) == 1 else ''}{drawn} setting{'s' if drawn > 1 else ''}; "
                 f"train_mlp.py {' '.join(flags) or 'defaults'}")
            written.append("curves.png")
        else:
            print(f"## no figure: matplotlib is not installed ({vg.plot.INSTALL_HINT})", file=sys.stderr)
    print(f"## wrote {', '.join(os.path.join(out, name) for name in written)}")
    if failed:
        print(f"## {failed} of {len(variants)} variants failed (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
