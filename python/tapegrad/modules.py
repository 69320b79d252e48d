"""Modules: a forward that composes ops, and the parameters it owns (vugrad's dialect).

``vg.Module``, ``vg.Linear`` (``w`` (out, in), ``b`` (1, out), Glorot normal, float64), ``vg.MLP``,
``vg.Sequential``, ``vg.BatchNorm1d``, ``vg.Dropout`` and ``vg.Residual`` live here; PyTorch's
modules (``tapegrad.nn``) are built on the same Module class.

Assigning a TensorNode leaf that requires grad to a module attribute registers it as a parameter
(it stays one if it is frozen later); assigning a Module registers a sub-module; lists, tuples and
dicts of them count too (their contents as they are when parameters are collected, named
attribute.index or attribute.key). ``parameters()``, ``named_parameters()``, ``children()``,
``modules()``, ``apply()``, ``train()``, ``eval()``, ``zero_grad()``, ``state_dict()`` and
``load_state_dict()`` follow PyTorch; a subclass may still override ``parameters()`` as in vugrad.
Here parameters are listed in assignment order and ``parameters()`` is a list; tapegrad.nn.Module
lists them as PyTorch does (a module's own first) and returns a generator.
"""

import math

import numpy as np

from . import functional as F
from . import init as initialisers
from . import replay as _jit
from ._torchlike import as_array, write
from .core import TensorNode

_PARAMETER, _MODULE, _CONTAINER = "parameter", "module", "container"


def _is_parameter(value):
    return isinstance(value, TensorNode) and value.is_leaf and value.requires_grad


def _kind(value):
    """What an attribute registers as when assigned: a parameter, a module, a container, or nothing."""
    if _is_parameter(value):
        return _PARAMETER
    if isinstance(value, Module):
        return _MODULE
    if isinstance(value, (list, tuple, dict)):
        return _CONTAINER
    return None


def clear_grads(params, set_to_none=True):
    """Clear the gradients of params: set them to None (a vugrad node then reads zeros again), or,
    with set_to_none=False, overwrite the stored gradients with zeros in place."""
    for p in params:
        if set_to_none:
            p.grad = None
        else:
            p._fill_grad_zero()  # nothing without a gradient


def _indent(text, spaces=2):
    """Every line but the first of text indented by spaces (for nested reprs)."""
    lines = text.split("\n")
    return lines[0] + "".join("\n" + " " * spaces + line for line in lines[1:])


class Module:
    """Base class of models and layers: ``module(x)`` calls ``forward(x)``."""

    training = True
    _own_parameters_first = False  # PyTorch's order: a module's own parameters, then its children's

    def __init__(self):
        pass

    def __setattr__(self, name, value):
        registry = self.__dict__.setdefault("_registry", {})
        kind = _kind(value)
        if kind is None:
            registry.pop(name, None)
        else:
            registry[name] = kind  # kept in first-assignment order; its value is looked up when walked
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self.__dict__.get("_registry", {}).pop(name, None)
        self.__dict__.get("_buffers", {}).pop(name, None)
        object.__delattr__(self, name)

    def _members(self):
        """(name, value) for registered parameters and modules, looking into lists, tuples and
        dicts (named name.index or name.key) as they are now."""
        for name, kind in self.__dict__.get("_registry", {}).items():
            value = self.__dict__.get(name)
            if kind == _PARAMETER:
                if isinstance(value, TensorNode) and value.is_leaf:  # frozen later, still a parameter
                    yield name, value
                continue
            if isinstance(value, dict):
                items = [(f"{name}.{k}", v) for k, v in value.items()]
            elif isinstance(value, (list, tuple)):
                items = [(f"{name}.{i}", v) for i, v in enumerate(value)]
            else:
                items = [(name, value)]
            for key, v in items:
                if _is_parameter(v) or isinstance(v, Module):
                    yield key, v

    def register_buffer(self, name, tensor, persistent=True):
        """Keep a value that is not learned (running statistics, say) as attribute ``name``, in
        state_dict under its name unless persistent=False; None is allowed (and not saved)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: a buffer name must be a non-empty string without '.', got {name!r}")
        self.__dict__.setdefault("_buffers", {})[name] = bool(persistent)
        self.__dict__.get("_registry", {}).pop(name, None)
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name, param):
        """Register param (a leaf TensorNode, or None for an absent one) as parameter ``name``."""
        if param is not None and not (isinstance(param, TensorNode) and param.is_leaf):
            raise TypeError(f"register_parameter: {name!r} must be a leaf tensor or None, got {type(param).__name__}")
        object.__setattr__(self, name, param)
        if param is not None:
            self.__dict__.setdefault("_registry", {})[name] = _PARAMETER

    def add_module(self, name, module):
        """Register module (or None) as the sub-module ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: {type(module).__name__} is not a Module")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: a module name must be a non-empty string without '.', got {name!r}")
        if hasattr(type(self), name):
            raise KeyError(f"add_module: attribute {name!r} already exists")
        setattr(self, name, module)

    register_module = add_module

    def forward(self, *args, **kwargs):
        """The module's computation on TensorNodes; calling the module calls this."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        _jit.note_module(self)
        return self.forward(*args, **kwargs)

    # ---- walking the tree ----

    def named_children(self):
        """(name, module) for each direct sub-module, each once; modules in a list are named name.i."""
        seen = set()
        for name, value in self._members():
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self):
        """The direct sub-modules, each once."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module ("" or prefix) and every module below it, parents first."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        """This module and every module below it, each once, parents first."""
        for _, m in self.named_modules():
            yield m

    def _own_parameters(self):
        """(name, parameter) registered on this module itself (not its sub-modules)."""
        for name, value in self._members():
            if not isinstance(value, Module):
                yield name, value

    def _walk_parameters(self, prefix):
        if self._own_parameters_first:
            for name, p in self._own_parameters():
                yield prefix + name, p
            for name, m in self.named_children():
                yield from m._walk_parameters(prefix + name + ".")
            return
        for name, value in self._members():
            if isinstance(value, Module):
                yield from value._walk_parameters(prefix + name + ".")
            else:
                yield prefix + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, parameter) for this module's parameters and (recurse) its sub-modules',
        each once unless remove_duplicate=False."""
        pairs = self._walk_parameters(prefix + "." if prefix else "") if recurse else (
            ((f"{prefix}.{n}" if prefix else n), p) for n, p in self._own_parameters())
        seen = set()
        for name, p in pairs:
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield name, p

    def parameters(self):
        """The TensorNodes this module learns, each once (a list)."""
        return [p for _, p in self.named_parameters()]

    def _own_buffers(self, persistent_only=False):
        """(name, value) of the buffers registered on this module itself (None ones left out)."""
        for name, persistent in self.__dict__.get("_buffers", {}).items():
            value = self.__dict__.get(name)
            if value is not None and (persistent or not persistent_only):
                yield name, value

    def named_buffers(self, prefix="", recurse=True):
        """(dotted name, value) for the buffers of this module (register_buffer) and its sub-modules'."""
        start = prefix + "." if prefix else ""
        for name, b in self._own_buffers():
            yield start + name, b
        if recurse:
            for name, m in self.named_children():
                yield from m.named_buffers(start + name)

    def buffers(self, recurse=True):
        """The buffers' values (see named_buffers)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call fn(module) on every sub-module (children first, as PyTorch) and then on this one;
        returns this module. Used to initialise weights: ``net.apply(init_weights)``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ----

    def train(self, mode=True):
        """Training mode (dropout active, batch statistics); returns the module."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        """Evaluation mode (no dropout, running statistics); returns the module."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad on every parameter (False freezes them); returns the module."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Clear the gradients of all parameters (see clear_grads)."""
        clear_grads(self.parameters(), set_to_none)

    # ---- state ----

    def state_dict(self):
        """Copies of the parameters' values and the buffers (numpy arrays), by dotted name."""
        state = {name: p.value.copy() for name, p in self.named_parameters()}
        state.update({name: np.array(as_array(b), copy=True) for name, b in self._state_buffers()})
        return state

    def _state_buffers(self, prefix=""):
        """(dotted name, value) of the buffers state_dict saves (the persistent ones)."""
        start = prefix + "." if prefix else ""
        for name, b in self._own_buffers(persistent_only=True):
            yield start + name, b
        for name, m in self.named_children():
            yield from m._state_buffers(start + name)

    def _state_targets(self):
        """name -> the parameter or buffer a state_dict entry of that name loads into."""
        targets = dict(self.named_parameters())
        targets.update(self._state_buffers())
        return targets

    def _check_state(self, state, strict, error=ValueError):
        """(targets, missing, unexpected) for loading state; raises error naming every problem
        (missing and unexpected keys only when strict; shape mismatches always)."""
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of arrays or tensors, got {type(state).__name__}")
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        problems = []
        if strict and missing:
            problems.append(f"missing: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected: {', '.join(map(str, unexpected))}")
        for name in targets:
            if name in state:
                have, got = np.shape(as_array(targets[name])), np.shape(as_array(state[name]))
                if got != have:
                    problems.append(f"{name} has shape {got} in the state but {have} in the model")
        if problems:
            raise error(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        return targets, missing, unexpected

    def load_state_dict(self, state, strict=True):
        """Set parameters and buffers from a state_dict (arrays or tensors by dotted name);
        ValueError naming missing, unexpected or mismatched entries (nothing is changed then).
        With strict=False, missing and unexpected names are allowed. Returns (missing, unexpected)."""
        targets, missing, unexpected = self._check_state(state, strict)
        for name, target in targets.items():
            if name in state:
                write(target, state[name])
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ----

    def extra_repr(self):
        """The module's own settings, shown inside its repr (PyTorch's hook); '' by default."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): {_indent(repr(m))}" for name, m in self.named_children()]
        lines = extra_lines + child_lines
        if not lines:
            return f"{type(self).__name__}()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{type(self).__name__}({extra_lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class IncompatibleKeys(tuple):
    """What load_state_dict returns: the names it did not find (missing_keys) and the names it did
    not use (unexpected_keys); a pair, as PyTorch's."""

    def __new__(cls, missing_keys, unexpected_keys):
        return super().__new__(cls, (list(missing_keys), list(unexpected_keys)))

    @property
    def missing_keys(self):
        """Names of the model's parameters and buffers the state did not hold."""
        return self[0]

    @property
    def unexpected_keys(self):
        """Names in the state the model has no parameter or buffer for."""
        return self[1]

    def __repr__(self):
        if not self[0] and not self[1]:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self[0]}, unexpected_keys={self[1]})"


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

    def extra_repr(self):
        """input_size, output_size and whether there is a bias."""
        return f"input_size={self.w.shape[1]}, output_size={self.w.shape[0]}, bias={self.b is not None}"


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

    def extra_repr(self):
        """The slope."""
        return f"slope={self.slope}"


class Softmax(Module):
    """Softmax along ``axis`` (default the last), as a module."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        """softmax(x, axis), of x's shape."""
        return F.softmax(x, self.axis)

    def extra_repr(self):
        """The axis."""
        return f"axis={self.axis}"


class LogSoftmax(Module):
    """Log-softmax along ``axis`` (default the last), as a module."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def forward(self, x):
        """log_softmax(x, axis), of x's shape."""
        return F.logsoftmax(x, self.axis)

    def extra_repr(self):
        """The axis."""
        return f"axis={self.axis}"


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
        _jit.refuse("runs Dropout in training mode (its masks are drawn outside the tape)",
                    "call the step with the model in eval() mode, or without vg.jit")
        keep = initialisers.generator().random(x.shape) >= self.p
        return x * (keep / (1 - self.p)).astype(x.dtype)

    def extra_repr(self):
        """The probability of zeroing."""
        return f"p={self.p}"


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
            _jit.refuse("runs BatchNorm1d in training mode (its running statistics are updated outside the tape)",
                        "call the step with the model in eval() mode, or without vg.jit")
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

    def extra_repr(self):
        """num_features, eps and momentum."""
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
