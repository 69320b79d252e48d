"""PyTorch's initialisers (torch.nn.init): each overwrites a tensor's values in place and returns it.

    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
    nn.init.zeros_(layer.bias)

Values come from tapegrad.init's generator (numpy's global one until ``tapegrad.manual_seed``), so
they are PyTorch's distributions but not PyTorch's numbers. The write bypasses the graph (as
PyTorch's do under no_grad) and bumps the tensor's version. Fans follow PyTorch: a weight of shape
(out, in, *kernel) has fan_in = in * prod(kernel) and fan_out = out * prod(kernel) (for a conv
weight (out, in / groups, kH, kW) that is its receptive field); tensors of fewer than 2 dimensions
have no fans (ValueError).
"""

import math

import numpy as np

from .. import init as _vg_init
from .._torchlike import write
from ..core import TensorNode

_LINEAR_LIKE = {"linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid"}


def _check(tensor, fn):
    if not isinstance(tensor, TensorNode):
        raise TypeError(f"nn.init.{fn}: expected a tensor, got {type(tensor).__name__}")
    return tensor


def _draw(generator):
    return _vg_init.generator() if generator is None else generator


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for a nonlinearity: 1 for linear, convolutions and sigmoid,
    5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (slope ``param``,
    default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel), as PyTorch counts them."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(f"nn.init: fan in and fan out can not be computed for a tensor of shape {shape} "
                         "(fewer than 2 dimensions)")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init: mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Values from U(a, b), in place; returns tensor."""
    _check(tensor, "uniform_")
    if a > b:
        raise ValueError(f"nn.init.uniform_: lower bound {a} is above upper bound {b}")
    return write(tensor, _draw(generator).uniform(a, b, tensor.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Values from N(mean, std**2), in place; returns tensor."""
    _check(tensor, "normal_")
    if std < 0:
        raise ValueError(f"nn.init.normal_: std must be >= 0, got {std}")
    return write(tensor, mean + std * _draw(generator).standard_normal(tensor.shape))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Values from N(mean, std**2) redrawn until they lie in [a, b], in place; returns tensor."""
    _check(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"nn.init.trunc_normal_: need a < b, got a={a}, b={b}")
    rng = _draw(generator)
    values = mean + std * rng.standard_normal(tensor.shape)
    for _ in range(1000):  # each round redraws the values outside; P(outside) < 1 unless [a, b] is far out
        outside = (values < a) | (values > b)
        if not outside.any():
            break
        values[outside] = mean + std * rng.standard_normal(int(outside.sum()))
    else:
        values = np.clip(values, a, b)  # a window far in a tail: the last draws are clamped into it
    return write(tensor, values)


def constant_(tensor, val):
    """Every value set to val, in place; returns tensor."""
    return write(_check(tensor, "constant_"), val)


def ones_(tensor):
    """Every value set to 1, in place; returns tensor."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Every value set to 0, in place; returns tensor."""
    return constant_(tensor, 0.0)


def eye_(tensor):
    """The identity matrix, in place, for a 2-d tensor; returns tensor."""
    if len(_check(tensor, "eye_").shape) != 2:
        raise ValueError(f"nn.init.eye_: only 2-d tensors are supported, got shape {tuple(tensor.shape)}")
    return write(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-r, r) with r = gain * sqrt(6 / (fan_in + fan_out)), in place."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_uniform_"))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)), in place."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_check(tensor, "xavier_normal_"))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-r, r) with r = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a),
    fan = fan_in or fan_out (``mode``), in place. PyTorch's Linear and Conv2d use a = sqrt(5), i.e.
    r = 1 / sqrt(fan_in)."""
    fan = _fan(_check(tensor, "kaiming_uniform_"), mode)
    if fan == 0:
        return tensor  # an empty weight: nothing to draw (PyTorch warns and does the same)
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std**2) with std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a),
    fan = fan_in or fan_out (``mode``), in place."""
    fan = _fan(_check(tensor, "kaiming_normal_"), mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)

