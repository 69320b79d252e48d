"""Modules: a forward that composes ops, and the parameters it owns.

Assigning a TensorNode leaf that requires grad to a module attribute registers it as a parameter;
assigning a Module registers a sub-module; lists, tuples and dicts of them count too (their
contents as they are when parameters are collected, named attribute.index or attribute.key). ``parameters()``,
``named_parameters()``, ``train()``, ``eval()``, ``zero_grad()``, ``state_dict()`` and
``load_state_dict()`` follow PyTorch; a subclass may still override ``parameters()`` as in vugrad.
"""

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
    """

    def __init__(self, sizes, activation="relu", residual=False, output_activation=None,
                 init="glorot_normal", dtype=np.float64):
        super().__init__()
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
