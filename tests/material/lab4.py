"""Lab 4 ported: an L-layer network (Glorot-uniform weights, zero biases, tanh hidden layers, a
sigmoid output, MSE loss) with backprop by hand in Delta matrices, checked against autograd, and
trained 2500 epochs at lr 0.25 on the five points with hidden sizes [5, 3].

The weights are plain tensors (requires_grad False): ``W -= lr * grad`` updates them in place, as
in PyTorch, so nothing is recorded and memory stays flat.
"""

import math

from .lab3 import FIVE_X, FIVE_Y


def five_points(lib):
    """x (5, 2) and y (5, 1), float32."""
    torch = lib.torch
    return torch.tensor(FIVE_X), torch.tensor(FIVE_Y).view(5, 1)


def glorot_uniform(lib, n_in, n_out):
    """A (n_in, n_out) weight drawn from U(-a, a), a = sqrt(6 / (n_in + n_out))."""
    torch = lib.torch
    limit = math.sqrt(6 / (n_in + n_out))
    return (torch.rand(n_in, n_out) * 2 - 1) * limit


def init_network(lib, sizes):
    """Weights [(sizes[l], sizes[l+1])] by Glorot and zero biases [(sizes[l+1],)]."""
    torch = lib.torch
    weights = [glorot_uniform(lib, n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [torch.zeros(n_out) for n_out in sizes[1:]]
    return weights, biases


def forward(lib, x, weights, biases):
    """All activations [A0 = x, A1, ..., AL]; tanh on hidden layers, sigmoid on the last."""
    torch = lib.torch
    activations = [x]
    for layer, (W, b) in enumerate(zip(weights, biases)):
        z = activations[-1] @ W + b
        if layer == len(weights) - 1:
            activations.append(torch.sigmoid(z))
        else:
            activations.append(torch.tanh(z))
    return activations


def mse(lib, out, y):
    """Mean squared error over all elements, shape ()."""
    return ((out - y) ** 2).mean()


def backward(lib, activations, y, weights):
    """Backprop by hand: Delta_L = dL/dA_L * A_L (1 - A_L), Delta_l = Delta_{l+1} W^T * (1 - A_l^2).

    Returns (weight gradients, bias gradients), shaped like the weights and biases.
    """
    out = activations[-1]
    delta = 2 * (out - y) / out.numel() * out * (1 - out)
    grads_w = [None] * len(weights)
    grads_b = [None] * len(weights)
    for layer in reversed(range(len(weights))):
        grads_w[layer] = activations[layer].T @ delta
        grads_b[layer] = delta.sum(dim=0)
        if layer > 0:
            delta = (delta @ weights[layer].T) * (1 - activations[layer] ** 2)
    return grads_w, grads_b


def compare_with_autograd(lib, weights, biases):
    """Hand and autograd gradients at the same weights: {"hand": [...], "autograd": [...]}, numpy.

    The autograd copy is made with clone().requires_grad_() so the originals stay plain tensors.
    """
    x, y = five_points(lib)
    hand_w, hand_b = backward(lib, forward(lib, x, weights, biases), y, weights)
    ws = [W.clone().requires_grad_() for W in weights]
    bs = [b.clone().requires_grad_() for b in biases]
    loss = mse(lib, forward(lib, x, ws, bs)[-1], y)
    loss.backward()
    return {"hand": [g.numpy() for g in hand_w + hand_b],
            "autograd": [p.grad.numpy() for p in ws + bs],
            "shapes": [tuple(p.shape) for p in ws + bs]}


def gradients_from(lib, weights):
    """compare_with_autograd() at given numpy weights (biases zero)."""
    torch = lib.torch
    ws = [torch.tensor(w) for w in weights]
    bs = [torch.zeros(w.shape[1]) for w in weights]
    return compare_with_autograd(lib, ws, bs)


def fit(lib, weights, biases, epochs=2500, lr=0.25, after_epoch=None):
    """Gradient descent in place on the weights; returns the loss per epoch (floats).

    after_epoch(epoch) is called at the end of every epoch (the tests measure memory there).
    """
    x, y = five_points(lib)
    losses = []
    for epoch in range(epochs):
        activations = forward(lib, x, weights, biases)
        losses.append(mse(lib, activations[-1], y).item())
        grads_w, grads_b = backward(lib, activations, y, weights)
        for W, g in zip(weights, grads_w):
            W -= lr * g
        for b, g in zip(biases, grads_b):
            b -= lr * g
        if after_epoch is not None:
            after_epoch(epoch)
    return losses


def fit_from(lib, weights, epochs=2500, lr=0.25):
    """fit() from given numpy weights (biases zero); returns {"losses", "weights", "outputs"}."""
    torch = lib.torch
    ws = [torch.tensor(w) for w in weights]
    bs = [torch.zeros(w.shape[1]) for w in weights]
    losses = fit(lib, ws, bs, epochs=epochs, lr=lr)
    x, _ = five_points(lib)
    return {"losses": losses, "weights": [w.numpy() for w in ws],
            "outputs": forward(lib, x, ws, bs)[-1].numpy()}
