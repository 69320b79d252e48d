"""Shared test helpers: engine gradients, central finite differences and numpy's broadcast reduction."""

import numpy as np

import tapegrad as vg


def evaluate(fn, arrays):
    """fn applied to fresh float64 TensorNodes holding copies of `arrays`, as a Python float (no tape)."""
    with vg.no_grad():
        nodes = [vg.TensorNode(np.array(a, dtype=np.float64)) for a in arrays]
        return float(fn(nodes).item())


def numeric_grads(fn, arrays, eps=1e-6):
    """Central finite differences in float64 of the scalar fn(list of TensorNodes) at `arrays`.

    Returns one array per input, of that input's shape: (f(x + eps e_k) - f(x - eps e_k)) / (2 eps).
    """
    points = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in points:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            up = evaluate(fn, points)
            a[idx] = orig - eps
            down = evaluate(fn, points)
            a[idx] = orig
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def engine_grads(fn, arrays, dtype=np.float64):
    """The engine's gradients of the scalar fn(list of TensorNodes) at `arrays`, and the loss value."""
    nodes = [vg.TensorNode(np.array(a, dtype=dtype)) for a in arrays]
    loss = fn(nodes)
    loss.backward()
    return [n.grad.copy() for n in nodes], loss.item()


def sum_to_shape(g, shape):
    """Reduce an upstream gradient over the axes along which an input of `shape` was broadcast."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g.reshape(shape)
