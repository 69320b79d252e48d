"""PyTorch's modules (torch.nn) on tapegrad: ``import tapegrad.nn as nn`` runs torch.nn code.

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)

Parameters are torch tensors (``.grad`` None until a backward reaches them), float32 unless a
``dtype`` is given, with PyTorch's shapes (Linear: weight (out, in), bias (out,)) and default
initialisations (drawn from tapegrad.init's generator, so PyTorch's distributions but not its
numbers). Leaves that require grad (``nn.Parameter(...)``) and modules register when assigned as
attributes, in assignment order; ``parameters()`` lists a module's own parameters first, then its
children's, as PyTorch; ``state_dict()`` has PyTorch's key names ("fc1.weight", "0.bias",
"bn.running_mean", "bn.num_batches_tracked") and ``load_state_dict`` takes tensors or numpy arrays,
so ``{k: v.numpy() for k, v in torch_net.state_dict().items()}`` loads.

vugrad's modules (``vg.Linear`` with ``w`` (out, in) and ``b`` (1, out), ``vg.MLP``, ...) are in
tapegrad.modules; both kinds nest in each other. ``nn.functional`` and ``nn.init`` are PyTorch's.
"""

import collections
import math

import numpy as np

from .. import functional as _vgF
from .. import replay as _jit
from .. import modules as _base
from .._torchlike import as_array, default_dtype, like, make_tensor, numpy_dtype, write
from ..core import TensorNode
from . import functional, init
from . import functional as F

IncompatibleKeys = _base.IncompatibleKeys


class LoadStateDictError(ValueError, RuntimeError):
    """load_state_dict found missing, unexpected or mismatched entries (a ValueError, and a
    RuntimeError as PyTorch raises)."""


class _ParameterType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, TensorNode) and obj.is_leaf and obj.requires_grad


class Parameter(metaclass=_ParameterType):
    """``nn.Parameter(data, requires_grad=True)``: a leaf tensor that requires grad, sharing the
    values of ``data`` (a tensor; an array or list is copied into a new tensor; None gives an empty
    float32 tensor). Assigned to a module attribute, it registers as a parameter. It is a plain
    tensor: ``isinstance(t, nn.Parameter)`` is true of every leaf tensor that requires grad."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            t = make_tensor(np.zeros(0, dtype=default_dtype()))
        elif isinstance(data, TensorNode):
            t = data.detach()
        else:
            array = np.asarray(data)
            t = make_tensor(array.astype(default_dtype()) if array.dtype.kind in "iub" else array.copy())
        t.requires_grad = bool(requires_grad)
        return t


def _empty(shape, dtype):
    """A fresh float tensor that requires grad, to be filled by an initialiser."""
    return Parameter(make_tensor(np.zeros(shape, dtype=numpy_dtype(dtype))))


def _on_cpu(device, who):
    if device is not None and not str(device).startswith("cpu"):
        raise ValueError(f"{who}: tapegrad runs on the CPU only, got device {device!r}")


class Module(_base.Module):
    """Base class of PyTorch-style models: subclass it, assign layers in ``__init__``, write
    ``forward``. As torch.nn.Module: ``parameters()`` (a generator), ``named_parameters()``,
    ``children()``, ``modules()``, ``state_dict()`` (tensors sharing the parameters' values),
    ``load_state_dict(strict=True)``, ``to(dtype)``, ``double()``, ``float()``, ``zero_grad()``,
    ``train()``, ``eval()``, ``apply(fn)`` and a repr like PyTorch's."""

    _own_parameters_first = True

    def parameters(self, recurse=True):
        """The parameters of this module and (recurse) its sub-modules, each once, as a generator."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def _state_items(self, prefix=""):
        """(key, value) of what state_dict holds, in PyTorch's order: a module's own parameters,
        its persistent buffers, then each sub-module's (a shared one under each of its names)."""
        for name, p in self._own_parameters():
            yield prefix + name, p
        for name, b in self._own_buffers(persistent_only=True):
            yield prefix + name, b
        for name, m in self._members():
            if isinstance(m, _base.Module):
                if isinstance(m, Module):
                    yield from m._state_items(prefix + name + ".")
                else:  # a vugrad module inside: its parameters and buffers by their names
                    for key, v in m.named_parameters():
                        yield f"{prefix}{name}.{key}", v
                    for key, v in m._state_buffers():
                        yield f"{prefix}{name}.{key}", v

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of parameters and buffers by dotted name ("fc1.weight"), as torch's: each
        value a tensor without a graph sharing the module's values (keep_vars=True: the
        parameters themselves). Copy it (copy.deepcopy) to keep a snapshot while training."""
        out = collections.OrderedDict() if destination is None else destination
        for key, value in self._state_items(prefix):
            if keep_vars:
                out[key] = value
            elif isinstance(value, TensorNode):
                out[key] = value.detach()
            else:
                out[key] = make_tensor(value)  # a vugrad buffer (a numpy array), shared
        return out

    def _state_targets(self):
        return dict(self._state_items())

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values into the parameters and buffers, in place, from a dict of tensors or numpy
        arrays by the names state_dict uses (cast to each parameter's dtype). Missing or unexpected
        names (when strict) and shape mismatches (always) raise LoadStateDictError (a ValueError
        and a RuntimeError) naming them all, before anything changes. Returns
        (missing_keys, unexpected_keys)."""
        if assign:
            raise ValueError("load_state_dict: assign=True is not supported (values are copied in place)")
        targets, missing, unexpected = self._check_state(state_dict, strict, LoadStateDictError)
        for name, target in targets.items():
            if name in state_dict:
                write(target, state_dict[name])
        return IncompatibleKeys(missing, unexpected)

    # ---- dtype and device ----

    def _convert(self, dtype):
        """Every floating parameter and buffer replaced by one of ``dtype`` (parameters keep
        requires_grad and their place; tied ones stay tied)."""
        memo = {}

        def convert(value, requires_grad=None):
            if id(value) in memo:
                return memo[id(value)]
            array = as_array(value)
            if array.dtype.kind != "f" or array.dtype == dtype:
                new = value
            elif isinstance(value, TensorNode):
                new = like(value, array.astype(dtype), requires_grad=value.requires_grad)
            else:
                new = array.astype(dtype)
            memo[id(value)] = new
            return new

        for m in self.modules():
            for name, kind in list(m.__dict__.get("_registry", {}).items()):
                value = m.__dict__.get(name)
                if kind == _base._PARAMETER and isinstance(value, TensorNode):
                    object.__setattr__(m, name, convert(value))
                elif kind == _base._CONTAINER:
                    items = value.items() if isinstance(value, dict) else enumerate(value)
                    fresh = {k: convert(v) if _base._is_parameter(v) else v for k, v in items}
                    if isinstance(value, dict):
                        value.update(fresh)
                    elif isinstance(value, list):
                        value[:] = [fresh[i] for i in range(len(value))]
                    else:
                        object.__setattr__(m, name, type(value)(fresh[i] for i in range(len(value))))
            for name in m.__dict__.get("_buffers", {}):
                value = m.__dict__.get(name)
                if value is not None:
                    object.__setattr__(m, name, convert(value))
        return self

    def to(self, *args, **kwargs):
        """``to(dtype)``, ``to(device)``, ``to(tensor)`` (its dtype) or ``to(device=, dtype=)``:
        floating parameters and buffers converted to dtype (new tensors: build the optimiser
        after); devices other than the CPU are refused. Returns the module."""
        dtype, device = kwargs.pop("dtype", None), kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to: unexpected keyword argument(s) {', '.join(kwargs)}")
        for arg in args:
            if isinstance(arg, TensorNode):
                dtype = arg.dtype
            elif isinstance(arg, str) or type(arg).__name__ == "device":
                device = arg
            else:
                dtype = arg
        _on_cpu(device, "to")
        return self if dtype is None else self._convert(numpy_dtype(dtype))

    def double(self):
        """Floating parameters and buffers as float64; returns the module."""
        return self._convert(np.dtype(np.float64))

    def float(self):
        """Floating parameters and buffers as float32; returns the module."""
        return self._convert(np.dtype(np.float32))

    def cpu(self):
        """The module itself (tapegrad runs on the CPU)."""
        return self

    def cuda(self, device=None):
        """Refused: tapegrad runs on the CPU only."""
        raise ValueError("cuda: tapegrad runs on the CPU only")


# ---- containers ----

class Sequential(Module):
    """Modules applied one after the other, named "0", "1", ... (or by the keys of an OrderedDict);
    indexable (a slice gives a Sequential), iterable, with len, append, extend, insert."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                if not isinstance(m, _base.Module):
                    raise TypeError(f"Sequential: {type(m).__name__} is not a Module subclass")
                self.add_module(str(i), m)

    def _items(self):
        return [(name, m) for name, m in self._members() if isinstance(m, _base.Module)]

    def _index(self, idx):
        n = len(self)
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: indices must be integers or slices, not {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for {n} modules")
        return int(idx) % n

    def __getitem__(self, idx):
        items = self._items()
        if isinstance(idx, slice):
            return type(self)(collections.OrderedDict(items[idx]))
        return items[self._index(idx)][1]

    def __setitem__(self, idx, module):
        setattr(self, self._items()[self._index(idx)][0], module)

    def __delitem__(self, idx):
        items = self._items()
        chosen = set(range(len(items))[idx] if isinstance(idx, slice) else [self._index(idx)])
        self._refill([m for i, (_, m) in enumerate(items) if i not in chosen])

    def _refill(self, modules):
        """The children replaced by modules, numbered from 0 (PyTorch renumbers after a deletion)."""
        for name, _ in self._items():
            delattr(self, name)
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __len__(self):
        return len(self._items())

    def __iter__(self):
        return iter([m for _, m in self._items()])

    def append(self, module):
        """Add module at the end; returns the container."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        """Add each of modules at the end; returns the container."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        """Put module at position index, shifting the later ones."""
        modules = [m for _, m in self._items()]
        n = len(modules)
        if not -n <= index <= n:
            raise IndexError(f"{type(self).__name__}.insert: index {index} is out of range for {n} modules")
        modules.insert(index % (n + 1) if index < 0 else index, module)
        self._refill(modules)
        return self

    def forward(self, input):
        """input through each module in turn."""
        for m in self:
            input = m(input)
        return input


class ModuleList(Sequential):
    """A list of modules whose parameters register, named "0", "1", ...; no forward of its own."""

    def __init__(self, modules=None):
        Module.__init__(self)
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList([m for _, m in self._items()[idx]])
        return super().__getitem__(idx)

    def __iadd__(self, modules):
        return self.extend(modules)

    def forward(self, *args, **kwargs):
        """A ModuleList has no forward: call its modules."""
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call its modules")


class ModuleDict(Module):
    """A dict of modules whose parameters register under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _items(self):
        return [(name, m) for name, m in self._members() if isinstance(m, _base.Module)]

    def __getitem__(self, key):
        if key not in self:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key, module):
        if key in self:
            setattr(self, key, module)
        else:
            self.add_module(key, module)

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        delattr(self, key)

    def __contains__(self, key):
        return any(name == key for name, _ in self._items())

    def __len__(self):
        return len(self._items())

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        """The keys, in insertion order."""
        return [name for name, _ in self._items()]

    def values(self):
        """The modules, in insertion order."""
        return [m for _, m in self._items()]

    def items(self):
        """(key, module) pairs, in insertion order."""
        return self._items()

    def update(self, modules):
        """Add or replace modules from a dict or (key, module) pairs."""
        for key, m in (modules.items() if hasattr(modules, "items") else modules):
            self[key] = m

    def pop(self, key):
        """Remove key and return its module."""
        m = self[key]
        del self[key]
        return m

    def clear(self):
        """Remove every module."""
        for key in self.keys():
            del self[key]

    def forward(self, *args, **kwargs):
        """A ModuleDict has no forward: call its modules."""
        raise NotImplementedError("ModuleDict has no forward(); call its modules by key")


# ---- layers ----

class Identity(Module):
    """Returns its input (arguments are accepted and ignored, as PyTorch's)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        """input itself."""
        return input


class Linear(Module):
    """y = x W^T + b for x of shape (*, in_features): weight (out_features, in_features), bias
    (out_features,) or None, both U(-1/sqrt(in_features), 1/sqrt(in_features)) at first (PyTorch's
    kaiming_uniform with a = sqrt(5)); float32 unless dtype is given."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _on_cpu(device, "Linear")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = _empty((out_features, in_features), dtype)
        self.bias = _empty((out_features,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's initialisation: weight by kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), ...)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        """input (*, in_features) -> (*, out_features)."""
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        """in_features, out_features and whether there is a bias."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-d convolution of (N, in_channels, H, W) (or (C, H, W)) into (N, out_channels, H', W'):
    weight (out_channels, in_channels / groups, kH, kW), bias (out_channels,) or None, both
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) at first, fan_in = in_channels / groups * kH * kW (PyTorch's
    default). kernel_size, stride, padding and dilation are ints or pairs; padding also 'valid' or
    'same'. Only padding_mode='zeros'. float32 unless dtype is given."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        _on_cpu(device, "Conv2d")
        two = _vgF._two
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must both be "
                             f"divisible by groups {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode {padding_mode!r} is not supported (only 'zeros')")
        self.kernel_size = two(kernel_size, "kernel_size", "Conv2d")
        if min(self.kernel_size) < 1:
            raise ValueError(f"Conv2d: kernel_size must be positive, got {self.kernel_size}")
        self.stride, self.dilation = two(stride, "stride", "Conv2d"), two(dilation, "dilation", "Conv2d")
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Conv2d: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = two(padding, "padding", "Conv2d")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.padding_mode = padding_mode
        self.weight = _empty((out_channels, in_channels // groups) + self.kernel_size, dtype)
        self.bias = _empty((out_channels,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """PyTorch's initialisation: weight by kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), ...)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        """input (N, in_channels, H, W) or (in_channels, H, W) -> (N, out_channels, H', W')."""
        x = input
        if x.ndim not in (3, 4) or x.shape[-3] != self.in_channels:
            raise ValueError(f"Conv2d: expected input of shape (N, {self.in_channels}, H, W), got {x.shape}")
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        """The sizes and the settings that differ from the defaults, as PyTorch shows them."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    """max_pool2d as a module: windows of kernel_size at stride (default kernel_size)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        if return_indices:
            raise ValueError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, False, ceil_mode

    def forward(self, input):
        """Maxima of each window: (N, C, H', W')."""
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        """The window settings."""
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """avg_pool2d as a module (count_include_pad=True, ceil_mode=False by default, as PyTorch)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        """Means of each window: (N, C, H', W')."""
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        """The window settings."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """adaptive_avg_pool2d as a module: (N, C, H, W) -> (N, C, *output_size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        """Means over output_size bins of each plane."""
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self):
        """The output size."""
        return f"output_size={self.output_size}"


class Flatten(Module):
    """flatten(input, start_dim, end_dim): by default (N, C, H, W) -> (N, C * H * W)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        """input with axes start_dim..end_dim merged."""
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        """start_dim and end_dim."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the rest by 1 / (1 - p); in
    evaluation, the identity. Masks come from tapegrad.init's generator."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input):
        """input with dropout applied in training (a new mask each call)."""
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        """p and inplace."""
        return f"p={self.p}, inplace={self.inplace}"


def _activation(name, fn, doc):
    def forward(self, input):
        return fn(input)

    forward.__doc__ = f"{name} of input, element-wise."
    return type(name, (Module,), {"__doc__": doc, "forward": forward, "__module__": __name__})


Sigmoid = _activation("Sigmoid", F.sigmoid, "1 / (1 + exp(-x)) element-wise, as a module.")
Tanh = _activation("Tanh", F.tanh, "tanh(x) element-wise, as a module.")
SiLU = _activation("SiLU", F.silu, "x * sigmoid(x) element-wise, as a module.")
LogSigmoid = _activation("LogSigmoid", F.logsigmoid, "log(sigmoid(x)) element-wise, as a module.")


class ReLU(Module):
    """max(x, 0) element-wise, as a module (inplace is accepted and computes out of place)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        """relu(input)."""
        return F.relu(input)

    def extra_repr(self):
        """'inplace=True' when set."""
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x where x > 0, negative_slope * x elsewhere, as a module."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        """leaky_relu(input, negative_slope)."""
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        """The slope."""
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Softplus(Module):
    """log(1 + exp(beta x)) / beta (x itself above threshold), as a module."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        """softplus(input, beta, threshold)."""
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        """beta and threshold."""
        return f"beta={self.beta}, threshold={self.threshold}"


class Softmax(Module):
    """Softmax along dim, as a module."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        """softmax(input, dim)."""
        return F.softmax(input, self.dim)

    def extra_repr(self):
        """The dim."""
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along dim, as a module."""

    def forward(self, input):
        """log_softmax(input, dim)."""
        return F.log_softmax(input, self.dim)


class _BatchNorm(Module):
    """Normalises each channel over the batch (and the other axes): (x - mean) / sqrt(var + eps)
    * weight + bias, weight and bias of shape (C,). In training (or without tracked statistics)
    mean and biased variance come from the batch, and running_mean / running_var are updated with
    ``momentum`` (the unbiased variance; momentum=None: a cumulative average), counting batches in
    num_batches_tracked; in evaluation the running estimates are used."""

    _dims = ()  # the input ranks a subclass takes

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None, *, bias=True):
        super().__init__()
        _on_cpu(device, type(self).__name__)
        dt = numpy_dtype(dtype)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats, self.use_bias = affine, track_running_stats, bias
        self.weight = Parameter(make_tensor(np.ones(num_features, dt))) if affine else None
        self.bias = Parameter(make_tensor(np.zeros(num_features, dt))) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", make_tensor(np.zeros(num_features, dt)))
            self.register_buffer("running_var", make_tensor(np.ones(num_features, dt)))
            self.register_buffer("num_batches_tracked", make_tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self):
        """running_mean 0, running_var 1, num_batches_tracked 0."""
        if self.track_running_stats:
            write(self.running_mean, 0.0)
            write(self.running_var, 1.0)
            write(self.num_batches_tracked, 0)

    def reset_parameters(self):
        """Running statistics reset; weight 1 and bias 0."""
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        """input normalised per channel (axis 1), of the same shape."""
        x = input
        name = type(self).__name__
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            shapes = " or ".join(f"(N, {self.num_features}{', L' if d == 3 else ', H, W' if d == 4 else ''})"
                                 for d in self._dims)
            raise ValueError(f"{name}: expected input of shape {shapes}, got {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            count = x.shape[0] * math.prod(x.shape[2:])
            if count < 2:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, got input of "
                                 f"shape {x.shape}")
            mean = _vgF.mean(x, axis=axes, keepdims=True)
            var = _vgF.var(x, axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                _jit.refuse(f"runs {name} in training mode (its running statistics are updated outside the tape)",
                            "call the step with the model in eval() mode, or without vg.jit")
                self._update(as_array(mean).reshape(-1), as_array(var).reshape(-1) * (count / (count - 1)))
            xhat = (x - mean) / _vgF.sqrt(var + self.eps)
        else:
            mean = as_array(self.running_mean).reshape(shape).astype(x.dtype)
            scale = (1.0 / np.sqrt(as_array(self.running_var) + self.eps)).reshape(shape).astype(x.dtype)
            xhat = (x - mean) * scale
        if self.weight is not None:
            xhat = xhat * _vgF.reshape(self.weight, shape)
        if self.bias is not None:
            xhat = xhat + _vgF.reshape(self.bias, shape)
        return xhat

    def _update(self, mean, unbiased_var):
        write(self.num_batches_tracked, as_array(self.num_batches_tracked) + 1)
        m = self.momentum
        if m is None:
            m = 1.0 / float(as_array(self.num_batches_tracked))
        for buffer, batch in ((self.running_mean, mean), (self.running_var, unbiased_var)):
            old = as_array(buffer)
            write(buffer, (1 - m) * old + m * batch.astype(old.dtype))

    def extra_repr(self):
        """The settings, as PyTorch shows them."""
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    __doc__ = "Batch normalisation of (N, C) or (N, C, L) inputs per channel C.\n\n    " + _BatchNorm.__doc__
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    __doc__ = "Batch normalisation of images (N, C, H, W) per channel C.\n\n    " + _BatchNorm.__doc__
    _dims = (4,)


# ---- losses ----

class _Loss(Module):
    """A loss function as a module; reduction is 'mean', 'sum' or 'none'."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        F._check_reduction(reduction, type(self).__name__)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", None if weight is None else
                             (weight if isinstance(weight, TensorNode) else make_tensor(np.asarray(weight))))


class CrossEntropyLoss(_WeightedLoss):
    """cross_entropy(input, target): logits (N, C) against class targets (N,) (int64 tensors or
    arrays) or class probabilities, with weight, ignore_index and label_smoothing."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        """The loss: a 0-d tensor (per instance with reduction='none')."""
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """nll_loss(input, target): log-probabilities (N, C) against class targets (N,)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        """The loss: a 0-d tensor (per instance with reduction='none')."""
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """binary_cross_entropy(input, target): probabilities against targets of the same shape."""

    def forward(self, input, target):
        """The loss: a 0-d tensor (element-wise with reduction='none')."""
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """binary_cross_entropy_with_logits(input, target): logits against targets of the same shape."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        as_buffer = (lambda v: None if v is None else v if isinstance(v, TensorNode) else make_tensor(np.asarray(v)))
        self.register_buffer("weight", as_buffer(weight))
        self.register_buffer("pos_weight", as_buffer(pos_weight))

    def forward(self, input, target):
        """The loss: a 0-d tensor (element-wise with reduction='none')."""
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class MSELoss(_Loss):
    """mse_loss(input, target): squared differences, reduced."""

    def forward(self, input, target):
        """The loss: a 0-d tensor (element-wise with reduction='none')."""
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """l1_loss(input, target): absolute differences, reduced."""

    def forward(self, input, target):
        """The loss: a 0-d tensor (element-wise with reduction='none')."""
        return F.l1_loss(input, target, reduction=self.reduction)


__all__ = [
    "AdaptiveAvgPool2d", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "BatchNorm1d", "BatchNorm2d", "Conv2d",
    "CrossEntropyLoss", "Dropout", "Flatten", "Identity", "IncompatibleKeys", "L1Loss", "LeakyReLU", "Linear",
    "LoadStateDictError", "LogSigmoid", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList",
    "NLLLoss", "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax", "Softplus", "Tanh", "functional",
    "init",
]
