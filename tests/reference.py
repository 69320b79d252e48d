"""numpy references of the engine's ops and the input domains they are tested on, shared by the op
table (test_ops.py), the functional tests and the fuzz suite (test_fuzz.py): one reference per op.

UNARY maps each element-wise unary op (by its engine name) to its numpy forward, its gradient given
the upstream G, and the domain on which its gradient is smooth; BINARY and REDUCTIONS do the same
for the broadcasting binary ops and the reductions.
"""

from collections import namedtuple

import numpy as np

import tapegrad as vg


# ---- input domains: (rng, shape) -> float64 array ----

def real(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape):
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def exponent(rng, shape):
    return rng.uniform(-2.0, 2.0, shape)


def distinct(rng, shape):
    """Values at least 0.2 apart, so a maximum is unique and stays put under finite differences."""
    n = int(np.prod(shape, dtype=np.int64))
    return rng.permutation(n).reshape(shape) * 0.3 + rng.uniform(0.0, 0.1, shape) - 0.15 * n


def on_integers(rng, shape):
    """Integers plus [0, 0.1): any value is at least 0.4 from every value of `on_half_integers`."""
    return rng.integers(-3, 3, shape) + rng.uniform(0.0, 0.1, shape)


def on_half_integers(rng, shape):
    """Half-integers plus [0, 0.1): either side of an `on_integers` value, never within 0.4 of it."""
    return rng.integers(-3, 3, shape) + 0.5 + rng.uniform(0.0, 0.1, shape)


def probability(rng, shape):
    """Probabilities away from 0 and 1, where the logs of a binary cross-entropy are smooth."""
    return rng.uniform(0.1, 0.9, shape)


def unit_interval(rng, shape):
    return rng.uniform(0.0, 1.0, shape)

# ---- numpy references shared by the op table and the property tests ----

def sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + exp(-x)) without overflow


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    return x - logsumexp(x, axis=axis, keepdims=True)


def scattered(G, x, key):
    """Zeros of x's shape with G added at x[key]; repeated positions add up (np.add.at)."""
    out = np.zeros(x.shape)
    np.add.at(out, key, G)
    return out


def restored(G, shape, axis, keepdims):
    """The upstream gradient of a reduction with its reduced axes back as size 1 (broadcasts to `shape`)."""
    if keepdims:
        return G
    if axis is None:
        return np.reshape(G, (1,) * len(shape))
    return np.expand_dims(G, axis)


def logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def count(x, axis):
    """How many elements each output of a reduction over `axis` combines."""
    return x.size // np.sum(x, axis=axis, keepdims=True).size


def variance(x, axis=None, keepdims=False, ddof=0):
    return np.var(x, axis=axis, keepdims=keepdims, ddof=ddof)


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# Error scales of a comparison in float32/float64, given the inputs and the output: errors are
# measured relative to |out| or to 1 + |out|.
def rel(*arrays_out):
    return np.abs(arrays_out[-1])


def rel_plus_one(*arrays_out):
    return 1.0 + np.abs(arrays_out[-1])


Unary = namedtuple("Unary", "forward grad domain scale smooth")
UNARY = {
    # engine name: numpy forward, gradient (G, x), domain of the op table's gradient tests, error scale of
    # the fuzz suite's comparisons (None: exact), where the fuzz suite checks gradients (None: everywhere)
    "negative": Unary(np.negative, lambda G, x: -G, real, None, None),
    "exp": Unary(np.exp, lambda G, x: G * np.exp(x), real, rel, lambda x: np.all(x < 20)),
    "log": Unary(np.log, lambda G, x: G / x, positive, rel_plus_one, lambda x: np.all(x > 0.05)),
    "log1p": Unary(np.log1p, lambda G, x: G / (1 + x), lambda rng, shape: rng.uniform(-0.6, 2.0, shape), rel_plus_one,
                   lambda x: np.all(x > -0.95)),
    "sqrt": Unary(np.sqrt, lambda G, x: G / (2 * np.sqrt(x)), positive, rel, lambda x: np.all(x > 0.05)),
    "abs": Unary(np.abs, lambda G, x: G * np.sign(x), away_from_zero, None, None),
    "square": Unary(np.square, lambda G, x: 2 * G * x, real, rel, None),
    "sigmoid": Unary(sigmoid, lambda G, x: G * sigmoid(x) * (1 - sigmoid(x)), real, rel_plus_one, None),
    "tanh": Unary(np.tanh, lambda G, x: G * (1 - np.tanh(x) ** 2), real, rel_plus_one, None),
    "relu": Unary(lambda x: np.maximum(x, 0.0), lambda G, x: G * (x > 0), away_from_zero, None, None),
    "softplus": Unary(softplus, lambda G, x: G * sigmoid(x), lambda rng, shape: 3.0 * rng.standard_normal(shape),
                      rel_plus_one, None),
}


REDUCTIONS = [
    # op, function, numpy forward, gradient from the restored upstream Gk, domain
    (vg.Sum, vg.sum, np.sum, lambda Gk, x, axis: np.broadcast_to(Gk, x.shape), real),
    (vg.Mean, vg.mean, np.mean, lambda Gk, x, axis: np.broadcast_to(Gk, x.shape) / count(x, axis), real),
    (vg.Max, vg.max, np.max, lambda Gk, x, axis: Gk * (x == np.max(x, axis=axis, keepdims=True)), distinct),
    (vg.Min, vg.min, np.min, lambda Gk, x, axis: Gk * (x == np.min(x, axis=axis, keepdims=True)), distinct),
    (vg.LogSumExp, vg.logsumexp, logsumexp,
     lambda Gk, x, axis: Gk * np.exp(x - logsumexp(x, axis=axis, keepdims=True)), real),
    (vg.Var, vg.var, variance,
     lambda Gk, x, axis: 2 * Gk * (x - np.mean(x, axis=axis, keepdims=True)) / count(x, axis), real),
]

BINARY = [
    # op, function, numpy forward, numpy backward (before reduction to the input shapes), domains
    (vg.Add, vg.add, np.add, lambda G, a, b: (G, G), (real, real)),
    (vg.Sub, vg.subtract, np.subtract, lambda G, a, b: (G, -G), (real, real)),
    (vg.Multiply, vg.multiply, np.multiply, lambda G, a, b: (G * b, G * a), (real, real)),
    (vg.Divide, vg.divide, np.divide, lambda G, a, b: (G / b, -G * a / b**2), (real, away_from_zero)),
    (vg.Power, vg.power, np.power, lambda G, a, b: (G * b * a ** (b - 1), G * a**b * np.log(a)), (positive, exponent)),
    # no ties: every value of one operand is at least 0.4 from every value of the other
    (vg.Maximum, vg.maximum, np.maximum, lambda G, a, b: (G * (a > b), G * (b > a)), (on_integers, on_half_integers)),
    (vg.Minimum, vg.minimum, np.minimum, lambda G, a, b: (G * (a < b), G * (b < a)), (on_half_integers, on_integers)),
]


def reduce_to_shape(g, shape, reduce=np.sum):
    """Reduce g (of a broadcast shape) over the axes along which an input of `shape` was broadcast,
    with `reduce` (np.sum for gradients, np.any for masks): the inverse of broadcasting."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = reduce(g, axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = reduce(g, axis=axis, keepdims=True)
    return g.reshape(shape)


def sum_to_shape(g, shape):
    """Reduce an upstream gradient over the axes along which an input of `shape` was broadcast."""
    return reduce_to_shape(g, shape)
