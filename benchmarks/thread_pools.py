"""Do tapegrad's two thread pools get in each other's way? Large element-wise kernels run on the
engine's own pool (cpp/parallel.cpp), matrix products on the BLAS's threads; on 2 cores shared
with other jobs, a fork-join region (as OpenMP's was) can wait a whole scheduler tick for its
second thread, while the engine's pool lets the caller do the chunks a late worker has not taken.

    python benchmarks/thread_pools.py            # as the machine is
    python benchmarks/thread_pools.py --busy 2   # with 2 busy-looping processes competing

Runs the same few timings (MNIST-shaped layer: sigmoid on 128 x 3136 float64, and the
128x784x3136 matrix product, alone and right after each other) in fresh processes with the
engine's pool at 2 threads and at 1 (the BLAS at 2 in both), and with OMP_NUM_THREADS=1 (which
also sets the BLAS to 1 thread), and prints medians and maxima in ms.
"""

import argparse
import os
import subprocess
import sys

SETTINGS = (  # name, environment, threads of the engine's element-wise pool (None: as set_num_threads)
    ("default (2 threads)", {}, None),
    ("element-wise pool 1 thread", {}, 1),
    ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}, None),
)

CHILD = r"""
import sys, time, numpy as np, tapegrad as vg
if sys.argv[1] != "None":
    vg.core._core.set_pool_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
h = vg.TensorNode(rng.standard_normal((128, 3136)), requires_grad=False)
x = vg.TensorNode(rng.standard_normal((128, 784)), requires_grad=False)
w = vg.TensorNode(rng.standard_normal((784, 3136)), requires_grad=False)

def timed(f, before=None, n=40):
    ts = []
    for _ in range(n):
        if before:
            before()
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return np.median(ts) * 1e3, max(ts) * 1e3

rows = [("sigmoid alone", timed(lambda: vg.sigmoid(h))),
        ("sigmoid after a GEMM", timed(lambda: vg.sigmoid(h), lambda: x @ w)),
        ("GEMM alone", timed(lambda: x @ w)),
        ("GEMM after a sigmoid", timed(lambda: x @ w, lambda: vg.sigmoid(h)))]
print(f"threads: BLAS / element-wise\t{vg.get_num_threads()} / {vg.core._core.pool_threads()}\t")
for name, (med, mx) in rows:
    print(f"{name}\t{med:.3f}\t{mx:.3f}")
"""


BUSY = "while True: pass"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=0, help="busy-looping processes to run meanwhile")
    args = p.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} logical cores; {args.busy} busy processes; "
          "ms per call, median / max of 40\n")
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    results = {}
    try:
        for name, env, pool in SETTINGS:
            out = subprocess.run([sys.executable, "-c", CHILD, str(pool)], env={**os.environ, **env},
                                 capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            results[name] = [line.split("\t") for line in out.stdout.strip().splitlines()]
    finally:
        for b in busy:
            b.kill()
    names = [r[0] for r in next(iter(results.values()))]
    print("| timing | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for i, timing in enumerate(names):
        print(f"| {timing} | " + " | ".join(f"{r[i][1]} / {r[i][2]}".rstrip(" /") for r in results.values()) + " |")


if __name__ == "__main__":
    main()
