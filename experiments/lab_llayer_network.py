"""Lab: an L-layer network (tanh hidden layers, sigmoid output, MSE loss) and its backprop by hand.

    python experiments/lab_llayer_network.py                          # hidden [5, 3], 2500 epochs, lr 0.25
    python experiments/lab_llayer_network.py --hidden 10 10 10 --lr 0.5 --init normal

Layers have Glorot-uniform weights and zero biases (--init picks another initialiser). The
vectorised backward pass over the whole batch is written by hand with Delta matrices,
    Delta_L = dL/dA_L * A_L (1 - A_L),   Delta_l = (Delta_{l+1} W_{l+1}) * (1 - A_l^2),
    dL/dW_l = Delta_l^T A_{l-1},         dL/db_l = sum over the batch of Delta_l,
its shapes checked and its values compared with tapegrad's backward; then full-batch gradient
descent on the five-point data set. The figure: loss curve and decision boundary.
"""

import os
import sys
from argparse import ArgumentParser

import numpy as np

import tapegrad as vg

FIGURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")


def build(sizes, init):
    """The network: Linear layers (weights (out, in), biases (1, out)), tanh hidden, sigmoid output."""
    return vg.MLP(sizes, activation="tanh", output_activation="sigmoid", init=init)


def backprop_by_hand(model, x, y):
    """Gradients of the mean squared error for every layer's (W, b), by the Delta-matrix recursion."""
    activations = [x]  # A_0 = x, A_l = act(A_{l-1} W_l^T + b_l)
    for i, layer in enumerate(model.layers):
        z = activations[-1] @ layer.w.value.T + layer.b.value
        activations.append(1 / (1 + np.exp(-z)) if i == len(model.layers) - 1 else np.tanh(z))
    out = activations[-1]
    delta = 2 * (out - y) / out.size * out * (1 - out)  # dL/dZ_L for L = mean((A_L - y)^2)
    grads = []
    for i in range(len(model.layers) - 1, -1, -1):
        grads.append((delta.T @ activations[i], delta.sum(axis=0, keepdims=True)))
        if i > 0:
            delta = (delta @ model.layers[i].w.value) * (1 - activations[i] ** 2)
    return grads[::-1]


def compare(model, x, y):
    """Hand gradients against tapegrad's: shapes must match, values to rounding; returns the worst error."""
    model.zero_grad()
    loss = vg.mse_loss(model(vg.TensorNode(x, requires_grad=False)), y)
    loss.backward()
    worst = 0.0
    for i, (layer, (dw, db)) in enumerate(zip(model.layers, backprop_by_hand(model, x, y)), 1):
        for name, param, grad in ((f"W{i}", layer.w, dw), (f"b{i}", layer.b, db)):
            if grad.shape != param.shape or param.grad.shape != param.shape:
                raise SystemExit(f"{name}: gradient of shape {grad.shape} for a parameter of shape {param.shape}")
            worst = max(worst, float(np.abs(grad - param.grad).max()))
    model.zero_grad()
    return worst


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[5, 3], help="hidden layer sizes (5 3)")
    parser.add_argument("--epochs", type=int, default=2500, help="full-batch gradient descent steps (2500)")
    parser.add_argument("--lr", type=float, default=0.25, help="learning rate (0.25)")
    parser.add_argument("--init", default="glorot_uniform", choices=sorted(vg.init.INITIALISERS),
                        help="weight initialiser (glorot_uniform)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation (0)")
    parser.add_argument("--out", default=os.path.join(FIGURES, "llayer_network.png"),
                        help="the figure (PNG; default experiments/figures/llayer_network.png)")
    parser.add_argument("--no-plot", action="store_true", help="print the numbers only")
    args = parser.parse_args(argv)
    if args.epochs < 0 or any(h < 1 for h in args.hidden):
        parser.error("epochs must be >= 0 and hidden sizes >= 1")

    vg.manual_seed(args.seed)
    x, labels = vg.load_five_points()
    y = labels.reshape(-1, 1).astype(np.float64)
    sizes = [2, *args.hidden, 1]
    model = build(sizes, args.init)
    shapes = ", ".join(f"W{i} {layer.w.shape} b{i} {layer.b.shape}" for i, layer in enumerate(model.layers, 1))
    print(f"network {'-'.join(map(str, sizes))}: {shapes}")
    print(f"hand backprop vs tapegrad's backward at the start: max abs difference {compare(model, x, y):.2e}")

    optimiser = vg.optim.SGD(model.parameters(), lr=args.lr)
    data = vg.TensorNode(x, requires_grad=False)
    losses = []
    for epoch in range(args.epochs):
        loss = vg.mse_loss(model(data), y)
        losses.append(loss.item())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with vg.no_grad():
        out = model(data).value.reshape(-1)
    final = float(np.mean((out - labels) ** 2))
    print(f"hand backprop vs tapegrad's backward at the end:   max abs difference {compare(model, x, y):.2e}")
    for e in sorted({0, 100, 500, 1000, args.epochs - 1} & set(range(args.epochs))):
        print(f"  epoch {e:5}: MSE {losses[e]:.5f}")
    print(f"after {args.epochs} epochs at lr {args.lr:g}: MSE {final:.5f}; outputs "
          + ", ".join(f"{v:.3f}" for v in out) + f" for labels {', '.join(map(str, labels))}; "
          f"accuracy {vg.metrics.accuracy(out.reshape(-1, 1), labels):.0%}")

    if args.no_plot:
        return

    def predict(grid):
        with vg.no_grad():
            return model(vg.TensorNode(grid, requires_grad=False))

    try:
        fig, (left, right) = vg.plot.figure(ncols=2)
        vg.plot.curves({"MSE": losses}, ax=left, xlabel="epoch", ylabel="training loss", logy=True,
                       title=f"{'-'.join(map(str, sizes))} network, lr {args.lr:g}")
        vg.plot.decision_boundary(predict, x, labels, ax=right, title="decision boundary")
        vg.plot.save(fig, args.out)
        print(f"wrote {args.out}")
    except ImportError as e:
        print(f"no figure: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
