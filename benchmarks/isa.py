"""What each instruction-set copy of the kernels buys: the same timings per copy, side by side.

The default build compiles the kernels for the x86-64 baseline and again for x86-64-v3 (AVX2, FMA)
and picks one at import (cpp/isa.cpp); TAPEGRAD_ISA forces one. This script times the fixed cost
of op calls, element-wise kernels, a reduction, the fused losses, optimiser updates and whole MLP
training steps in fresh processes, one per copy (and per other build given with --build),
alternating them round after round so that load from other jobs hits all of them, and prints the
best time of each with its ratio to the first column.

    python benchmarks/isa.py                          # the copies of the installed build
    python benchmarks/isa.py --build native=DIR ...   # also a build whose tapegrad package is in DIR
    python benchmarks/isa.py --only mlp --rounds 9
    python benchmarks/isa.py --env cache-off=TAPEGRAD_BUFFER_CACHE_MB=0   # also with a variable set

Single-threaded (OMP_NUM_THREADS=1) and timed in process CPU time, so the numbers move less with
the load of a shared machine; each cell is the best of 5 timings per process and of all rounds.
"""

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import tapegrad as vg

only = sys.argv[1].split(",")
vg.manual_seed(0)
rng = np.random.default_rng(0)
out = {"isa": getattr(vg._core, "kernel_isa", lambda: "?")()}  # builds before the copies lack it


def best(f, n):
    # CPU time of this (single-threaded) process: time spent waiting for a core that other jobs
    # hold does not count, so the figures move less with the machine's load than wall time does.
    f()  # warm-up
    times = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            f()
        times.append((time.process_time() - t0) / n)
    return min(times)


def node(*shape, dtype=np.float32, grad=True):
    return vg.TensorNode(rng.standard_normal(shape).astype(dtype), requires_grad=grad)


def fwd_bwd(fn, x):
    def run():
        fn(x).sum().backward()
        x.grad = None
    return run


if "ops" in only:
    # The fixed cost of an op call (bindings, tape): tiny operands, forward and backward.
    for dt in (np.float32, np.float64):
        d = np.dtype(dt).name
        a, b = node(2, 2, dtype=dt), node(2, 2, dtype=dt)

        def add():
            (a + b).sum().backward()

        def matmul():
            (a @ b).sum().backward()

        def no_grad():
            with vg.no_grad():
                vg.sigmoid(a * b + 1.0)
        out[f"(a + b).sum().backward() 2x2 {d}"] = best(add, 20000)
        out[f"(a @ b).sum().backward() 2x2 {d}"] = best(matmul, 20000)
        out[f"sigmoid(a * b + 1) no grad 2x2 {d}"] = best(no_grad, 20000)

if "kernels" in only:
    for dt in (np.float32, np.float64):
        d = np.dtype(dt).name
        h = node(128, 3136, dtype=dt)
        b = node(1, 3136, dtype=dt)
        out[f"sigmoid fwd+bwd 128x3136 {d}"] = best(fwd_bwd(vg.sigmoid, h), 20)
        out[f"relu fwd+bwd 128x3136 {d}"] = best(fwd_bwd(vg.relu, h), 20)
        out[f"tanh fwd+bwd 128x3136 {d}"] = best(fwd_bwd(vg.tanh, h), 20)
        out[f"exp fwd+bwd 128x3136 {d}"] = best(fwd_bwd(vg.exp, h), 20)
        out[f"h + bias, fwd+bwd 128x3136 {d}"] = best(fwd_bwd(lambda x: x + b, h), 20)
        out[f"h * h, fwd+bwd 128x3136 {d}"] = best(fwd_bwd(lambda x: x * x, h), 20)
        out[f"sum(axis=0) fwd+bwd 128x3136 {d}"] = best(fwd_bwd(lambda x: x.sum(axis=0), h), 20)
        logits = node(128, 10, dtype=dt)
        y = rng.integers(0, 10, 128)
        out[f"log_softmax fwd+bwd 128x10 {d}"] = best(fwd_bwd(vg.log_softmax, logits), 2000)
        out[f"cross_entropy fwd+bwd 128x10 {d}"] = best(fwd_bwd(lambda x: vg.cross_entropy(x, y), logits), 2000)
        small = node(2, 2, dtype=dt)
        out[f"sigmoid fwd+bwd 2x2 {d}"] = best(fwd_bwd(vg.sigmoid, small), 20000)

if "optim" in only:
    for dt in (np.float32, np.float64):
        d = np.dtype(dt).name
        w = node(784, 3136, dtype=dt)
        w.grad = rng.standard_normal(w.shape).astype(dt)
        adam = vg.optim.Adam([w], lr=1e-3)
        sgd = vg.optim.SGD([w], lr=1e-3, momentum=0.9)
        out[f"Adam step 784x3136 {d}"] = best(adam.step, 5)
        out[f"SGD momentum step 784x3136 {d}"] = best(sgd.step, 5)

if "mlp" in only:
    def trainer(sizes, dt, activation, optimizer, batch):
        model = vg.MLP(sizes, activation=activation, dtype=dt)
        opt = optimizer(model.parameters())
        x = vg.TensorNode(rng.standard_normal((batch, sizes[0])).astype(dt), requires_grad=False)
        y = rng.integers(0, sizes[-1], batch)

        def step():
            loss = vg.cross_entropy(model(x), y, reduction="sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    sgd = lambda p: vg.optim.SGD(p, lr=1e-4)
    adam = lambda p: vg.optim.Adam(p, lr=1e-3)
    for dt in (np.float32, np.float64):
        d = np.dtype(dt).name
        out[f"MLP step 2-8-2 sigmoid SGD {d}"] = best(trainer([2, 8, 2], dt, "sigmoid", sgd, 128), 400)
        out[f"MLP step 784-3136-10 sigmoid SGD {d}"] = best(trainer([784, 3136, 10], dt, "sigmoid", sgd, 128), 3)
    out["MLP step 784-256-10 relu Adam float32"] = best(trainer([784, 256, 10], np.float32, "relu", adam, 128), 50)

if "cnn" in only:
    # The CNN training steps of benchmarks/run.py's cnn section, written with the functions so they
    # run on builds of any age: conv (bias), ReLU, max-pool ... linear, cross-entropy, SGD.
    def cnn_trainer(layers, image, classes, batch):
        params = []
        for kind, *shape in layers:
            fan = int(np.prod(shape[1:]))
            params.append(vg.TensorNode((rng.standard_normal(shape) / np.sqrt(fan)).astype(np.float32)))
            params.append(vg.TensorNode(np.zeros(shape[0], np.float32)))
        x = vg.TensorNode(rng.uniform(-1, 1, (batch,) + image).astype(np.float32), requires_grad=False)
        y = rng.integers(0, classes, batch)
        opt = vg.optim.SGD(params, lr=1e-3)

        def forward():
            h = x
            for (kind, *shape), w, b in zip(layers, params[::2], params[1::2]):
                if kind == "conv":
                    h = vg.max_pool2d(vg.relu(vg.conv2d(h, w, b)), 2)
                else:
                    h = vg.reshape(h, (batch, -1)) if h.ndim > 2 else h
                    h = vg.linear(h, w, b)
                    h = vg.relu(h) if kind == "fc" else h
            return vg.cross_entropy(h, y)

        def step():
            loss = forward()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step

    small = [("conv", 32, 1, 3, 3), ("conv", 64, 32, 3, 3), ("out", 10, 1600)]
    lenet = [("conv", 6, 3, 5, 5), ("conv", 16, 6, 5, 5), ("fc", 120, 400), ("fc", 84, 120), ("out", 10, 84)]
    out["CNN step small (Fashion-MNIST) float32"] = best(cnn_trainer(small, (1, 28, 28), 10, 128), 2)
    out["CNN step LeNet (CIFAR-shaped) float32"] = best(cnn_trainer(lenet, (3, 32, 32), 10, 128), 5)

print(json.dumps(out))
"""

SECTIONS = ("ops", "kernels", "optim", "mlp", "cnn")


def run_child(pythonpath, isa, sections, extra_env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **(extra_env or {}))
    if isa:
        env["TAPEGRAD_ISA"] = isa
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", CHILD, ",".join(sections)], env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"the timings failed (TAPEGRAD_ISA={isa}, PYTHONPATH={pythonpath}):\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                   help="another build: DIR holds its tapegrad package (the first --build is the reference column)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VAR=VALUE",
                   help="another column: the build on sys.path with environment variable VAR=VALUE "
                        "(e.g. cache-off=TAPEGRAD_BUFFER_CACHE_MB=0)")
    p.add_argument("--rounds", type=int, default=5, help="fresh processes per column (default 5)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--json", default=None, help="write the best times here")
    args = p.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    for s in sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r}")
    columns = []  # (label, pythonpath, TAPEGRAD_ISA, extra environment)
    for spec in args.build:
        name, _, path = spec.partition("=")
        if not path:
            p.error(f"--build wants NAME=DIR, got {spec!r}")
        columns.append((name, os.path.abspath(path), None, None))
    import tapegrad as vg  # the build on sys.path: its copies become columns
    for isa in vg._core.kernel_isas():
        try:
            run_child(None, isa, [])
        except RuntimeError:
            continue  # this CPU lacks it
        columns.append((f"{isa} copy", None, isa, None))
    for spec in args.env:
        name, _, assignment = spec.partition("=")
        var, _, value = assignment.partition("=")
        if not name or not var or "=" not in assignment:
            p.error(f"--env wants NAME=VAR=VALUE, got {spec!r}")
        columns.append((name, None, None, {var: value}))
    best = {}
    for r in range(args.rounds):
        order = columns[r % len(columns):] + columns[:r % len(columns)]
        for label, path, isa, extra in order:
            res = run_child(path, isa, sections, extra)
            for k, v in res.items():
                if k != "isa":
                    best.setdefault(k, {})[label] = min(v, best.get(k, {}).get(label, float("inf")))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    labels = [c[0] for c in columns]
    print("| work | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for work, cells in best.items():
        ref = cells[labels[0]]
        row = [f"{cells[l] * 1e3:.3f} ms" + ("" if l == labels[0] else f" ({cells[l] / ref:.2f}x)") for l in labels]
        print(f"| {work} | " + " | ".join(row) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(best, f, indent=1)


if __name__ == "__main__":
    main()
