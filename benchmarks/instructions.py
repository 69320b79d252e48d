"""Instructions per call of one small piece of work, counted by valgrind: a count that does not move
with the machine's load, unlike a timing (this project's machines spread timings by 20-40%).

    python benchmarks/instructions.py add sigmoid leaf      # counts (needs valgrind on PATH)
    python benchmarks/instructions.py --loop add 20000      # only the loop, for valgrind or perf

Each count is the whole process's instructions with the loop run N times, less those with N = 0,
over N; PYTHONHASHSEED=0 and one OpenBLAS thread make the interpreter's start-up the same in both
runs. Set PYTHONPATH to count another build of tapegrad (an A/B of two commits).

Work: `a + b`, `a @ b`, `sigmoid(a)` on 2x2 float64 leaves with grad; `leaf` is
`TensorNode(x, requires_grad=False)` and `leaf_positional` `TensorNode(x)` for a (128, 2) array;
`step_jit` and `step_sgd` are the synth step (2-8-2 MLP, batch 128, float64) under vg.jit and
eager, as `models.TapegradTrainer.step` runs it (wrapping the batch, the step, loss.item()).
"""

import argparse
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

WORK = ("add", "matmul", "sigmoid", "leaf", "leaf_positional", "step_jit", "step_sgd")


def make(work):
    import tapegrad as vg
    rng = np.random.default_rng(0)
    a = vg.TensorNode(rng.standard_normal((2, 2)))
    b = vg.TensorNode(rng.standard_normal((2, 2)))
    x = np.ones((128, 2))
    if work.startswith("step_"):
        import models
        (xs, ys), _, _ = vg.load_synth(seed=0)
        xs, ys = xs[:128].astype(np.float64), ys[:128].astype(np.int64)
        trainer = models.make_trainer("tapegrad", models.glorot_init(2, 8, 2), np.float64, lr=1e-4,
                                      update=work[len("step_"):])
        return lambda: trainer.step(xs, ys)
    return {"add": lambda: a + b, "matmul": lambda: a @ b, "sigmoid": lambda: vg.sigmoid(a),
            "leaf": lambda: vg.TensorNode(x, requires_grad=False),
            "leaf_positional": lambda: vg.TensorNode(x)}[work]


def loop(work, n):
    f = make(work)
    for _ in range(100):  # warm: first calls allocate caches, record a jit step twice
        f()
    for _ in range(n):
        f()


def collected(work, n):
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                          os.path.abspath(__file__), "--loop", work, str(n)],
                         env=env, capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", nargs="+", help=f"what to count: {', '.join(WORK)}")
    p.add_argument("-n", type=int, default=20000, help="calls counted (default 20000; steps: a tenth)")
    p.add_argument("--loop", action="store_true", help="run `work N` in this process, uncounted")
    args = p.parse_args(argv)
    if args.loop:
        loop(args.work[0], int(args.work[1]))
        return
    for work in args.work:
        if work not in WORK:
            p.error(f"unknown work {work!r}; choose from {', '.join(WORK)}")
        n = args.n // 10 if work.startswith("step_") else args.n
        per_call = (collected(work, n) - collected(work, 0)) / n
        print(f"{work}: {per_call:.0f} instructions per call")


if __name__ == "__main__":
    main()
