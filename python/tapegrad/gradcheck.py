"""Gradient checking: the engine's gradients against central finite differences (float64)."""

import numpy as np

from .core import TensorNode, no_grad


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree."""


class GradcheckReport:
    """Per input: name, largest absolute error, largest relative error, and whether it passed.

    ``bool(report)`` is True when every input passed; ``str(report)`` is a table.
    """

    def __init__(self, rows, analytic, numerical):
        self.rows = rows            # [(name, max_abs, max_rel, ok)]
        self.analytic = analytic    # gradients from backward, one array per input
        self.numerical = numerical  # central differences, one array per input

    @property
    def ok(self):
        """True when every input's gradient agreed with finite differences."""
        return all(ok for *_, ok in self.rows)

    def __bool__(self):
        return self.ok

    def __str__(self):
        width = max([5] + [len(name) for name, *_ in self.rows])
        lines = [f"{'input':<{width}}  max abs error  max rel error"]
        for name, max_abs, max_rel, ok in self.rows:
            lines.append(f"{name:<{width}}  {max_abs:13.2e}  {max_rel:13.2e}  {'ok' if ok else 'MISMATCH'}")
        return "\n".join(lines)

    __repr__ = __str__


def _leaves(inputs):
    nodes = []
    for i, x in enumerate(inputs):
        if not isinstance(x, TensorNode):
            x = TensorNode(np.array(x, dtype=np.float64))
        if x.source is not None:
            raise ValueError(f"gradcheck: input {i} was made by an op; pass leaf nodes (or arrays)")
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; finite differences need float64")
        if not x.requires_grad:
            raise ValueError(f"gradcheck: input {i} does not require grad, so it gets no gradient to check")
        nodes.append(x)
    return nodes


def _projection(out, seed=0):
    """Fixed random weights that turn a non-scalar output into a scalar (a vector-Jacobian product)."""
    if out.value.size == 1:
        return None
    return np.random.default_rng(seed).standard_normal(out.shape)


def _scalar(out, weights):
    return float(out.value.reshape(())) if weights is None else float((out.value * weights).sum())


def numerical_grad(fn, inputs, eps=1e-6):
    """Central differences (f(x + eps) - f(x - eps)) / (2 eps) for every element of every input.

    ``fn(*inputs)`` returns a TensorNode; when it has more than one element, its elements are
    weighted by fixed random numbers (the same ones gradcheck uses) and summed.
    Returns one array per input, of its shape.
    """
    nodes = _leaves(inputs)
    with no_grad():
        weights = _projection(fn(*nodes))
        grads = []
        for x in nodes:
            flat = x.value.reshape(-1)  # a view of the engine's buffer
            g = np.zeros(flat.size)
            for i in range(flat.size):
                original = flat[i]
                flat[i] = original + eps
                plus = _scalar(fn(*nodes), weights)
                flat[i] = original - eps
                minus = _scalar(fn(*nodes), weights)
                flat[i] = original
                g[i] = (plus - minus) / (2 * eps)
            grads.append(g.reshape(x.shape))
    return grads


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, names=None):
    """Compare backward's gradients of ``fn(*inputs)`` with central differences, element by element.

    inputs: leaf TensorNodes (or arrays) of float64. An element passes when
    |analytic - numerical| <= atol + rtol * |numerical|. Returns a GradcheckReport (a table of the
    largest errors per input, named by ``names``, the nodes' names, or their position); on a mismatch
    raises GradcheckError with that table, or with ``raise_exception=False`` returns the report,
    which is then falsy.
    """
    nodes = _leaves(inputs)
    out = fn(*nodes)
    weights = _projection(out)
    for x in nodes:
        x.grad = None
    loss = out if weights is None else (out * weights).sum()
    loss.backward()
    analytic = [x.grad.copy() for x in nodes]
    numerical = numerical_grad(fn, nodes, eps)
    rows = []
    for i, (x, a, n) in enumerate(zip(nodes, analytic, numerical)):
        name = names[i] if names is not None else (x.name or f"input {i}")
        err = np.abs(a - n)
        rel = err / np.maximum(np.abs(n), 1e-300)
        ok = bool(np.all(err <= atol + rtol * np.abs(n)))
        rows.append((name, float(err.max(initial=0.0)), float(rel.max(initial=0.0)), ok))
    report = GradcheckReport(rows, analytic, numerical)
    if not report.ok and raise_exception:
        raise GradcheckError(f"gradcheck: analytic and numerical gradients differ\n{report}")
    return report
