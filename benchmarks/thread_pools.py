"""Do tapegrad's two thread pools get in each other's way? Element-wise kernels run on OpenMP,
matrix products on the BLAS's own threads; on 2 cores shared with other jobs, a parallel region
can wait a whole scheduler tick for its second thread.

    python benchmarks/thread_pools.py

Runs the same few timings (MNIST-shaped layer: sigmoid on 128 x 3136 float32, and the
128x784x3136 matrix product, alone and right after each other) in fresh processes under
different OpenMP settings, and prints medians and maxima in ms.
"""

import os
import subprocess
import sys

SETTINGS = (
    ("default", {}),
    ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}),
    ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1"}),
)

CHILD = r"""
import time, numpy as np, tapegrad as vg
rng = np.random.default_rng(0)
h = vg.TensorNode(rng.standard_normal((128, 3136)).astype(np.float32), requires_grad=False)
x = vg.TensorNode(rng.standard_normal((128, 784)).astype(np.float32), requires_grad=False)
w = vg.TensorNode(rng.standard_normal((784, 3136)).astype(np.float32), requires_grad=False)

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
print(f"vg.get_num_threads()\t{vg.get_num_threads()}\t")
for name, (med, mx) in rows:
    print(f"{name}\t{med:.3f}\t{mx:.3f}")
"""


def main():
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} logical cores; ms per call, median / max of 40\n")
    results = {}
    for name, env in SETTINGS:
        out = subprocess.run([sys.executable, "-c", CHILD], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        results[name] = [line.split("\t") for line in out.stdout.strip().splitlines()]
    names = [r[0] for r in next(iter(results.values()))]
    print("| timing | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for i, timing in enumerate(names):
        print(f"| {timing} | " + " | ".join(f"{r[i][1]} / {r[i][2]}".rstrip(" /") for r in results.values()) + " |")


if __name__ == "__main__":
    main()
