"""Initialisers: arrays for parameters of a given shape, drawn from one generator.

Until ``manual_seed`` is called, draws come from numpy's global generator, so ``np.random.seed``
makes them reproducible as it does in vugrad; after ``manual_seed(s)`` they come from a generator
of their own seeded with s. For a weight of shape (out, in, ...), fan_in is in * (product of the
rest) and fan_out is out * (product of the rest): a conv weight (out, in / groups, kH, kW) has
fan_in = in / groups * kH * kW (its receptive field), as PyTorch counts it.
"""

import math

import numpy as np

_generator = None


def manual_seed(seed):
    """Seed the generator of initialisers and dropout masks."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    """The generator initialisers draw from (numpy's global one until manual_seed)."""
    return np.random if _generator is None else _generator


def _fans(shape):
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def glorot_normal(shape, dtype=np.float64):
    """Normal with std sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio; vugrad's Linear)."""
    fan_in, fan_out = _fans(shape)
    return (generator().standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(dtype)


def glorot_uniform(shape, dtype=np.float64):
    """Uniform on [-a, a] with a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return generator().uniform(-a, a, shape).astype(dtype)


def _gain(a):
    """The gain sqrt(2 / (1 + a**2)) of a leaky ReLU of negative slope a (a = 0: ReLU's sqrt(2))."""
    return math.sqrt(2.0 / (1.0 + a * a))


def he_normal(shape, dtype=np.float64, a=0.0):
    """Normal with std gain / sqrt(fan_in), gain = sqrt(2 / (1 + a**2)) (He et al., for ReLU layers;
    a is the negative slope of a leaky ReLU)."""
    fan_in, _ = _fans(shape)
    return (generator().standard_normal(shape) * (_gain(a) / math.sqrt(fan_in))).astype(dtype)


def he_uniform(shape, dtype=np.float64, a=0.0):
    """Uniform on [-bound, bound] with bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a**2)):
    sqrt(6 / fan_in) for a = 0. PyTorch's Linear and Conv2d use a = sqrt(5), i.e. bound =
    1 / sqrt(fan_in). For a conv weight (out, in / groups, kH, kW), fan_in = in / groups * kH * kW."""
    fan_in, _ = _fans(shape)
    bound = _gain(a) * math.sqrt(3.0 / fan_in)
    return generator().uniform(-bound, bound, shape).astype(dtype)


xavier_normal, xavier_uniform = glorot_normal, glorot_uniform
kaiming_normal, kaiming_uniform = he_normal, he_uniform


def normal(shape, std=1.0, mean=0.0, dtype=np.float64):
    """Normal with the given mean and std (std 1: the course's "standard normal" initialisation)."""
    return (mean + std * generator().standard_normal(shape)).astype(dtype)


def uniform(shape, a=-1.0, b=1.0, dtype=np.float64):
    """Uniform on [a, b)."""
    if a > b:
        raise ValueError(f"uniform: lower bound {a} is above upper bound {b}")
    return generator().uniform(a, b, shape).astype(dtype)


def zeros(shape, dtype=np.float64):
    """All zeros."""
    return np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float64):
    """All ones."""
    return np.ones(shape, dtype=dtype)


INITIALISERS = {
    "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "xavier_normal": glorot_normal, "xavier_uniform": glorot_uniform,
    "he_normal": he_normal, "he_uniform": he_uniform,
    "kaiming_normal": he_normal, "kaiming_uniform": he_uniform,
    "normal": normal, "uniform": uniform, "zeros": zeros, "ones": ones,
}


def get(init):
    """An initialiser by name (see INITIALISERS) or a callable(shape, dtype=...) returned as is."""
    if callable(init):
        return init
    if init not in INITIALISERS:
        raise ValueError(f"unknown initialiser {init!r}; choose one of {', '.join(INITIALISERS)} or pass a function")
    return INITIALISERS[init]
