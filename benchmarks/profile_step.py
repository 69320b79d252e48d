"""Where the time of one training step goes: phases, tapegrad's ops, and the GEMM floor.

    python benchmarks/profile_step.py                 # synth f64, MNIST-shaped f32 and f64
    python benchmarks/profile_step.py --only synth --steps 400
    python benchmarks/profile_step.py --write-readme  # also put the result in benchmarks/README.md
    python benchmarks/profile_step.py --only mnist.f32 --flush-columns [--inputs std]  # FTZ on and off

For each model, every library runs the training step of run.py (same init, batches in order,
batch 128) with a clock read between phases: wrapping the batch, each layer of the forward, the
loss, ``loss.item()``, backward, the SGD update. Libraries take turns in blocks of steps; the
numbers are medians per step. Then, for tapegrad only:

- the forward per op (the same clock readings, finer);
- the backward per op, timed on raw arrays through the op API (``ctx = {}; Op.forward(ctx, ...)``,
  then ``Op.backward(ctx, g)``), which computes the gradient of every input, including the batch's,
  that the tape skips;
- the GEMM floor: the five matrix products of a step (two forward, three backward) timed with
  numpy's BLAS at the same shapes; what a step costs beyond them is element-wise work and overhead.
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import models  # noqa: E402
import numpy_reference as npref  # noqa: E402

import tapegrad as vg  # noqa: E402

README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- BEGIN profile-after (written by profile_step.py --write-readme) -->", "<!-- END profile-after -->"
PHASES = ("wrap batch", "linear 1", "sigmoid", "linear 2", "logsoftmax", "loss", "loss.item()", "backward",
          "update")
clock = time.perf_counter


# ---- one instrumented training step per library: returns the phase durations ----

def step_tapegrad(t, xb, yb):
    marks = [clock()]
    batch = vg.TensorNode(xb, requires_grad=False)
    marks.append(clock())
    h = t.layer1(batch)
    marks.append(clock())
    s = vg.sigmoid(h)
    marks.append(clock())
    o = t.layer2(s)
    marks.append(clock())
    lp = vg.logsoftmax(o)
    marks.append(clock())
    loss = vg.logceloss(lp, yb)
    marks.append(clock())
    loss.item()
    marks.append(clock())
    loss.backward()
    marks.append(clock())
    if t.update == "sgd":
        t.optimizer.step()
        t.optimizer.zero_grad()
    else:
        for p in t.params:
            p.value -= t.lr * p.grad
            p.grad = None
    marks.append(clock())
    return np.diff(marks)


def step_numpy(t, xb, yb):
    m = t.model
    marks = [clock()]
    batch = npref.TensorNode(xb)
    marks.append(clock())
    h = m.layer1(batch)
    marks.append(clock())
    s = npref.sigmoid(h)
    marks.append(clock())
    o = m.layer2(s)
    marks.append(clock())
    lp = npref.logsoftmax(o)
    marks.append(clock())
    loss = npref.logceloss(lp, yb)
    marks.append(clock())
    float(loss.value)
    marks.append(clock())
    loss.backward()
    marks.append(clock())
    for p in t.params:
        p.value -= t.lr * p.grad
    loss.zero_grad()
    marks.append(clock())
    return np.diff(marks)


def step_torch(t, xb, yb):
    torch, F = t.torch, t.F
    w1, b1, w2, b2 = t.params
    marks = [clock(), clock()]  # the batch is already a tensor slice
    h = F.linear(xb, w1, b1)
    marks.append(clock())
    s = torch.sigmoid(h)
    marks.append(clock())
    o = F.linear(s, w2, b2)
    marks.append(clock())
    lp = torch.log_softmax(o, dim=1)
    marks.append(clock())
    loss = lp.gather(1, yb[:, None]).sum() * -1.0
    marks.append(clock())
    loss.item()
    marks.append(clock())
    loss.backward()
    marks.append(clock())
    with torch.no_grad():
        for p in t.params:
            p.add_(p.grad, alpha=-t.lr)
            p.grad = None
    marks.append(clock())
    return np.diff(marks)


def in_mode(step, set_mode, on, off):
    """step with set_mode(t, on) around it, then set_mode(t, off): one library's setting changed for
    its own column only."""
    def run(t, xb, yb):
        set_mode(t, on)
        try:
            return step(t, xb, yb)
        finally:
            set_mode(t, off)
    return run


# tapegrad with IEEE subnormals in its matrix products, torch with flush-to-zero, and both with
# bfloat16 operands in their float32 products (torch's oneDNN may use bfloat16 then)
step_tapegrad_ieee = in_mode(step_tapegrad, lambda t, on: vg.set_flush_denormal(on), False, True)
step_torch_ftz = in_mode(step_torch, lambda t, on: t.torch.set_flush_denormal(on), True, False)
step_tapegrad_bf16 = in_mode(step_tapegrad, lambda t, p: vg.set_float32_matmul_precision(p), "medium", "highest")
step_torch_bf16 = in_mode(step_torch, lambda t, p: t.torch.set_float32_matmul_precision(p), "medium", "highest")


STEPS = {"tapegrad": step_tapegrad, "numpy-ref": step_numpy, "torch": step_torch,
         "tapegrad-ieee": step_tapegrad_ieee, "torch-ftz": step_torch_ftz,
         "tapegrad-bf16": step_tapegrad_bf16, "torch-bf16": step_torch_bf16}


def profile_phases(libs, init, dtype, lr, x, y, steps, block, update):
    """Median seconds per phase for each library over `steps` steps, in rotating blocks."""
    trainers, data, samples = {}, {}, {}
    for lib in libs:
        base = lib.split("-")[0] if lib != "numpy-ref" else lib
        trainers[lib] = models.make_trainer(base, init, dtype, lr=lr, update=update if base == "tapegrad" else "manual")
        data[lib] = trainers[lib].prepare(x, y)
        samples[lib] = []
    bounds = models.batch_slices(len(y))
    done, r = 0, 0
    while done < steps:
        order = libs[r % len(libs):] + libs[:r % len(libs)]
        for lib in order:
            xs, ys = data[lib]
            for fr, to in bounds[done:done + block]:
                samples[lib].append(STEPS[lib](trainers[lib], xs[fr:to], ys[fr:to]))
        done += block
        r += 1
    return {lib: np.median(np.array(s[min(3, len(s) - 1):]), axis=0) for lib, s in samples.items()}


# ---- tapegrad's backward per op, on raw arrays ----

def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times))


def backward_per_op(init, dtype, x, y, repeats):
    """Median seconds of each op's forward and backward kernels through the raw-array op API."""
    w1, b1, w2, b2 = [np.ascontiguousarray(v, dtype=dtype) for v in init]
    xb = np.ascontiguousarray(x[:models.BATCH], dtype=dtype)
    yb = np.ascontiguousarray(y[:models.BATCH])
    steps = [  # (name, op, inputs, constants)
        ("linear 1", vg.FusedLinear, lambda: (xb, w1, b1), {}),
        ("sigmoid", vg.Sigmoid, lambda: (vals["h"],), {}),
        ("linear 2", vg.FusedLinear, lambda: (vals["s"], w2, b2), {}),
        ("logsoftmax", vg.LogSoftmax, lambda: (vals["o"],), {}),
        ("select", vg.Select, lambda: (vals["lp"],), {"indices": yb}),
        ("sum", vg.Sum, lambda: (vals["picked"],), {}),
    ]
    names = ("h", "s", "o", "lp", "picked", "total")
    vals, out = {}, {}
    for (name, op, inputs, kw), result in zip(steps, names):
        vals[result] = op.forward({}, *inputs(), **kw)
        fwd = median_time(lambda: op.forward({}, *inputs(), **kw), repeats)
        bwd = []
        g = np.ones_like(vals[result])
        for _ in range(repeats):
            ctx = {}
            op.forward(ctx, *inputs(), **kw)
            t0 = clock()
            op.backward(ctx, g)
            bwd.append(clock() - t0)
        out[name] = (fwd, float(np.median(bwd)))
    return out


def gemm_floor(n_in, hidden, classes, dtype, repeats):
    """Median seconds of the step's five matrix products with numpy's BLAS: (forward, backward)."""
    rng = np.random.default_rng(0)
    n = models.BATCH
    x, w1 = rng.standard_normal((n, n_in)).astype(dtype), rng.standard_normal((hidden, n_in)).astype(dtype)
    s, w2 = rng.standard_normal((n, hidden)).astype(dtype), rng.standard_normal((classes, hidden)).astype(dtype)
    g2, g1 = rng.standard_normal((n, classes)).astype(dtype), rng.standard_normal((n, hidden)).astype(dtype)
    fwd = [lambda: x @ w1.T, lambda: s @ w2.T]
    bwd = [lambda: g2.T @ s, lambda: g2 @ w2, lambda: g1.T @ x]
    return (sum(median_time(f, repeats) for f in fwd), sum(median_time(f, repeats) for f in bwd))


# ---- report ----

CONFIGS = {  # name: (label, n_in, hidden, classes, dtype, lr, libraries, default steps)
    "synth.f64": ("synth MLP 2-8-2, float64", 2, 8, 2, np.float64, 0.01, models.LIBS, 300),
    "mnist.f32": ("MNIST-shaped MLP 784-3136-10, float32", 784, 3136, 10, np.float32, 1e-4, ("tapegrad", "torch"), 40),
    "mnist.f64": ("MNIST-shaped MLP 784-3136-10, float64", 784, 3136, 10, np.float64, 1e-4, models.LIBS, 40),
}


def load_data(name):
    if name.startswith("synth"):
        (x, y), _, _ = vg.load_synth(seed=0)
        return x, y
    import run
    x, y, _ = run.mnist_shaped()
    return x, y


def fmt(seconds, unit):
    v = seconds * (1e6 if unit == "us" else 1e3)
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def report(name, steps, update, block, flush_columns=False, inputs="raw", bf16_columns=False):
    label, n_in, hidden, classes, dtype, lr, libs, default_steps = CONFIGS[name]
    libs = [lib for lib in libs if lib != "torch" or models.torch_available()]
    base = list(libs)
    if flush_columns:  # each library's step with and without flushing subnormals, side by side
        libs = [v for lib in libs for v in ((lib, lib + "-ieee") if lib == "tapegrad" else
                                             (lib, lib + "-ftz") if lib == "torch" else (lib,))]
    if bf16_columns and dtype == np.float32:  # and with float32_matmul_precision "medium"
        libs += [lib + "-bf16" for lib in base if lib in ("tapegrad", "torch")]
    steps = steps or default_steps
    unit = "us" if hidden == 8 else "ms"
    x, y = load_data(name)
    if inputs == "std":
        x = (x - x.mean()) / x.std()
        label += ", standardised inputs"
    elif name.startswith("mnist"):
        label += ", raw 0-255 pixels"
    init = models.glorot_init(n_in, hidden, classes, seed=0)
    if update == "auto":
        import run
        update, _ = run.choose_update(init, dtype, lr, x, y, steps=20 if hidden == 8 else 4, rounds=3)
    phases = profile_phases(libs, init, dtype, lr, x, y, steps, block, update)
    lines = [f"### {label}, batch 128 ({steps} steps per library, median per step in {unit})", "",
             "| phase | " + " | ".join(libs) + " |", "|---|" + "---|" * len(libs)]
    for i, phase in enumerate(PHASES):
        lines.append(f"| {phase} | " + " | ".join(fmt(phases[lib][i], unit) for lib in libs) + " |")
    totals = {lib: float(np.sum(phases[lib])) for lib in libs}
    lines.append("| **step (sum)** | " + " | ".join(f"**{fmt(totals[lib], unit)}**" for lib in libs) + " |")
    lines.append("| epoch estimate (x 469) | " + " | ".join(f"{totals[lib] * 469:.3g} s" for lib in libs) + " |")
    lines.append("")
    lines.append(f"tapegrad's update: `{'vg.optim.SGD' if update == 'sgd' else 'p.value -= lr * p.grad'}`.")

    repeats = 200 if hidden == 8 else 10
    per_op = backward_per_op(init, dtype, x, y, repeats)
    fwd_floor, bwd_floor = gemm_floor(n_in, hidden, classes, dtype, repeats)
    tg = phases["tapegrad"]
    lines += ["", f"tapegrad per op ({unit}; forward: raw op on arrays, backward: raw op on arrays, all input "
              "gradients):", "", "| op | forward | backward |", "|---|---|---|"]
    for op, (f, b) in per_op.items():
        lines.append(f"| {op} | {fmt(f, unit)} | {fmt(b, unit)} |")
    fwd_total = float(np.sum(tg[1:6]))
    lines += ["", f"GEMM floor (the step's 5 matrix products with numpy's BLAS): forward {fmt(fwd_floor, unit)} {unit}, "
              f"backward {fmt(bwd_floor, unit)} {unit}; tapegrad's forward {fmt(fwd_total, unit)} {unit} "
              f"({fwd_floor / fwd_total:.0%} GEMM), backward {fmt(tg[7], unit)} {unit} "
              f"({bwd_floor / tg[7]:.0%} GEMM), step {fmt(totals['tapegrad'], unit)} {unit} "
              f"({(fwd_floor + bwd_floor) / totals['tapegrad']:.0%} GEMM)."]
    return "\n".join(lines)


def write_readme(text):
    with open(README) as f:
        readme = f.read()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{README} lacks the markers {BEGIN} ... {END}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help=f"comma-separated: {', '.join(CONFIGS)} (or synth / mnist)")
    p.add_argument("--steps", type=int, default=None, help="steps per library (default 300 synth, 40 MNIST-shaped)")
    p.add_argument("--block", type=int, default=None, help="steps a library runs before the next takes its turn")
    p.add_argument("--update", choices=("auto", "manual", "sgd"), default="auto",
                   help="tapegrad's SGD update (auto: the faster on this model, as run.py)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads of every library (tapegrad's OpenMP and BLAS, numpy's BLAS, torch)")
    p.add_argument("--write-readme", action="store_true", help="put the result in benchmarks/README.md (after)")
    p.add_argument("--flush-columns", action="store_true",
                   help="also tapegrad with IEEE subnormals (tapegrad-ieee) and torch with set_flush_denormal "
                   "(torch-ftz)")
    p.add_argument("--bf16-columns", action="store_true",
                   help="also tapegrad and torch with set_float32_matmul_precision('medium') (bfloat16 operands "
                        "in float32 products; float32 configurations only)")
    p.add_argument("--inputs", choices=("raw", "std"), default="raw",
                   help="MNIST-shaped data: raw 0-255 pixels (vugrad's) or standardised (x - mean) / std")
    args = p.parse_args(argv)
    names = list(CONFIGS)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        names = [n for n in CONFIGS if n in wanted or n.split(".")[0] in wanted]
        if not names:
            p.error(f"--only: choose from {', '.join(CONFIGS)}, synth, mnist")
    vg.set_num_threads(args.threads)
    import run
    if models.torch_available():
        import torch
        torch.set_num_threads(args.threads)
        run.torch = torch  # machine_info reports its version and threads
    meta = run.machine_info()
    shown = " ".join(a for a in (sys.argv[1:] if argv is None else argv) if a != "--write-readme")
    parts = [f"Machine: {meta['cpu']}, {meta['logical_cores']} logical cores; tapegrad at {meta['git_commit']}"
             f"{' + local changes' if meta['git_dirty'] else ''} (GEMM: {meta['tapegrad_gemm_backend']}, "
             f"{meta['tapegrad_threads']} threads, built {meta['tapegrad_built']}); torch "
             f"{meta['torch']} ({meta['torch_threads']} threads); load average {meta['load_average_start'][0]:.2f} "
             f"on {meta['logical_cores']} cores; {time.strftime('%Y-%m-%d %H:%M')}. "
             f"Command: `python benchmarks/profile_step.py{' ' + shown if shown else ''}`."]
    print(parts[0] + "\n", flush=True)
    for name in names:
        block = args.block or (50 if name.startswith("synth") else 4)
        parts.append(report(name, args.steps, args.update, block, args.flush_columns, args.inputs, args.bf16_columns))
        print(parts[-1] + "\n", flush=True)
    text = "\n\n".join(parts)
    if args.write_readme:
        write_readme(text)
        print(f"README: {README} updated", file=sys.stderr)


if __name__ == "__main__":
    main()
