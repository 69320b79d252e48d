"""Sigmoid against ReLU in the hidden layer of the MLP of train_mlp.py, same data, same initialisation.

    python experiments/compare_activations.py                          # synth, vugrad's model, 5 epochs
    python experiments/compare_activations.py --preset fashion -e 3              # Fashion-MNIST, Adam
    python experiments/compare_activations.py -D fashion --normalize scale -l 0.001 --hidden 256 -e 3
    python experiments/compare_activations.py --activations sigmoid relu tanh --optimizer adam

The ReLU is the course's exercise: an op written in Python (a vg.Op with its own forward and
backward) that runs on tapegrad's tape; --builtin-relu uses the engine's C++ relu instead. Every
option that is not listed here goes to train_mlp.py (see its --help), so each run trains the same
model with only the activation changed. The figure: loss and accuracy per epoch of each run.
"""

import os
import sys
from argparse import ArgumentParser

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_mlp  # noqa: E402  (the training script next to this one)

import tapegrad as vg  # noqa: E402

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


class ReLU(vg.Op):
    """relu(x) = max(x, 0); its backward passes the gradient where x > 0."""

    @staticmethod
    def forward(context, x):
        context["mask"] = x > 0
        return x * context["mask"]

    @staticmethod
    def backward(context, go):
        return go * context["mask"]


class ReLULayer(vg.Module):
    """The Python ReLU op as a module, to plug into vg.MLP."""

    def forward(self, x):
        return ReLU.do_forward(x)


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            epilog="Other options go to train_mlp.py, e.g. --preset fashion -e 3.")
    parser.add_argument("--activations", nargs="+", default=["sigmoid", "relu"],
                        choices=["sigmoid", "relu", "tanh", "softplus", "leaky_relu"],
                        help="the hidden activations to compare (sigmoid relu)")
    parser.add_argument("--builtin-relu", action="store_true", help="the engine's relu instead of the Python op")
    parser.add_argument("--out", default=os.path.join(FIGURES, "compare_activations.png"),
                        help="the figure (PNG; default experiments/figures/compare_activations.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the numbers only")
    args, rest = parser.parse_known_args(argv)
    defaults = ["-e", "5", "--seed", "0"]  # given first, so the user's own -e / --seed win
    results = {}
    for name in args.activations:
        custom = ReLULayer() if name == "relu" and not args.builtin_relu else None
        print(f"\n######## {name}" + (" (a vg.Op written in Python)" if custom else ""))
        run_args = train_mlp.parse(defaults + rest + ["--activation", name])
        results[name] = train_mlp.run(run_args, activation=custom)

    split = next(iter(results.values()))["split"]
    print(f"\n## {split} accuracy per epoch")
    for name, r in results.items():
        accs = " ".join(f"{a:.4f}" for a in r["accuracies"])
        print(f"{name:>10}: {accs}   final {r['accuracies'][-1]:.4f}   {np.mean(r['times']):.2f} s per epoch")
    if args.no_plot or not all(r["accuracies"] for r in results.values()):
        return
    try:
        vg.plot.training_curves({n: r["losses"] for n, r in results.items()},
                                {n: r["accuracies"] for n, r in results.items()}, path=args.out,
                                title=f"{run_args.data}: hidden activation compared ({split} accuracy)")
        print(f"wrote {args.out}")
    except ImportError as e:
        print(f"no figure: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
