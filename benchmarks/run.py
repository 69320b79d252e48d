"""tapegrad against a numpy reference (vugrad-style, numpy_reference.py) and PyTorch, in one process.

    python benchmarks/run.py                  # everything (a few minutes), JSON + README table
    python benchmarks/run.py --quick          # small counts, for a smoke test
    python benchmarks/run.py --only ops,gemm --repeats 9

Sections: ops (per-op overhead), mlp (forward+backward of one batch), synth (an epoch of vugrad's
synthetic task), mnist (an epoch of the 60k x 784 MNIST-shaped task), cnn (training steps of a
small Fashion-MNIST CNN and of LeNet on CIFAR-shaped batches, and one conv layer), gemm (GFLOP/s of
matrix products). Within a section the libraries are interleaved: every repeat measures each of them once,
in an order that rotates from repeat to repeat, so a burst of load from other jobs hits them all.
Cells are medians over the repeats (GEMM: the best) with the spread, +-(max - min) / (2 median).
"""

import argparse
import contextlib
import ctypes
import datetime
import functools
import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
import timeit

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cnn_epoch  # noqa: E402
import fma_peak  # noqa: E402
import models  # noqa: E402
import numpy_reference as npref  # noqa: E402

import tapegrad as vg  # noqa: E402

SECTIONS = ("ops", "mlp", "synth", "mnist", "cnn", "gemm")
LIBS = models.LIBS
EPOCH_STEPS = math.ceil(60_000 / models.BATCH)  # 469 batches of 128 in an epoch of 60k
MNIST_STEPS = 100  # MNIST-shaped steps timed per repeat, scaled to an epoch (--mnist-steps full: all)
SYNTH_LR, MNIST_LR = 0.01, 1e-4
README = os.path.join(HERE, "README.md")
RESULTS = os.path.join(HERE, "results")
BEGIN, END = "<!-- BEGIN latest-results (written by run.py) -->", "<!-- END latest-results -->"

torch = None  # set in main() when PyTorch is installed and wanted


# ---- machine and settings ----

def machine_info():
    cpu, flags = None, ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:
        pass
    info = {
        "cpu": cpu,
        "avx512": "avx512f" in flags.split(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "tapegrad": getattr(vg, "__version__", "?"),
        "tapegrad_gemm_backend": vg.gemm_backend(),
        "tapegrad_blas_library": vg.runtime.blas_library(),
        "tapegrad_flush_denormal": vg.get_flush_denormal(),
        "torch_blas": _torch_blas(),
        "tapegrad_threads": vg.get_num_threads(),
        "torch": torch.__version__ if torch else None,
        "torch_threads": torch.get_num_threads() if torch else None,
        "tapegrad_built": _built(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--", "cpp", "python")),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thread_env": {k: v for k, v in os.environ.items()
                       if k.startswith(("OMP_", "GOMP_", "OPENBLAS_", "MKL_", "TAPEGRAD_"))},
    }
    return info


def _torch_blas():
    """Which BLAS PyTorch's matrix products run on ("MKL ..." or its build's BLAS_INFO)."""
    if not torch:
        return None
    try:
        if torch.backends.mkl.is_available():
            return "MKL " + torch.backends.mkl.get_version_string() if hasattr(torch.backends.mkl, "get_version_string") else "MKL"
        for part in torch.__config__.show().split(","):
            if "BLAS_INFO" in part:
                return part.split("=", 1)[1].strip()
    except Exception:
        pass
    return "unknown"


def _built():
    """When the installed engine was built (the extension's file time): the source tree may have moved on."""
    try:
        path = vg._core.__file__
        return datetime.datetime.fromtimestamp(os.path.getmtime(path)).astimezone().isoformat(timespec="seconds")
    except (AttributeError, OSError):
        return None


def _git(*args):
    try:
        out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# ---- measurement ----

class Row:
    """One line of the table: a workload measured for several libraries.

    samples[lib] holds one number per repeat (seconds, or seconds per call); for GEMM the cells
    are GFLOP/s of the best sample, otherwise the median time.
    """

    def __init__(self, section, key, work, unit, target=None, flops=None, note=""):
        self.section, self.key, self.work, self.unit = section, key, work, unit
        self.target = target  # (against, bound, "<=" or ">=") on the ratio tapegrad / against
        self.flops = flops
        self.note = note
        self.samples = {}
        self.extra = {}

    def value(self, lib):
        s = self.samples.get(lib)
        if not s:
            return None
        return self.flops / min(s) / 1e9 if self.flops else float(np.median(s))

    def resolve(self, lib):
        """The library whose numbers stand in a column: for "torch", torch at 1 thread when that was
        measured and faster (on a loaded 2-core machine 2 threads can be 100x slower on small ops)."""
        if lib == "torch" and self.value("torch-1t") is not None and self.value("torch") is not None:
            if self.value("torch-1t") < self.value("torch"):
                return "torch-1t"
        return lib

    def spread(self, lib):
        s = self.samples.get(lib)
        if not s or len(s) < 2:
            return None
        return (max(s) - min(s)) / (2 * float(np.median(s)))

    def ratio(self, other):
        a, b = self.value("tapegrad"), self.value(self.resolve(other))
        return None if a is None or b is None or b == 0 else a / b

    def paired_ratios(self, other):
        """tapegrad / other in each repeat (the two were measured next to each other)."""
        a, b = self.samples.get("tapegrad", []), self.samples.get(self.resolve(other), [])
        if not a or len(a) != len(b):
            return []
        if self.flops:  # GFLOP/s ratio is the inverse time ratio
            return [y / x for x, y in zip(a, b)]
        return [x / y for x, y in zip(a, b)]

    def met(self):
        if not self.target:
            return None
        against, bound, sense = self.target
        r = self.ratio(against)
        if r is None:
            return "n/a"
        ok = (lambda v: v <= bound) if sense == "<=" else (lambda v: v >= bound)
        paired = self.paired_ratios(against)
        verdict = "yes" if ok(r) else "no"
        if paired and len({ok(p) for p in paired}) > 1:
            verdict += " (noisy)"  # some repeats on each side of the bound
        return verdict

    def to_json(self):
        summary = {}
        for lib, s in self.samples.items():
            summary[lib] = {"value": self.value(lib), "median": float(np.median(s)), "min": min(s), "max": max(s),
                            "spread": self.spread(lib), "n": len(s)}
        ratios = {}
        for other in ("numpy-ref", "torch"):
            r = self.ratio(other)
            if r is not None:
                paired = self.paired_ratios(other)
                ratios[f"tapegrad/{other}"] = {"value": r, "against": self.resolve(other),
                                               "paired_min": min(paired) if paired else None,
                                               "paired_max": max(paired) if paired else None}
        target = None
        if self.target:
            target = {"against": self.target[0], "bound": self.target[2] + " " + str(self.target[1]),
                      "met": self.met()}
        return {"section": self.section, "key": self.key, "work": self.work,
                "unit": "GFLOP/s (best)" if self.flops else self.unit + " (median)",
                "better": "higher" if self.flops else "lower", "samples": self.samples, "summary": summary,
                "ratios": ratios, "target": target, "note": self.note, **self.extra}


def interleave(cases, repeats, progress=""):
    """Call each case's measure() once per repeat, rotating the order; append to row.samples[lib].
    numpy's cases run with its BLAS at the run's thread count (see numpy_blas_threads)."""
    for r in range(repeats):
        shift = r % len(cases)
        for row, lib, measure in cases[shift:] + cases[:shift]:
            with numpy_blas_threads(THREADS if lib == "numpy-ref" else 1):
                row.samples.setdefault(lib, []).append(measure())
        if progress:
            print(f"  {progress}: repeat {r + 1}/{repeats} done", file=sys.stderr, flush=True)


THREADS = 1  # the run's --threads, set by main()


@contextlib.contextmanager
def numpy_blas_threads(n):
    """numpy's BLAS (the OpenBLAS in its wheel) at n threads inside the block, then back at 1.
    tapegrad keeps that library, which it shares with numpy, at one thread from import on and
    splits large products over its own threads; numpy-ref would otherwise run single-threaded in
    a 2-thread run."""
    setter = _openblas_setter()
    if setter is None or n == 1:
        yield
        return
    setter(n)
    try:
        yield
    finally:
        setter(1)


@functools.lru_cache(maxsize=None)
def _openblas_setter():
    for path in vg.runtime.blas_libraries()[:1]:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            if hasattr(lib, name):
                return getattr(lib, name)
    return None


def per_call(stmt, env, seconds):
    """A measure(): seconds per call of stmt, timing as many calls as take about `seconds`."""
    timer = timeit.Timer(stmt, setup="gc.enable()", globals={**env, "gc": gc})
    number = 1
    while True:  # calibrate once
        t = timer.timeit(number)
        if t >= seconds / 5 or number >= 1 << 24:
            break
        number *= 4
    number = max(1, int(number * seconds / max(t, 1e-9)))
    return lambda: timer.timeit(number) / number


# ---- sections ----

def section_ops(args):
    """Per-op overhead on 2x2 float64: a + b, a @ b, sigmoid(a), with and without a recorded graph."""
    rng = np.random.default_rng(0)
    a0, b0 = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    env = {
        "vg": vg, "npref": npref, "np": np,
        "a": vg.TensorNode(a0.copy()), "b": vg.TensorNode(b0.copy()),
        "ca": vg.TensorNode(a0.copy(), requires_grad=False), "cb": vg.TensorNode(b0.copy(), requires_grad=False),
        "na": npref.TensorNode(a0.copy()), "nb": npref.TensorNode(b0.copy()),
        "pa": a0.copy(), "pb": b0.copy(),
    }
    stmts = {  # (row key, work): {lib: statement}
        ("add", "`a + b`"): {"tapegrad": "a + b", "numpy-ref": "na + nb", "torch": "ta + tb"},
        ("matmul", "`a @ b`"): {"tapegrad": "a @ b", "numpy-ref": "na @ nb", "torch": "ta @ tb"},
        ("sigmoid", "`sigmoid(a)`"): {"tapegrad": "vg.sigmoid(a)", "numpy-ref": "npref.sigmoid(na)",
                                      "torch": "torch.sigmoid(ta)"},
    }
    plain = {"add": "pa + pb", "matmul": "pa @ pb", "sigmoid": "1.0 / (1.0 + np.exp(-pa))"}
    if torch:
        env.update(torch=torch,
                   ta=torch.tensor(a0, requires_grad=True), tb=torch.tensor(b0, requires_grad=True))
    rows, cases = [], []
    seconds = 0.02 if args.quick else 0.1
    for (key, work), by_lib in stmts.items():
        for grad in (True, False):
            row = Row("ops", f"ops.{key}.{'grad' if grad else 'nograd'}",
                      f"{work} 2x2 f64, {'with grad' if grad else 'no grad'}", "us",
                      target=("torch", 0.3, "<=") if grad else None,
                      note="" if grad else "tapegrad and torch inside no_grad(); numpy-ref: plain numpy arrays")
            rows.append(row)
            for lib, stmt in by_lib.items():
                if lib == "torch" and not torch:
                    continue
                if not grad and lib == "numpy-ref":
                    stmt = plain[key]
                measure = per_call(stmt, env, seconds)
                if not grad and lib != "numpy-ref":
                    measure = _without_grad(lib, measure)
                cases.append((row, lib, _in_us(measure)))
                if lib == "torch" and args.threads > 1:
                    cases.append((row, "torch-1t", _torch_threads(1, _in_us(measure))))
    interleave(cases, args.repeats or (3 if args.quick else 7), "ops")
    return rows


def _in_us(measure):
    return lambda: measure() * 1e6


def _torch_threads(n, measure):
    """measure() with torch limited to n threads (then back): torch's small-op speed on a loaded
    2-core machine depends on it."""
    def run():
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return measure()
        finally:
            torch.set_num_threads(previous)
    return run


def _in_mode(measure, set_mode, on, off):
    """measure() with set_mode(on) around it, then set_mode(off): a library's setting changed for
    one case only, so the other columns stay as installed."""
    def run():
        set_mode(on)
        try:
            return measure()
        finally:
            set_mode(off)
    return run


def _torch_flush(measure):
    """measure() with torch.set_flush_denormal(True) (then back): PyTorch's faster setting where
    subnormals appear."""
    return _in_mode(measure, torch.set_flush_denormal, True, False)


def _without_grad(lib, measure):
    def run():
        with (vg.no_grad() if lib == "tapegrad" else torch.no_grad()):
            return measure()
    return run


def _mlp_configs(section):
    """(key, label, n_in, hidden, classes, dtype, libs) of the models measured in a section."""
    small = [("h8.f64", "hidden 8 (2-8-2), f64", 2, 8, 2, np.float64, LIBS),
             ("h8.f32", "hidden 8 (2-8-2), f32", 2, 8, 2, np.float32, ("tapegrad", "torch"))]
    big = [("784.f32", "784-3136-10, f32", 784, 3136, 10, np.float32, ("tapegrad", "torch")),
           ("784.f64", "784-3136-10, f64", 784, 3136, 10, np.float64, LIBS)]
    return {"mlp": small + big, "synth": small, "mnist": big}[section]


def step_gflop(n_in, hidden, classes, batch=128):
    """GFLOP of one training step of the 2-layer MLP: 2 x multiply-adds of the forward (two
    products), the two weight gradients and the input gradient of the second layer (the first
    layer's input is data); 1.283 for 784-3136-10 at batch 128."""
    macs = n_in * hidden + hidden * classes
    return 2 * batch * (2 * macs + hidden * classes) / 1e9


def _peak(meta_threads):
    """This core's FMA peak (GFLOP/s per dtype name) times the threads, measured once per process."""
    if not hasattr(_peak, "value"):
        _peak.value = fma_peak.fma_peak()
    p = _peak.value
    return None if p is None else {k: v * meta_threads for k, v in p.items() if k.startswith("float")}


def _flush_libs(row, lib, make):
    """The extra cases of an MLP row: tapegrad with IEEE subnormals (vg.set_flush_denormal(False)),
    torch with flush (torch.set_flush_denormal(True)); each sets its mode only around its own
    measurement. make(name) gives the measure() of the case named name."""
    if lib == "tapegrad":
        return [(row, "tapegrad-ieee", _in_mode(make("tapegrad-ieee"), vg.set_flush_denormal, False, True))]
    if lib == "torch":
        return [(row, "torch-ftz", _in_mode(make("torch-ftz"), torch.set_flush_denormal, True, False))]
    return []


def _bf16_libs(row, lib, make):
    """The bfloat16 cases of a float32 row: tapegrad and torch with set_float32_matmul_precision
    ("medium"), each only around its own measurement (make(name): the measure() of that case)."""
    if lib not in ("tapegrad", "torch"):
        return []
    module = vg if lib == "tapegrad" else torch
    name = lib + "-bf16"
    return [(row, name, _in_mode(make(name), module.set_float32_matmul_precision, "medium", "highest"))]


def _libs(libs):
    return [lib for lib in libs if lib != "torch" or torch]


def section_mlp(args):
    """Forward + backward of one batch of 128 (gradients cleared after), no update."""
    rows, cases = [], []
    rng = np.random.default_rng(1)
    for key, label, n_in, hidden, classes, dtype, libs in _mlp_configs("mlp"):
        init = models.glorot_init(n_in, hidden, classes, seed=0)
        x = rng.standard_normal((models.BATCH, n_in))
        y = rng.integers(0, classes, models.BATCH)
        unit, scale = ("us", 1e6) if hidden == 8 else ("ms", 1e3)
        row = Row("mlp", f"mlp.{key}", f"MLP fwd+bwd, batch 128, {label}", unit)
        rows.append(row)
        seconds = (0.03 if hidden == 8 else 0.1) if args.quick else (0.1 if hidden == 8 else 0.5)
        for lib in _libs(libs):
            t = models.make_trainer(lib, init, dtype)
            xb, yb = t.prepare(x, y)
            t.forward_backward(xb, yb)  # warm-up
            measure = per_call("t.forward_backward(xb, yb)", {"t": t, "xb": xb, "yb": yb}, seconds)
            cases.append((row, lib, (lambda m=measure, s=scale: m() * s)))
            if hidden > 8:
                cases += _flush_libs(row, lib, lambda name, m=measure, s=scale: (lambda: m() * s))
            if lib == "torch" and hidden == 8 and args.threads > 1:
                cases.append((row, "torch-1t", _torch_threads(1, lambda m=measure, s=scale: m() * s)))
    interleave(cases, args.repeats or (3 if args.quick else 5), "mlp")
    return rows


def choose_update(init, dtype, lr, x, y, steps, rounds=3):
    """tapegrad's faster SGD update on this model: "manual" (p.value -= lr * p.grad) or "sgd"
    (vg.optim.SGD): `steps` training steps of each, alternating, `rounds` times. Returns the choice
    and the median seconds per step of each."""
    times = {"manual": [], "sgd": []}
    trainers = {u: models.make_trainer("tapegrad", init, dtype, lr=lr, update=u) for u in times}
    data = {u: t.prepare(x, y) for u, t in trainers.items()}
    for r in range(rounds):
        for u in (("manual", "sgd") if r % 2 == 0 else ("sgd", "manual")):
            xs, ys = data[u]
            seconds, _ = trainers[u].epoch(xs, ys, steps)
            times[u].append(seconds / steps)
    med = {u: float(np.median(v)) for u, v in times.items()}
    return min(med, key=med.get), med


def section_epochs(args, section):
    """Training epochs (synth or MNIST-shaped): each repeat starts from the same init."""
    if section == "synth":
        (x, y), _, classes = vg.load_synth(seed=0)
        data_name, lr, steps = "vg.load_synth(seed=0), 60000 x 2", SYNTH_LR, None
    else:
        x, y, data_name = mnist_shaped()
        lr, steps = MNIST_LR, args.mnist_steps or (10 if args.quick else MNIST_STEPS)
        steps = None if steps >= EPOCH_STEPS else steps
    full = len(models.batch_slices(len(y)))
    rows, cases = [], []
    configs = [(*c, "raw") for c in _mlp_configs(section)]
    if section == "mnist":
        # vugrad's raw 0-255 pixels saturate the sigmoid (subnormal activations); standardised
        # inputs (one mean and standard deviation over the training set) do not.
        configs.insert(1, (*configs[0][:7], "std"))
        x_std = (x - x.mean()) / x.std()
    for key, label, n_in, hidden, classes, dtype, libs, inputs in configs:
        init = models.glorot_init(n_in, hidden, classes, seed=0)
        # issue 16's bounds: f32 raw pixels <= 0.5x PyTorch as installed (and <= 1.0x with flush),
        # standardised <= 0.9x, f64 <= 0.85x
        bound = 0.3 if section == "synth" else (0.85 if dtype == np.float64 else (0.5 if inputs == "raw" else 0.9))
        target = ("torch", bound, "<=")
        what = "synth epoch" if section == "synth" else "MNIST-shaped epoch"
        scaled = f" (from {steps} steps x {full}/{steps})" if steps else ""
        data, shown = (x_std, "standardised (x - mean) / std") if inputs == "std" else (x, data_name)
        suffix = ".std" if inputs == "std" else ""
        label = label + (", standardised inputs" if inputs == "std" else (", raw pixels" if section == "mnist" else ""))
        row = Row(section, f"{section}.epoch.{key.split('.')[1]}{suffix}", f"{what} {label}{scaled}", "s", target=target,
                  note=f"data: {shown}; lr {lr}; batch 128 in order; each repeat from the same seeded init")
        if section == "mnist":
            row.extra["gflop_per_step"] = step_gflop(n_in, hidden, classes)
        x_row = data
        update, per_step = choose_update(init, dtype, lr, x_row, y, steps=20 if hidden == 8 else (3 if args.quick else 8),
                                         rounds=1 if args.quick else 3)
        row.extra["tapegrad_update"] = {"chosen": update, "seconds_per_step": per_step}
        row.extra["losses"] = {}
        rows.append(row)
        for lib in _libs(libs):
            t = models.make_trainer(lib, init, dtype, lr=lr, update=update if lib == "tapegrad" else "manual")
            xs, ys = t.prepare(x_row, y)
            t.epoch(xs, ys, 3)  # warm-up
            cases.append((row, lib, _epoch_measure(row, lib, t, init, xs, ys, steps, full)))
            if section == "mnist":
                cases += _flush_libs(row, lib, lambda name, t=t, xs=xs, ys=ys: _epoch_measure(
                    row, name, t, init, xs, ys, steps, full))
                if dtype == np.float32 and inputs == "raw":
                    cases += _bf16_libs(row, lib, lambda name, t=t, xs=xs, ys=ys: _epoch_measure(
                        row, name, t, init, xs, ys, steps, full))
            if lib == "tapegrad" and section == "synth":  # the same step recorded and replayed by vg.jit
                tj = models.make_trainer(lib, init, dtype, lr=lr, update="jit")
                xj, yj = tj.prepare(x_row, y)
                tj.epoch(xj, yj, 3)  # warm-up: the two recording calls and a replay
                cases.append((row, "tapegrad-jit", _epoch_measure(row, "tapegrad-jit", tj, init, xj, yj, steps, full)))
            if lib == "torch" and section == "synth" and args.threads > 1:
                cases.append((row, "torch-1t", _torch_threads(1, _epoch_measure(row, lib, t, init, xs, ys, steps, full))))
    interleave(cases, args.repeats or (1 if args.quick else (5 if section == "synth" else 3)), section)
    return rows


def _epoch_measure(row, lib, trainer, init, x, y, steps, full):
    def run():
        trainer.reset(init)
        gc.collect()
        seconds, loss = trainer.epoch(x, y, steps)
        row.extra["losses"][lib] = loss
        return seconds * (full / steps if steps else 1.0)
    return run


def mnist_shaped():
    """60000 x 784 float64 pixel values (0-255) and labels 0-9: Fashion-MNIST's training set when
    installed, else random data of that shape."""
    try:
        (x, y), _, _ = vg.load_fashion_mnist(final=True, path=vg.data.FASHION_MNIST_DIR)
        return x.astype(np.float64), y, f"Fashion-MNIST from {vg.data.FASHION_MNIST_DIR}, 60000 x 784, pixels 0-255"
    except Exception:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (60_000, 784)).astype(np.float64)
        return x, rng.integers(0, 10, 60_000), "random 60000 x 784 (pixels 0-255, 10 classes): no data set installed"


# ---- convolutional networks ----

def conv_flops(model, shape):
    """Multiply-adds x 2 of one training step of a Sequential of Conv2d/Linear/... on a batch of
    `shape`: forward, weight gradient and (except for the first layer, whose input is data) input
    gradient of every conv and linear layer."""
    total, first = 0, True
    x = vg.TensorNode(np.zeros(shape, dtype=np.float32), requires_grad=False)
    with vg.no_grad():
        for layer in model:
            y = layer(x)
            if isinstance(layer, vg.nn.Conv2d):
                work = 2 * y.value.size * layer.weight.value[0].size
            elif isinstance(layer, vg.nn.Linear):
                work = 2 * y.value.size * layer.in_features
            else:
                work = 0
            total += work * (2 if first else 3)
            first = first and work == 0
            x = y
    return total


CNN_STEPS = (  # (key, work, model, channels, size, target)
    ("small", "Fashion-MNIST CNN step (conv 1-32 k3, ReLU, pool, conv 32-64 k3, ReLU, pool, linear), batch 128, "
     "SGD, f32", "small", 1, 28, 1.0),
    ("lenet", "LeNet step on CIFAR-shaped batches (3x32x32; conv 3-6 k5, pool, conv 6-16 k5, pool, fc 400-120-84-10), "
     "batch 128, SGD, f32", "lenet", 3, 32, 1.2),
)


def _cnn_step(model, opt, x, y, steps):
    def run():
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss = vg.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps * 1e3
    return run


def _torch_cnn_step(model, opt, x, y, steps):
    def run():
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / steps * 1e3
    return run


def section_cnn(args):
    """Training steps of the two CNNs (the same initial parameters in both libraries, random data
    in [-1, 1]) and forward+backward of the conv 32->64 k3 layer alone; each sample is the mean of a
    few steps."""
    import train_cnn
    rows, cases = [], []
    rng = np.random.default_rng(4)
    for key, work, name, channels, size, bound in CNN_STEPS:
        vg.manual_seed(0)
        model = train_cnn.MODELS[name](channels, size, np.float32)
        shape = (128, channels, size, size)
        flops = conv_flops(model, shape)
        row = Row("cnn", f"cnn.step.{key}", work, "ms", target=("torch", bound, "<="),
                  note="same initial parameters; random images in [-1, 1]; SGD lr 0.01")
        row.extra["gflop_per_step"] = flops / 1e9
        rows.append(row)
        xs, ys = rng.uniform(-1, 1, shape).astype(np.float32), rng.integers(0, 10, 128)
        steps = 2 if args.quick else (5 if key == "small" else 10)
        torch_model = cnn_epoch.torch_model(torch, model) if torch else None
        opt = vg.optim.SGD(model.parameters(), lr=0.01)
        measure = _cnn_step(model, opt, vg.TensorNode(xs, requires_grad=False), ys, steps)
        measure()  # warm-up
        cases.append((row, "tapegrad", measure))
        if torch:
            topt = torch.optim.SGD(torch_model.parameters(), lr=0.01)
            tmeasure = _torch_cnn_step(torch_model, topt, torch.from_numpy(xs), torch.from_numpy(ys), steps)
            tmeasure()
            cases.append((row, "torch", tmeasure))
            cases.append((row, "torch-flush", _torch_flush(tmeasure)))
            if args.threads > 1:
                cases.append((row, "torch-1t", _torch_threads(1, tmeasure)))
    # the conv 32 -> 64 k3 layer of the small CNN (13 x 13 input), forward + backward, float32
    x = rng.standard_normal((128, 32, 13, 13)).astype(np.float32)
    w = (rng.standard_normal((64, 32, 3, 3)) * 0.06).astype(np.float32)
    b = np.zeros(64, np.float32)
    g = rng.standard_normal((128, 64, 11, 11)).astype(np.float32)
    row = Row("cnn", "cnn.conv.32-64", "conv 32->64 k3 fwd+bwd (input, weight and bias gradients), 128x32x13x13, f32",
              "ms", note="the upstream gradient is a fixed random array; each sample is the mean of 3 calls")
    row.extra["gflop_per_step"] = 3 * 2 * 128 * 64 * 121 * 288 / 1e9
    rows.append(row)
    nodes = [vg.TensorNode(a) for a in (x, w, b)]
    G = vg.TensorNode(g, requires_grad=False)

    def ours():
        start = time.perf_counter()
        for _ in range(3):
            vg.sum(vg.conv2d(*nodes) * G).backward()
        return (time.perf_counter() - start) / 3 * 1e3
    ours()
    cases.append((row, "tapegrad", ours))
    if torch:
        tensors = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        tg = torch.from_numpy(g)

        def theirs():
            start = time.perf_counter()
            for _ in range(3):
                (torch.nn.functional.conv2d(*tensors) * tg).sum().backward()
            return (time.perf_counter() - start) / 3 * 1e3
        theirs()
        cases.append((row, "torch", theirs))
        if args.threads > 1:
            cases.append((row, "torch-1t", _torch_threads(1, theirs)))
    # the machine's GEMM rate on the conv layer's product, for the GFLOP/s above: numpy's sgemm
    a, bm = rng.standard_normal((64, 288)).astype(np.float32), rng.standard_normal((288, 128 * 121)).astype(np.float32)
    gemm_row = Row("cnn", "cnn.gemm.64x288x15488", "GEMM 64x288x15488 f32 (the conv layer's forward as one product)",
                   "s", flops=2.0 * 64 * 288 * 128 * 121, note="numpy-ref column: numpy's a @ b (its BLAS)")
    rows.append(gemm_row)
    cases.append((gemm_row, "numpy-ref", per_call("a @ b", {"a": a, "b": bm}, 0.03 if args.quick else 0.15)))
    interleave(cases, args.repeats or (2 if args.quick else 7), "cnn")
    for r in rows:
        flop = r.extra.get("gflop_per_step")
        if flop:
            r.extra["gflops"] = {lib: flop / (r.value(lib) / 1e3) for lib in r.samples if r.value(lib)}
    return rows


GEMM_SHAPES = (  # (n, k, m, what): (n, k) @ (k, m)
    (128, 784, 3136, "layer 1 forward"),
    (3136, 128, 784, "layer 1 weight grad"),
    (128, 3136, 10, "layer 2 forward"),
    (1024, 1024, 1024, "square"),
)


def section_gemm(args):
    """GFLOP/s (2 n k m / s) of the engine's matrix product against numpy's (and torch's) BLAS."""
    rows, cases = [], []
    rng = np.random.default_rng(2)
    seconds = 0.03 if args.quick else 0.15
    backend = vg.gemm_backend()
    for dtype in (np.float32, np.float64):
        for n, k, m, what in GEMM_SHAPES:
            a = rng.standard_normal((n, k)).astype(dtype)
            b = rng.standard_normal((k, m)).astype(dtype)
            layer = what != "square"
            row = Row("gemm", f"gemm.{n}x{k}x{m}.{np.dtype(dtype).name}",
                      f"GEMM {n}x{k}x{m} {np.dtype(dtype).name} ({what})", "s",
                      target=("numpy-ref", 0.8, ">=") if layer else None, flops=2.0 * n * k * m,
                      note="numpy-ref column: numpy's a @ b (its BLAS); tapegrad: TensorNode @ TensorNode, no grad")
            rows.append(row)
            env = {"A": vg.TensorNode(a, requires_grad=False), "B": vg.TensorNode(b, requires_grad=False),
                   "a": a, "b": b}
            cases.append((row, "tapegrad", per_call("A @ B", env, seconds)))
            cases.append((row, "numpy-ref", per_call("a @ b", env, seconds)))
            if torch:
                env.update(ta=torch.from_numpy(a), tb=torch.from_numpy(b))
                cases.append((row, "torch", per_call("ta @ tb", env, seconds)))
            if backend == "blas":  # the engine's own Eigen kernel, for the record (JSON only)
                cases.append((row, "tapegrad-eigen", _with_backend("eigen", per_call("A @ B", env, seconds))))
            if dtype == np.float32:  # bfloat16 operands (set_float32_matmul_precision("medium")), a note
                cases += _bf16_libs(row, "tapegrad", lambda name: per_call("A @ B", env, seconds))
                if torch:
                    cases += _bf16_libs(row, "torch", lambda name: per_call("ta @ tb", env, seconds))
    interleave(cases, args.repeats or (3 if args.quick else 7), "gemm")
    return rows


def _with_backend(name, measure):
    def run():
        previous = vg.gemm_backend()
        vg.set_gemm_backend(name)
        try:
            return measure()
        finally:
            vg.set_gemm_backend(previous)
    return run


# ---- correctness ----

def check_against_reference():
    """Loss and gradients of tapegrad, the numpy reference and torch on one synth batch and one
    MNIST-shaped batch (float64, same init): the largest relative differences."""
    out = {}
    rng = np.random.default_rng(3)
    for name, (n_in, hidden, classes) in {"h8": (2, 8, 2), "784": (784, 3136, 10)}.items():
        init = models.glorot_init(n_in, hidden, classes, seed=0)
        x = rng.standard_normal((models.BATCH, n_in)) * (1 if n_in == 2 else 50)
        y = rng.integers(0, classes, models.BATCH)
        results = {}
        for lib in _libs(LIBS):
            t = models.make_trainer(lib, init, np.float64)
            results[lib] = t.gradients(*t.prepare(x, y))
        loss_ref, grads_ref = results["numpy-ref"]
        for lib in results:
            if lib == "numpy-ref":
                continue
            loss, grads = results[lib]
            out[f"{name}.{lib}_vs_numpy-ref"] = {
                "loss_rel_diff": abs(loss - loss_ref) / abs(loss_ref),
                "grad_max_rel_diff": max(float(np.abs(g - r).max() / (np.abs(r).max() + 1e-300))
                                         for g, r in zip(grads, grads_ref)),
            }
    return out


# ---- output ----

def fmt_value(row, lib, column=False):
    if column and row.resolve(lib) != lib:
        return fmt_value(row, row.resolve(lib)) + " (1 thr)"
    v = row.value(lib)
    if v is None:
        return "-"
    if row.flops:
        return f"{v:.0f} GF/s" if v >= 10 else f"{v:.2g} GF/s"
    s = row.spread(lib)
    text = f"{v:.3g} {row.unit}" if v < 1000 else f"{v:.0f} {row.unit}"
    return text + (f" ±{100 * s:.0f}%" if s is not None else "")


def paired_median(row, a, b):
    """Median over the repeats of a's time / b's time (measured next to each other), or None."""
    x, y = row.samples.get(a, []), row.samples.get(b, [])
    if not x or len(x) != len(y):
        return None
    return float(np.median([p / q for p, q in zip(x, y)]))


def _ratio(row, lib):
    a, b = row.value("tapegrad"), row.value(lib)
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def fmt_target(row):
    if not row.target:
        return ""
    against, bound, sense = row.target
    name = "numpy" if against == "numpy-ref" else against
    return f"{sense} {bound} x {name}" if not row.flops else f"{sense} {bound:.0%} of numpy"


def table(rows):
    lines = ["| work | tapegrad | numpy-ref | torch | tapegrad/numpy | tapegrad/torch | target | met? |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append("| " + " | ".join([row.work, fmt_value(row, "tapegrad"), fmt_value(row, "numpy-ref"),
                                        fmt_value(row, "torch", column=True), fmt_ratio(row.ratio("numpy-ref")),
                                        fmt_ratio(row.ratio("torch")), fmt_target(row), row.met() or ""]) + " |")
    return "\n".join(lines)


def notes(rows, meta, checks):
    out = []
    have = [r for r in rows if r.samples.get("torch-1t")]
    if have:
        out.append("- torch at 2 threads (the reference setting) and at 1 thread, side by side; the torch column "
                   "shows the faster, marked (1 thr) when that was 1 thread: " + "; ".join(
                       f"{r.work}: {fmt_value(r, 'torch')} vs {fmt_value(r, 'torch-1t')}" for r in have))
    have = [r for r in rows if r.samples.get("torch-flush")]
    if have:
        out.append("- torch with flush-to-zero (torch.set_flush_denormal(True)), at the run's thread count: "
                   + "; ".join(f"{r.work.split(' (')[0]}: {fmt_value(r, 'torch-flush')}, tapegrad / it "
                               f"{fmt_ratio(_ratio(r, 'torch-flush'))}" for r in have))
    have = [r for r in rows if r.samples.get("tapegrad-jit")]
    if have:
        out.append("- tapegrad with the step under vg.jit (recorded, then replayed in C++), paired ratios: " + "; ".join(
            f"{r.work}: {fmt_value(r, 'tapegrad-jit')}, / tapegrad "
            f"{fmt_ratio(paired_median(r, 'tapegrad-jit', 'tapegrad'))}, / torch "
            f"{fmt_ratio(paired_median(r, 'tapegrad-jit', 'torch'))}" for r in have))
    have = [r for r in rows if r.samples.get("tapegrad-eigen")]
    if have:
        out.append("- tapegrad with its own Eigen GEMM instead of the BLAS (vg.set_gemm_backend('eigen')): "
                   + "; ".join(f"{r.work.split(' (')[0]}: {fmt_value(r, 'tapegrad-eigen')}" for r in have))
    have = [r for r in rows if r.samples.get("torch-ftz") or r.samples.get("tapegrad-ieee")]
    if have:
        out.append("- flush-to-zero: tapegrad as shipped (matrix products and optimiser steps with FTZ|DAZ), with "
                   "IEEE subnormals (`vg.set_flush_denormal(False)`), torch as installed and with "
                   "`torch.set_flush_denormal(True)`; ratios are medians of the paired ratios: " + "; ".join(
                       f"{r.work.split(' (from')[0]}: tapegrad {fmt_value(r, 'tapegrad')}, IEEE "
                       f"{fmt_value(r, 'tapegrad-ieee')}, torch {fmt_value(r, 'torch')}, torch flush "
                       f"{fmt_value(r, 'torch-ftz')}; tapegrad/torch {fmt_ratio(paired_median(r, 'tapegrad', 'torch'))}, "
                       f"/torch flush {fmt_ratio(paired_median(r, 'tapegrad', 'torch-ftz'))}, IEEE/torch "
                       f"{fmt_ratio(paired_median(r, 'tapegrad-ieee', 'torch'))}, flush/IEEE "
                       f"{fmt_ratio(paired_median(r, 'tapegrad', 'tapegrad-ieee'))}" for r in have))
    have = [r for r in rows if r.samples.get("tapegrad-bf16") and r.section == "gemm"]
    if have:
        out.append("- GEMM with bfloat16 operands (`set_float32_matmul_precision('medium')`; tapegrad's kernel: "
                   f"{vg.bf16_kernel()}): " + "; ".join(
                       f"{r.work.split(' (')[0]}: tapegrad {fmt_value(r, 'tapegrad-bf16')}, torch "
                       f"{fmt_value(r, 'torch-bf16')}" for r in have))
    have = [r for r in rows if r.samples.get("tapegrad-bf16") and r.section != "gemm"]
    if have:
        out.append("- bfloat16 products (`set_float32_matmul_precision('medium')` in each library; tapegrad's "
                   f"kernel: {vg.bf16_kernel()}), paired ratios: " + "; ".join(
                       f"{r.work.split(' (from')[0]}: tapegrad {fmt_value(r, 'tapegrad-bf16')}, torch "
                       f"{fmt_value(r, 'torch-bf16')}; tapegrad-bf16 / tapegrad "
                       f"{fmt_ratio(paired_median(r, 'tapegrad-bf16', 'tapegrad'))}, / torch "
                       f"{fmt_ratio(paired_median(r, 'tapegrad-bf16', 'torch'))}, / torch flush "
                       f"{fmt_ratio(paired_median(r, 'tapegrad-bf16', 'torch-ftz'))}, / torch-bf16 "
                       f"{fmt_ratio(paired_median(r, 'tapegrad-bf16', 'torch-bf16'))}" for r in have))
    have = [r for r in rows if r.extra.get("pct_fma_peak")]
    if have:
        out.append(f"- % of FMA peak (GFLOP of a step / its time / ({meta.get('fma_peak_gflops')} GFLOP/s per core "
                   f"x {meta.get('tapegrad_threads')} threads), from benchmarks/fma_peak.py): " + "; ".join(
                       f"{r.work.split(' (from')[0]} ({r.extra['gflop_per_step']:.3f} GFLOP/step): " + ", ".join(
                           f"{lib} {v:.0f}%" for lib, v in r.extra["pct_fma_peak"].items()) for r in have))
    if meta.get("tapegrad_gemm_backend"):
        out.append(f"- BLAS: tapegrad {meta['tapegrad_gemm_backend']} ({meta.get('tapegrad_blas_library')}); "
                   f"torch {meta.get('torch_blas')}")
    for row in rows:
        upd = row.extra.get("tapegrad_update")
        losses = row.extra.get("losses")
        if upd:
            per = ", ".join(f"{u} {1e3 * s:.3g} ms/step" for u, s in upd["seconds_per_step"].items())
            out.append(f"- {row.work.split(' (from')[0]}: tapegrad update `{upd['chosen']}` ({per}); mean loss "
                       + ", ".join(f"{lib} {v:.6g}" for lib, v in (losses or {}).items()))
    have = [r for r in rows if r.extra.get("gflops")]
    if have:
        gemm = next((r for r in rows if r.key.startswith("cnn.gemm")), None)
        rate = f" (numpy's sgemm on the conv layer's product: {fmt_value(gemm, 'numpy-ref')})" if gemm else ""
        out.append("- GFLOP/s of the CNN rows (2 x multiply-adds of forward, weight and input gradients per step)"
                   + rate + ": " + "; ".join(
                       f"{r.key.split('.', 1)[1]}: " + ", ".join(f"{lib} {v:.1f}" for lib, v in r.extra["gflops"].items())
                       for r in have))
    if checks:
        worst = max(v["grad_max_rel_diff"] for v in checks.values())
        out.append(f"- gradient check (float64, one batch, against numpy-ref): largest relative difference {worst:.1e}")
    load = meta.get("load_average_start"), meta.get("load_average_end")
    if all(load):
        out.append(f"- load average (1 min) at start {load[0][0]:.2f}, at end {load[1][0]:.2f} "
                   f"on {meta['logical_cores']} logical cores")
    return "\n".join(out)


def machine_line(meta):
    return (f"{meta['cpu']}, {meta['logical_cores']} logical cores{' (AVX-512)' if meta['avx512'] else ''}; "
            f"Python {meta['python']}, numpy {meta['numpy']} ({meta['numpy_blas']}), torch {meta['torch']} "
            f"({meta['torch_threads']} threads), tapegrad {meta['tapegrad']} at {meta['git_commit']}"
            f"{' + local changes' if meta['git_dirty'] else ''} (GEMM: {meta['tapegrad_gemm_backend']}, "
            f"{meta['tapegrad_threads']} threads, built {meta['tapegrad_built']}); {meta['date']}")


def write_readme(text):
    with open(README) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        print(f"warning: {README} has no {BEGIN} marker; not updated", file=sys.stderr)
        return
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)


def _steps(text):
    if text == "full":
        return EPOCH_STEPS
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1 or 'full'")
    return n


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small counts and 10 MNIST steps (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default per section)")
    p.add_argument("--only", default=None, help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--json", default=None, help="output file (default benchmarks/results/latest.json "
                   "plus a timestamped copy)")
    p.add_argument("--mnist-steps", type=_steps, default=None,
                   help=f"MNIST-shaped steps timed per repeat, scaled to an epoch of {EPOCH_STEPS}; 'full' for the "
                   f"whole epoch (default {MNIST_STEPS}, --quick 10)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads of every library: tapegrad's (its pool), numpy's BLAS (during numpy-ref's runs) and torch "
                   "(default 2, as the reference figures; 1 gives steadier numbers on a loaded machine)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    p.add_argument("--readme", choices=("auto", "yes", "no"), default="auto",
                   help="write the table into benchmarks/README.md (auto: on a full default run)")
    args = p.parse_args(argv)
    args.sections = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(",") if s.strip())
    for s in args.sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r}; choose from {', '.join(SECTIONS)}")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv=None):
    global torch
    args = parse_args(argv)
    if not args.no_torch:
        try:
            import torch as _torch
            torch = _torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch is not installed: the torch column stays empty", file=sys.stderr)
    vg.set_num_threads(args.threads)
    global THREADS
    THREADS = args.threads
    meta = machine_info()
    meta["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    start = time.perf_counter()
    checks = check_against_reference() if set(args.sections) & {"mlp", "synth", "mnist"} else {}
    worst = max((v["grad_max_rel_diff"] for v in checks.values()), default=0.0)
    if worst > 1e-8:
        print(f"warning: the libraries disagree on gradients (relative difference {worst:.1e})", file=sys.stderr)
    rows = []
    for section in SECTIONS:
        if section not in args.sections:
            continue
        print(f"[{section}]", file=sys.stderr, flush=True)
        if section == "ops":
            rows += section_ops(args)
        elif section == "mlp":
            rows += section_mlp(args)
        elif section in ("synth", "mnist"):
            rows += section_epochs(args, section)
        elif section == "cnn":
            rows += section_cnn(args)
        else:
            rows += section_gemm(args)
    peak = _peak(args.threads) if any(r.extra.get("gflop_per_step") and r.section == "mnist" for r in rows) else None
    if peak:
        meta["fma_peak_gflops"] = {k: round(v / args.threads, 1) for k, v in peak.items()}
        for r in rows:
            if r.section == "mnist" and r.extra.get("gflop_per_step"):
                steps_timed = EPOCH_STEPS  # the cells are seconds per epoch (469 steps)
                dtype = "float64" if ".f64" in r.key else "float32"
                r.extra["pct_fma_peak"] = {
                    lib: 100 * r.extra["gflop_per_step"] * steps_timed / float(np.median(s)) / peak[dtype]
                    for lib, s in r.samples.items() if s}
    meta["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    meta["seconds"] = time.perf_counter() - start

    md = table(rows)
    note_text = notes(rows, meta, checks)
    print(f"\nMachine: {machine_line(meta)}\n")
    print(md)
    print("\n" + note_text)

    result = {"meta": meta, "settings": {k: v for k, v in vars(args).items()}, "checks": checks,
              "rows": [r.to_json() for r in rows], "table_markdown": md, "notes": note_text}
    paths = [args.json] if args.json else [os.path.join(RESULTS, "latest.json"), os.path.join(
        RESULTS, "run-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")]
    for path in paths:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=1)
    print(f"\nJSON: {', '.join(paths)}", file=sys.stderr)

    full_run = not args.quick and not args.only and args.repeats is None and args.mnist_steps is None
    if args.readme == "yes" or (args.readme == "auto" and full_run and not args.json):
        command = "python benchmarks/run.py" + ("" if full_run else " " + " ".join(sys.argv[1:] if argv is None else argv))
        write_readme(f"Machine: {machine_line(meta)}. Command: `{command}`, {meta['seconds']:.0f} s.\n\n"
                     f"{md}\n\n{note_text}")
        print(f"README: {README} updated", file=sys.stderr)


if __name__ == "__main__":
    main()
