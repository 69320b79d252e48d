"""Lab: a 2-2-1 network (tanh hidden layer, sigmoid output, binary cross-entropy) on five points.

    python experiments/lab_five_points.py                  # gradient check, ten restarts, decision boundary
    python experiments/lab_five_points.py --restarts 20 --steps 300

The data: x = (0,0), (1,0), (0,-1), (-1,0), (0,1) with labels 1, 0, 0, 0, 0 (vg.load_five_points()).
Gradients are computed three ways and compared: by hand (the backprop formulas in numpy), by
tapegrad's backward, and by central finite differences (vg.numerical_grad). Then gradient descent
(learning rate 1, 100 steps) from ten random initialisations; the best network's decision boundary
on a 50 x 50 grid over [-2, 2]^2 is the figure.
"""

import os
import sys
from argparse import ArgumentParser

import numpy as np

import tapegrad as vg

NAMES = ("W1", "b1", "w2", "b2")

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


def initial_parameters(rng):
    """W1 (2, 2), b1 (2,), w2 (2, 1), b2 (1,), all standard normal, as float64 arrays."""
    return [rng.standard_normal(shape) for shape in ((2, 2), (2,), (2, 1), (1,))]


def forward(params, x):
    """P(class 1) of shape (n, 1): sigmoid(tanh(x W1 + b1) w2 + b2), on TensorNodes."""
    W1, b1, w2, b2 = params
    h = vg.tanh(x @ W1 + b1)
    return vg.sigmoid(h @ w2 + b2)


def loss_fn(params, x, y):
    """Mean binary cross-entropy of the network on (x, y)."""
    return vg.binary_cross_entropy(forward(params, x), y.reshape(-1, 1))


def hand_gradients(arrays, x, y):
    """Backprop by hand for the mean BCE: with p = sigmoid(z2), dL/dz2 = (p - y) / n, and
    dL/dz1 = (dL/dz2 w2^T) * (1 - h^2) through the tanh."""
    W1, b1, w2, b2 = arrays
    n = len(x)
    h = np.tanh(x @ W1 + b1)
    p = 1 / (1 + np.exp(-(h @ w2 + b2)))
    dz2 = (p - y.reshape(-1, 1)) / n
    dz1 = (dz2 @ w2.T) * (1 - h ** 2)
    return [x.T @ dz1, dz1.sum(axis=0), h.T @ dz2, dz2.sum(axis=0)]


def check_gradients(x, y, seed):
    """Print the largest differences between hand, autodiff and finite-difference gradients."""
    arrays = initial_parameters(np.random.default_rng(seed))
    params = [vg.TensorNode(a.copy(), name=n) for a, n in zip(arrays, NAMES)]
    xs = vg.TensorNode(x, requires_grad=False)
    loss = loss_fn(params, xs, y)
    loss.backward()
    auto = [p.grad.copy() for p in params]
    hand = hand_gradients(arrays, x, y)
    numerical = vg.numerical_grad(lambda *ps: loss_fn(ps, xs, y), params)
    print(f"gradients at a random initialisation (loss {loss.item():.4f}):")
    print("  parameter  shape   |hand - autodiff|  |autodiff - finite diff.|")
    worst = 0.0
    for name, p, a, h, n in zip(NAMES, params, auto, hand, numerical):
        if a.shape != p.shape or h.shape != p.shape:
            raise SystemExit(f"gradient of {name} has shape {a.shape} (hand {h.shape}), the parameter {p.shape}")
        e1, e2 = np.abs(h - a).max(), np.abs(a - n).max()
        worst = max(worst, e1, e2)
        print(f"  {name:<9}  {str(p.shape):<7} {e1:17.2e}  {e2:24.2e}")
    return worst


def train(x, y, seed, steps, lr):
    """Gradient descent from a random start; returns (parameters, losses per step)."""
    params = [vg.TensorNode(a) for a in initial_parameters(np.random.default_rng(seed))]
    optimiser = vg.optim.SGD(params, lr=lr)
    xs = vg.TensorNode(x, requires_grad=False)
    losses = []
    for _ in range(steps):
        loss = loss_fn(params, xs, y)
        losses.append(loss.item())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with vg.no_grad():
        losses.append(loss_fn(params, xs, y).item())
    return params, losses


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=10, help="random initialisations (10)")
    parser.add_argument("--steps", type=int, default=100, help="gradient descent steps per restart (100)")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first restart; restart i uses seed + i")
    parser.add_argument("--out", default=os.path.join(FIGURES, "five_points.png"),
                        help="the figure (PNG; default experiments/figures/five_points.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the numbers only")
    args = parser.parse_args(argv)
    if args.restarts < 1 or args.steps < 0:
        parser.error("need at least one restart and steps >= 0")

    x, y = vg.load_five_points()
    check_gradients(x, y, args.seed)

    print(f"\n{args.restarts} restarts of {args.steps} gradient descent steps, learning rate {args.lr:g}:")
    runs = []
    for i in range(args.restarts):
        params, losses = train(x, y, args.seed + i, args.steps, args.lr)
        runs.append((losses[-1], i, params))
        print(f"  restart {i}: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    best_loss, best_i, best = min(runs, key=lambda r: r[0])
    with vg.no_grad():
        p = forward(best, vg.TensorNode(x, requires_grad=False)).value.reshape(-1)
    print(f"best loss: {best_loss:.4f} (restart {best_i}); its P(class 1) on the five points: "
          + ", ".join(f"{v:.3f}" for v in p)
          + f"; accuracy {vg.metrics.accuracy(p.reshape(-1, 1), y):.0%}")

    if args.no_plot:
        return

    def predict(grid):
        with vg.no_grad():
            return forward(best, vg.TensorNode(grid, requires_grad=False))

    try:
        vg.plot.decision_boundary(predict, x, y, path=args.out, bounds=(-2, 2, -2, 2), resolution=50,
                                  title=f"2-2-1 tanh/sigmoid network, best of {args.restarts} (loss {best_loss:.3f})")
        print(f"wrote {args.out}")
    except ImportError as e:
        print(f"no figure: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
