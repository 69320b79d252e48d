"""Lab: gradient descent on f(x1, x2) = (x1 - 6)^2 + x2^2 - x1 x2, a function with its own backward.

    python experiments/lab_gradient_descent.py                 # prints the iterates, writes the figure
    python experiments/lab_gradient_descent.py --lr 0.3 --tol 1e-10

f is written as a vg.Function whose backward is the hand-derived gradient
(df/dx1 = 2 (x1 - 6) - x2, df/dx2 = 2 x2 - x1), checked against finite differences. From (6, 6),
where f = 0 and the gradient is (-6, 6), three steps with step sizes 1/2, 1/3, 1/4 go to (9, 3),
then (8, 4), then stay at (8, 4), where the gradient is zero (the minimum, f = -12). A constant-step
optimiser stops early once an iteration improves f by less than a tolerance.
"""

import os
import sys
from argparse import ArgumentParser

import numpy as np

import tapegrad as vg

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


class F(vg.Function):
    """f(x) = (x1 - 6)^2 + x2^2 - x1 x2 for x = (x1, x2): a 0-d output."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        x1, x2 = x
        return np.array((x1 - 6) ** 2 + x2 ** 2 - x1 * x2)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        x1, x2 = x
        return grad * np.array([2 * (x1 - 6) - x2, 2 * x2 - x1])


def f_numpy(x1, x2):
    """f on arrays, for the contour plot."""
    return (x1 - 6) ** 2 + x2 ** 2 - x1 * x2


def value_and_grad(x):
    """f(x) and its gradient at the point x, by tapegrad's backward."""
    node = vg.TensorNode(np.array(x, dtype=np.float64))
    out = F.apply(node)
    out.backward()
    return out.item(), node.grad.copy()


def descend(x0, step_sizes):
    """Gradient descent with the given step sizes; returns the iterates (including x0)."""
    points = [np.array(x0, dtype=np.float64)]
    for lr in step_sizes:
        _, g = value_and_grad(points[-1])
        points.append(points[-1] - lr * g)
    return np.array(points)


class ConstantStepGD:
    """x <- x - lr grad f(x) until f improves by less than tol in one step (or max_iter steps)."""

    def __init__(self, lr=0.1, tol=1e-8, max_iter=10_000):
        if lr <= 0 or tol < 0 or max_iter < 1:
            raise ValueError("ConstantStepGD: need lr > 0, tol >= 0 and max_iter >= 1")
        self.lr, self.tol, self.max_iter = lr, tol, max_iter

    def minimise(self, x0):
        """Returns (iterates, values, stopped_early)."""
        x = np.array(x0, dtype=np.float64)
        value, g = value_and_grad(x)
        points, values = [x], [value]
        for _ in range(self.max_iter):
            x = x - self.lr * g
            new_value, g = value_and_grad(x)
            points.append(x)
            values.append(new_value)
            if values[-2] - new_value < self.tol:  # also stops when f goes up: the step is too large
                return np.array(points), np.array(values), True
        return np.array(points), np.array(values), False


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.1, help="step size of the constant-step optimiser (0.1)")
    parser.add_argument("--tol", type=float, default=1e-8, help="stop when f improves by less than this (1e-8)")
    parser.add_argument("--max-iter", type=int, default=10_000, help="at most this many steps (10000)")
    parser.add_argument("--out", default=os.path.join(FIGURES, "gradient_descent.png"),
                        help="the figure (PNG; default experiments/figures/gradient_descent.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the numbers only")
    args = parser.parse_args(argv)

    start = (6.0, 6.0)
    value, grad = value_and_grad(start)
    print(f"f{start} = {value:g}, gradient {grad}")
    report = vg.gradcheck(lambda x: F.apply(x), [vg.TensorNode(np.array([6.0, 6.0]))], names=["x"])
    print(f"hand-written backward vs central differences: max abs error {report.rows[0][1]:.2e}")

    steps = descend(start, [1 / 2, 1 / 3, 1 / 4])
    print("gradient descent with step sizes 1/2, 1/3, 1/4 from (6, 6):")
    for i, p in enumerate(steps[1:], 1):
        v, g = value_and_grad(p)
        print(f"  step {i}: x = ({p[0]:g}, {p[1]:g})  f = {v:g}  gradient = ({g[0]:g}, {g[1]:g})")

    try:
        points, values, early = ConstantStepGD(args.lr, args.tol, args.max_iter).minimise(start)
    except ValueError as e:
        parser.error(str(e))
    x = points[-1]
    how = "stopped early (improvement below tolerance)" if early else "hit max_iter"
    print(f"constant step {args.lr:g}: {len(points) - 1} steps, {how}: x = ({x[0]:.6f}, {x[1]:.6f}), "
          f"f = {values[-1]:.8f} (minimum: f(8, 4) = -12)")

    if args.no_plot:
        return
    shown = points[: min(len(points), 60)]
    try:
        vg.plot.contour_paths(f_numpy, {f"constant step {args.lr:g}": shown, "steps 1/2, 1/3, 1/4": steps},
                              bounds=(3, 11, 0, 8), path=args.out, levels=25,
                              title="gradient descent on (x1-6)² + x2² - x1·x2")
        print(f"wrote {args.out}")
    except ImportError as e:
        print(f"no figure: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
