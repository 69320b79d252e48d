"""Modules: a forward that composes ops, and the parameters it owns.

Assigning a TensorNode leaf that requires grad to a module attribute registers it as a parameter;
assigning a Module registers a sub-module; lists, tuples and dicts of them count too (their
contents as they are when parameters are collected, named attribute.index or attribute.key). ``parameters()``,
``named_parameters()``, ``train()``, ``eval()``, ``zero_grad()``, ``state_dict()`` and
``load_state_dict()`` follow PyTorch; a subclass may still override ``parameters()`` as in vugrad.
"""

import math

import numpy as np

from . import functional as F
from . import init as initialisers
from .core import TensorNode


def _is_parameter(value):
    return isinstance(value, TensorNode) and value.is_leaf and value.requires_grad


class Module:
    """Base class of models and layers: ``module(x)`` calls ``forward(x)``."""

    training = True

    def __init__(self):
        pass

    def __setattr__(self, name, value):
        registry = self.__dict__.setdefault("_registry", {})
        if _is_parameter(value) or isinstance(value, (Module, list, tuple, dict)):
            registry[name] = None  # kept in first-assignment order; looked up when walked
        else:
            registry.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.__dict__.get("_registry", {}).pop(name, None)
        object.__delattr__(self, name)

    def _members(self):
        """(name, value) for registered parameters and modules, looking into lists, tuples and
        dicts (named name.index or name.key) as they are now."""
        for name in self.__dict__.get("_registry", {}):
            value = self.__dict__.get(name)
            if isinstance(value, dict):
                items = [(f"{name}.{k}", v) for k, v in value.items()]
            elif isinstance(value, (list, tuple)):
                items = [(f"{name}.{i}", v) for i, v in enumerate(value)]
            else:
                items = [(name, value)]
            for key, v in items:
                if _is_parameter(v) or isinstance(v, Module):
                    yield key, v

    def register_buffer(self, name, array):
        """Keep an array (not learned, e.g. running statistics) in state_dict under ``name``."""
        self.__dict__.setdefault("_buffers", {})[name] = None
        object.__setattr__(self, name, array)

    def forward(self, *args, **kwargs):
        """The module's computation on TensorNodes; calling the module calls this."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_children(self):
        """(name, module) for each direct sub-module; modules in a list are named name.i."""
        for name, value in self._members():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix=""):
        """(dotted name, parameter) for this module's parameters and its sub-modules', each once."""
        seen = set()
        for name, p in self._named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix):
        for name, value in self._members():
            if isinstance(value, Module):
                yield from value._named_parameters(prefix + name + ".")
            else:
                yield prefix + name, value

    def parameters(self):
        """The TensorNodes this module learns, each once."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """(dotted name, array) for the buffers of this module (register_buffer) and its sub-modules'."""
        for name in self.__dict__.get("_buffers", {}):
            yield prefix + name, getattr(self, name)
        for name, m in self.named_children():
            yield from m.named_buffers(prefix + name + ".")

    def train(self, mode=True):
        """Training mode (dropout active, batch statistics); returns the module."""
        self.training = mode
        for _, m in self.named_children():
            m.train(mode)
        return self

    def eval(self):
        """Evaluation mode (no dropout, running statistics); returns the module."""
        return self.train(False)

    def zero_grad(self):
        """Clear the gradients of all parameters."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """Copies of the parameters' values and the buffers, by dotted name."""
        state = {name: p.value.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return state

    def load_state_dict(self, state):
        """Set parameters and buffers from a state_dict; ValueError naming missing, unexpected
        or mismatched entries (nothing is changed then)."""
        params = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = set(params) | set(buffers)
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        problems = []
        if missing:
            problems.append(f"missing: {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected: {', '.join(unexpected)}")
        for name in sorted(expected & set(state)):
            have = params[name].value if name in params else buffers[name]
            got = np.asarray(state[name])
            if got.shape != np.shape(have):
                problems.append(f"{name} has shape {got.shape} in the state but {np.shape(have)} in the model")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, p in params.items():
            p.value[...] = state[name]
            p._bump_version()
        for name, b in buffers.items():
            b[...] = state[name]


class Linear(Module):
    """y = x W^T + b (one fused kernel) for a batch x of shape (n, input_size); y is (n, output_size).

    W (``w``, shape (output_size, input_size)) comes from ``init`` (a name in vg.init.INITIALISERS
    or a function; default Glorot normal with std sqrt(2 / (in + out)), as in vugrad); the bias
    (``b``, shape (1, output_size)) starts at zero, or is absent with ``bias=False``.
    """

    def __init__(self, input_size, output_size, bias=True, init="glorot_normal", dtype=np.float64):
        super().__init__()
        self.w = TensorNode(initialisers.get(init)((output_size, input_size), dtype=dtype))
        self.b = TensorNode(np.zeros((1, output_size), dtype=dtype)) if bias else None

    @property
    def weight(self):
        """W, shape (output_size, input_size): PyTorch's name for ``w``."""
        return self.w

    @property
    def bias(self):
        """b, shape (1, output_size), or None: PyTorch's name for ``b``."""
        return self.b

    def forward(self, input):
        """input (n, input_size) -> input @ W.T + b, shape (n, output_size)."""
        outsize, insize = self.w.shape
        if input.ndim != 2 or input.shape[1] != insize:
            raise ValueError(f"Linear: expected input of shape (n, {insize}), got {input.shape}")
        return F.linear(input, self.w, self.b)


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        """x itself."""
        return x


class ReLU(Module):
    """max(x, 0) element-wise, as a module."""

    def forward(self, x):
        """relu(x), of x's shape."""
        return F.relu(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) element-wise, as a module."""

    def forward(self, x):
        """sigmoid(x), of x's shape."""
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x) element-wise, as a module."""

    def forward(self, x):
        """tanh(x), of x's shape."""
        return F.tanh(x)


class Softplus(Module):
    """log(1 + exp(x)) element-wise, as a module."""

    def forward(self, x):
        """softplus(x), of x's shape."""
        return F.softplus(x)


class LeakyReLU(Module):
    """x where x > 0, slope * x elsewhere, as a module."""

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = slope

    def forward(self, x):
        """leaky_relu(x, slope), of x's shape."""
        return F.leaky_relu(x, self.slope)


class Softmax(Module):
    """Softmax along ``axis`` (default the last), as a module."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        """softmax(x, axis), of x's shape."""
        return F.softmax(x, self.axis)


class LogSoftmax(Module):
    """Log-softmax along ``axis`` (default the last), as a module."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        """log_softmax(x, axis), of x's shape."""
        return F.logsoftmax(x, self.axis)


ACTIVATIONS = {
    "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softplus": Softplus, "leaky_relu": LeakyReLU,
    "softmax": Softmax, "log_softmax": LogSoftmax, "identity": Identity, None: Identity,
}


def get_activation(name):
    """An activation module by name (see ACTIVATIONS), or a Module passed through."""
    if isinstance(name, Module):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(str(k) for k in ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class Sequential(Module):
    """Modules applied one after the other."""

    def __init__(self, *modules):
        super().__init__()
        for m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: {type(m).__name__} is not a Module")
        self.layers = list(modules)

    def forward(self, x):
        """x through each module in turn."""
        for m in self.layers:
            x = m(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)


class Residual(Module):
    """x + module(x): the module must keep the shape of its input."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        """x + module(x), of x's shape."""
        y = self.module(x)
        if y.shape != x.shape:
            raise ValueError(f"Residual: the module maps shape {x.shape} to {y.shape}; a residual needs the same shape")
        return x + y


class MLP(Module):
    """Fully connected layers of the given sizes, e.g. ``MLP([784, 256, 10])``.

    Each hidden layer is Linear then ``activation``; with ``residual=True`` a hidden layer whose
    input and output sizes agree adds its input (h + act(Linear(h))). The last layer is Linear then
    ``output_activation`` (None: logits). ``init`` is the weights' initialiser.

    ``MLP(input_size=..., output_size=..., hidden_mult=4)`` is the MLP of vugrad's train_mlp.py: one
    sigmoid hidden layer of ``hidden_mult * input_size`` units and a log-softmax output.
    """

    def __init__(self, sizes=None, activation="relu", residual=False, output_activation=None,
                 init="glorot_normal", dtype=np.float64, *, input_size=None, output_size=None, hidden_mult=4):
        super().__init__()
        if (input_size is None) != (output_size is None):
            raise TypeError("MLP: give both input_size and output_size (vugrad's MLP), or sizes")
        if input_size is not None:
            if sizes is not None:
                raise TypeError("MLP: give sizes or input_size/output_size, not both")
            sizes = [input_size, hidden_mult * input_size, output_size]
            activation, output_activation = "sigmoid", "log_softmax"
        if sizes is None:
            raise TypeError("MLP: missing the layer sizes (e.g. MLP([784, 256, 10]))")
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"MLP: need at least an input and an output size, got {sizes}")
        self.layers = [Linear(a, b, init=init, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])]
        self.activation = get_activation(activation)
        self.output_activation = get_activation(output_activation)
        self.residual = residual

    def forward(self, x):
        """x (n, sizes[0]) through the layers: (n, sizes[-1])."""
        for layer in self.layers[:-1]:
            h = self.activation(layer(x))
            x = x + h if self.residual and h.shape == x.shape else h
        return self.output_activation(self.layers[-1](x))


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the rest by 1 / (1 - p);
    in evaluation, the identity. Masks come from vg.init's generator."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        """x with dropout applied in training (a new mask each call), x itself in evaluation."""
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return x * 0.0
        keep = initialisers.generator().random(x.shape) >= self.p
        return x * (keep / (1 - self.p)).astype(x.dtype)


class BatchNorm1d(Module):
    """Normalises each feature of an (n, features) batch: (x - mean) / sqrt(var + eps) * weight + bias.

    In training, mean and (biased) variance come from the batch, and running estimates are updated
    as running = (1 - momentum) running + momentum batch (the unbiased variance, as PyTorch); in
    evaluation the running estimates are used.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float64):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = TensorNode(np.ones((1, num_features), dtype=dtype))
        self.bias = TensorNode(np.zeros((1, num_features), dtype=dtype))
        self.register_buffer("running_mean", np.zeros((1, num_features), dtype=dtype))
        self.register_buffer("running_var", np.ones((1, num_features), dtype=dtype))

    def forward(self, x):
        """x (n, num_features) normalised per feature, of the same shape."""
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: expected input of shape (n, {self.num_features}), got {x.shape}")
        if self.training:
            n = x.shape[0]
            if n < 2:
                raise ValueError("BatchNorm1d: training needs more than 1 instance per batch to estimate a variance")
            mean = x.mean(axis=0, keepdims=True)
            var = x.var(axis=0, keepdims=True)
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.value
            self.running_var[...] = (1 - m) * self.running_var + m * var.value * n / (n - 1)
            xhat = (x - mean) / F.sqrt(var + self.eps)
        else:
            xhat = (x - self.running_mean) / np.sqrt(self.running_var + self.eps)
        return xhat * self.weight + self.bias


# ---- convolutional layers (NCHW images) ----

def _check_images(module, x, channels):
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        expected = "(N, C, H, W)" if channels is None else f"(N, {channels}, H, W)"
        raise ValueError(f"{module}: expected input of shape {expected}, got {x.shape}")


class Conv2d(Module):
    """2-d convolution of images (N, in_channels, H, W) into (N, out_channels, H', W'), as PyTorch's.

    ``weight`` has shape (out_channels, in_channels / groups, kH, kW) and ``bias`` (out_channels,)
    (None with bias=False); both start uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in =
    in_channels / groups * kH * kW, as PyTorch initialises them (kaiming_uniform with a = sqrt(5)).
    kernel_size, stride, padding and dilation are ints or pairs; padding also 'valid' or 'same'.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float64):
        super().__init__()
        kh, kw = F._two(kernel_size, "kernel_size", "Conv2d")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"Conv2d: groups must be a positive int, got {groups!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must both be "
                             f"divisible by groups {groups}")
        if kh < 1 or kw < 1:
            raise ValueError(f"Conv2d: kernel_size must be positive, got {(kh, kw)}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        shape = (out_channels, in_channels // groups, kh, kw)
        self.weight = TensorNode(initialisers.kaiming_uniform(shape, dtype=dtype, a=math.sqrt(5)))
        bound = 1.0 / math.sqrt(shape[1] * kh * kw)
        self.bias = TensorNode(initialisers.uniform((out_channels,), -bound, bound, dtype=dtype)) if bias else None

    def forward(self, input):
        _check_images("Conv2d", input, self.in_channels)
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(Module):
    """max_pool2d as a module: windows of kernel_size at stride (default kernel_size)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(Module):
    """avg_pool2d as a module (PyTorch's defaults: count_include_pad=True, ceil_mode=False)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(Module):
    """adaptive_avg_pool2d as a module: (N, C, H, W) -> (N, C, *output_size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return F.adaptive_avg_pool2d(input, self.output_size)


class Flatten(Module):
    """flatten(x, start_dim, end_dim): by default (N, C, H, W) -> (N, C * H * W), as PyTorch's."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)


class BatchNorm2d(Module):
    """Normalises each channel of images (N, C, H, W) over the batch and the pixels:
    (x - mean) / sqrt(var + eps) * weight + bias, with weight and bias of shape (C,).

    As BatchNorm1d: batch statistics (biased variance) in training, updating running_mean and
    running_var (unbiased, with ``momentum``); the running estimates in evaluation.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float64):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = TensorNode(np.ones(num_features, dtype=dtype))
        self.bias = TensorNode(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))

    def forward(self, x):
        _check_images("BatchNorm2d", x, self.num_features)
        per_channel = (1, self.num_features, 1, 1)
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ValueError("BatchNorm2d: training needs more than 1 value per channel to estimate a variance, "
                                 f"got input of shape {x.shape}")
            mean = x.mean(axis=(0, 2, 3), keepdims=True)
            var = x.var(axis=(0, 2, 3), keepdims=True)
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean.value.reshape(-1)
            self.running_var[...] = (1 - m) * self.running_var + m * var.value.reshape(-1) * count / (count - 1)
            xhat = (x - mean) / F.sqrt(var + self.eps)
        else:
            mean = self.running_mean.reshape(per_channel).astype(x.dtype)
            scale = (1.0 / np.sqrt(self.running_var + self.eps)).reshape(per_channel).astype(x.dtype)
            xhat = (x - mean) * scale
        return xhat * F.reshape(self.weight, per_channel) + F.reshape(self.bias, per_channel)


# ---- losses as modules ----

class _Loss(Module):
    """A loss function as a module; ``reduction`` is 'mean' or 'sum' over the instances."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """cross_entropy(logits, targets)."""

    def forward(self, logits, targets):
        """Loss of logits (n, C) against integer targets (n,): a 0-d node."""
        return F.cross_entropy(logits, targets, self.reduction)


class NLLLoss(_Loss):
    """nll_loss(log_probabilities, targets): vugrad's logceloss with a reduction."""

    def forward(self, logprobs, targets):
        """Loss of log-probabilities (n, C) against integer targets (n,): a 0-d node."""
        return F.nll_loss(logprobs, targets, self.reduction)


class BCELoss(_Loss):
    """binary_cross_entropy(probabilities, targets)."""

    def forward(self, probs, targets):
        """Loss of probabilities against targets of the same shape: a 0-d node."""
        return F.binary_cross_entropy(probs, targets, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """binary_cross_entropy_with_logits(logits, targets)."""

    def forward(self, logits, targets):
        """Loss of logits against targets of the same shape: a 0-d node."""
        return F.binary_cross_entropy_with_logits(logits, targets, self.reduction)


class MSELoss(_Loss):
    """mse_loss(prediction, target)."""

    def forward(self, prediction, target):
        """Loss of a prediction against a target of the same shape: a 0-d node."""
        return F.mse_loss(prediction, target, self.reduction)
