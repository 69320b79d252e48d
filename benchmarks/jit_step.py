"""Where the time of vugrad's synth step (2-8-2 MLP, sigmoid, summed cross-entropy, SGD, batch 128)
goes, eager and under vg.jit, beside PyTorch's step.

    python benchmarks/jit_step.py [--dtype float64] [--rounds 7] [--threads 1]
    python benchmarks/jit_step.py --replays 2000    # only replays the step: for perf or valgrind

Rows, each the median over rounds of the mean of many calls, the rounds interleaved:
- the whole step as a user calls it (wrapping the batch, the step, loss.item()): tapegrad eager,
  tapegrad under vg.jit, PyTorch (F.linear, sigmoid, log_softmax, gather, sum, backward, update)
  as installed and with torch.set_flush_denormal(True) around each step;
- the jit step's parts: the C++ replay alone (Program.run), and what the Python wrapper adds;
- the replay of each action alone at the step's shapes (a step of that one op, forward and
  forward + backward), which shows the engine's per-op cost without Python.
"""

import argparse
import os
import sys
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import models  # noqa: E402
import tapegrad as vg  # noqa: E402


def per_call(fn, seconds=0.05):
    n = max(10, int(seconds / max(timeit.timeit(fn, number=10) / 10, 1e-7)))
    return timeit.timeit(fn, number=n) / n


def recorded(fn, *args):
    """A jitted fn, called until it replays, and its recording's program."""
    step = vg.jit(fn)
    for _ in range(3):
        step(*args)
    return step, next(iter(step._recordings.values())).program


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--replays", type=int, default=0,
                   help="only replay the recorded step this many times and print the time per replay (to "
                        "profile: valgrind --tool=callgrind --toggle-collect='tg::jit::Program::run(*' ...)")
    args = p.parse_args(argv)
    dtype = np.dtype(args.dtype)
    vg.set_num_threads(args.threads)
    (x, y), _, _ = vg.load_synth(seed=0)
    x, y = x[:128].astype(dtype), y[:128].astype(np.int64)
    init = models.glorot_init(2, 8, 2)

    eager = models.make_trainer("tapegrad", init, dtype, lr=1e-4, update="sgd")
    jitted = models.make_trainer("tapegrad", init, dtype, lr=1e-4, update="jit")
    jitted.step(x, y), jitted.step(x, y)
    program = next(iter(jitted.jitted._recordings.values())).program
    node = vg.TensorNode(x, requires_grad=False)
    if args.replays:
        seconds = timeit.timeit(lambda: program.run([node, y]), number=args.replays)
        print(f"{args.replays} replays of the synth step ({args.dtype}): {seconds / args.replays * 1e6:.1f} us each")
        return
    cases = {"tapegrad eager step": lambda: eager.step(x, y), "tapegrad vg.jit step": lambda: jitted.step(x, y)}
    if models.torch_available():
        import torch
        torch.set_num_threads(args.threads)
        tt = models.make_trainer("torch", init, dtype, lr=1e-4)
        tx, ty = tt.prepare(x, y)
        cases["torch step"] = lambda: tt.step(tx, ty)

        def flushed():
            torch.set_flush_denormal(True)
            try:
                tt.step(tx, ty)
            finally:
                torch.set_flush_denormal(False)

        cases["torch step, with flush-to-zero"] = flushed
    cases["  replay alone (Program.run)"] = lambda: program.run([node, y])
    cases["  the jit wrapper around it"] = lambda: jitted.jitted(node, y)

    rng = np.random.default_rng(0)

    def leaf(*shape, grad=True):
        return vg.TensorNode(rng.standard_normal(shape).astype(dtype), requires_grad=grad)

    xb, w1, b1, h = leaf(128, 2, grad=False), leaf(8, 2), leaf(1, 8), leaf(128, 8)
    w2, b2, o = leaf(2, 8), leaf(1, 2), leaf(128, 2)
    ops = {"linear 2->8": lambda: vg.linear(xb, w1, b1), "sigmoid (128, 8)": lambda: vg.sigmoid(h),
           "linear 8->2": lambda: vg.linear(h, w2, b2), "logsoftmax (128, 2)": lambda: vg.logsoftmax(o),
           "select (128, 2)": lambda: vg.Select.do_forward(o, indices=y), "sum (128,)": lambda: vg.Sum.do_forward(o)}
    for name, op in ops.items():
        _, fwd = recorded(lambda a, op=op: op(), xb)

        def both(a, op=op):
            r = op()
            (r.sum() if r.ndim else r).backward()
            return r

        _, fb = recorded(both, xb)
        cases[f"  replay of {name}, forward"] = lambda prog=fwd: prog.run([xb])
        cases[f"  replay of {name}, forward + backward"] = lambda prog=fb: prog.run([xb])

    samples = {k: [] for k in cases}
    for r in range(args.rounds):
        for k in (list(cases) if r % 2 == 0 else list(reversed(cases))):
            samples[k].append(per_call(cases[k]))
    wrapper = [a - b for a, b in zip(samples["  the jit wrapper around it"], samples["  replay alone (Program.run)"])]
    samples["  the jit wrapper around it"] = wrapper
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} logical cores; {args.dtype}, {args.threads} thread(s), median of {args.rounds} "
          f"interleaved rounds; load average {os.getloadavg()[0]:.2f}")
    print("\n| work | us per call |\n|---|---|")
    for k, v in samples.items():
        print(f"| {k.strip()} | {np.median(v) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
