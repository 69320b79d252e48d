"""The PyTorch dialect's tensors: dtypes, factories, and the methods PyTorch code calls.

A node knows its dialect (``node.dialect``): tensors made here (``tensor``, ``zeros``, ``randn``
..., ``from_numpy``), the parameters of ``tapegrad.nn`` and everything computed from one of them
are PyTorch's ("pytorch"); ``vg.TensorNode(...)`` and what is computed only from such nodes are
vugrad's ("vugrad"). Both run on the same engine and tape. The dialect decides only what differs
between the two libraries:

- requires_grad: False by default here, True for vugrad's TensorNode;
- ``.grad``: None until a backward reaches the tensor, then a tensor (sharing the gradient's
  memory); vugrad's is a numpy array, zeros before backward. Here only leaves and
  ``retain_grad()`` tensors keep one, as in PyTorch;
- in-place changes (``x -= y``, ``x.add_(y)``, ``x[i] = v``): always in the tensor's memory, and
  recorded on the graph when it is part of one (PyTorch's rules, with version checks);
  vugrad's TensorNode makes a new node for ``x += y`` when x is on a graph;
- integer and boolean tensors (labels, masks, ``argmax``) exist here; vugrad's are float;
- ``x.max(dim)`` returns (values, indices); ``repr`` reads ``tensor([...], grad_fn=<...>)``.
"""

import builtins
import collections
import math

import numpy as np

from . import _core, functional, init, ops
from .core import TensorNode, is_grad_enabled, no_grad

float32 = float = np.dtype(np.float32)
float64 = double = np.dtype(np.float64)
int64 = long = np.dtype(np.int64)
bool = np.dtype(np.bool_)  # noqa: A001 (PyTorch's name)

_DEFAULT = [float32]


def set_default_dtype(dtype):
    """The dtype of tensors made from Python floats (float32 unless changed; float64 allowed)."""
    dtype = np.dtype(dtype)
    if dtype not in (float32, float64):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported, got {dtype}")
    _DEFAULT[0] = dtype


def get_default_dtype():
    """The dtype of tensors made from Python floats (float32 by default)."""
    return _DEFAULT[0]


def _dtype(dtype, op):
    if dtype is None:
        return None
    if dtype is builtins.float:
        return float64
    if dtype is builtins.int:
        return int64
    if dtype is builtins.bool:
        return bool
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: unsupported dtype {dtype!r}") from None
    if d.kind in "iu":
        return int64
    if d.kind not in "fb" or (d.kind == "f" and d.itemsize not in (4, 8)):
        raise TypeError(f"{op}: unsupported dtype {d} (float32, float64, int64 and bool are)")
    return d


def is_tensor(obj):
    """Whether obj is a tensor (a TensorNode of either dialect)."""
    return isinstance(obj, TensorNode)


def _leaf(array, requires_grad=False, share=False):
    return _core.tensor_leaf(array, requires_grad, share)


def _plain(data, op):
    """(numpy array of data, whether its floats came only from Python numbers)."""
    if isinstance(data, TensorNode):
        return np.array(data.value), False
    if isinstance(data, np.ndarray):
        return data, False
    if isinstance(data, np.generic):
        return np.asarray(data), False
    if isinstance(data, (list, tuple)):
        parts = [_plain(d, op) for d in data]
        weak = builtins.all(w for _, w in parts)
        try:
            return np.array([p for p, _ in parts]), weak
        except ValueError as e:
            raise ValueError(f"{op}: the nested sequences do not form a rectangular array ({e})") from None
    if isinstance(data, (builtins.bool, builtins.int, builtins.float)):
        return np.asarray(data), True
    try:
        return np.asarray(data), False
    except Exception as e:
        raise TypeError(f"{op}: cannot make a tensor from {type(data).__name__} ({e})") from None


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (nested lists of numbers or 0-d tensors, numpy arrays
    and scalars, tensors). Python floats give the default dtype (float32), Python ints int64, bools
    bool; numpy data keeps its dtype (float64 stays float64)."""
    array, weak = _plain(data, "tensor")
    if array.dtype.kind == "O":
        raise TypeError("tensor: cannot make a tensor of Python objects")
    dtype = _dtype(dtype, "tensor")
    if dtype is None and array.dtype.kind == "f" and weak:
        dtype = get_default_dtype()
    if dtype is not None:
        array = array.astype(dtype)
    return _leaf(array, requires_grad)


def as_tensor(data, dtype=None):
    """data as a tensor: a tensor of that dtype is itself; a numpy array shares its memory when it can."""
    if isinstance(data, TensorNode) and (dtype is None or data.dtype == _dtype(dtype, "as_tensor")):
        return data
    if isinstance(data, np.ndarray) and dtype is None:
        return from_numpy(data)
    return tensor(data, dtype)


def from_numpy(array):
    """A tensor sharing the memory of a numpy array (changes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy array, got {type(array).__name__}")
    if array.dtype.kind in "iu" and array.dtype != np.int64 or not array.flags.c_contiguous:
        raise TypeError(f"from_numpy: memory can be shared only with a C-contiguous float32, float64, int64 or "
                        f"bool array, got a {'non-contiguous ' if not array.flags.c_contiguous else ''}"
                        f"{array.dtype} array (use tapegrad.tensor(array) for a copy)")
    return _leaf(array, share=True)


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if len(size) == 1 and isinstance(size[0], TensorNode):
        size = tuple(size[0].tolist())
    for s in size:
        if not isinstance(s, (builtins.int, np.integer)) or isinstance(s, builtins.bool):
            raise TypeError(f"{op}: sizes must be integers, got {s!r}")
        if s < 0:
            raise ValueError(f"{op}: negative size {s} in {tuple(size)}")
    return tuple(builtins.int(s) for s in size)


# How each factory makes its values from (shape, dtype); the random ones draw from tapegrad's generator.
_MAKERS = {
    "zeros": lambda s, d: np.zeros(s, d),
    "ones": lambda s, d: np.ones(s, d),
    "empty": lambda s, d: np.empty(s, d),
    "rand": lambda s, d: init.generator().random(s).astype(d),
    "randn": lambda s, d: init.generator().standard_normal(s).astype(d),
}
_RANDOM = ("rand", "randn")


def _filled(name):
    make = _MAKERS[name]

    def factory(*size, dtype=None, requires_grad=False):
        shape = _size(size, name)
        d = _dtype(dtype, name) or get_default_dtype()
        return _leaf(make(shape, d), requires_grad)

    factory.__name__ = factory.__qualname__ = name
    return factory


zeros, ones, empty, rand, randn = (_filled(name) for name in _MAKERS)
zeros.__doc__ = "A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``; default dtype float32."
ones.__doc__ = "A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``; default dtype float32."
empty.__doc__ = "A tensor whose values are not set: ``empty(2, 3)``; default dtype float32."
rand.__doc__ = "Uniform samples in [0, 1) from tapegrad's generator (``manual_seed``): ``rand(2, 3)``."
randn.__doc__ = "Standard-normal samples from tapegrad's generator (``manual_seed``): ``randn(2, 3)``."


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor of ``size`` filled with ``fill_value`` (its dtype follows the value, as PyTorch)."""
    if dtype is None:
        dtype = (bool if isinstance(fill_value, builtins.bool) else
                 int64 if isinstance(fill_value, (builtins.int, np.integer)) else get_default_dtype())
    return _leaf(np.full(_size((size,), "full"), fill_value, _dtype(dtype, "full")), requires_grad)


def randint(low, high=None, size=None, dtype=None, requires_grad=False):
    """Integers in [low, high) (``randint(high, size)`` from 0), int64 by default."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: expected randint(low, high, size) or randint(high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    values = init.generator().integers(low, high, _size((size,), "randint"))
    return _leaf(values.astype(_dtype(dtype, "randint") or int64), requires_grad)


def _like(name):
    make, op = _MAKERS[name], name + "_like"

    def factory(t, dtype=None, requires_grad=False):
        d = _dtype(dtype, op) or t.dtype
        if name in _RANDOM and d.kind != "f":
            raise TypeError(f"{op}: needs a float dtype, the tensor is {d} (pass dtype=tapegrad.float)")
        return _leaf(make(t.shape, d), requires_grad)

    factory.__name__ = factory.__qualname__ = op
    factory.__doc__ = f"A new tensor of t's shape (and dtype, unless given), as ``{name}``."
    return factory


zeros_like, ones_like, empty_like, rand_like, randn_like = (_like(name) for name in _MAKERS)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    """A tensor of t's shape (and dtype, unless given) filled with fill_value."""
    return _leaf(np.full(t.shape, fill_value, _dtype(dtype, "full_like") or t.dtype), requires_grad)


def _number(x):
    return x.item() if isinstance(x, TensorNode) else x


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Numbers from start (default 0) up to, not including, end: int64 when all are integers, else
    the default float dtype."""
    if end is None:
        start, end = 0, start
    start, end, step = _number(start), _number(end), _number(step)
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    integral = builtins.all(isinstance(v, (builtins.int, np.integer)) for v in (start, end, step))
    d = _dtype(dtype, "arange") or (int64 if integral else get_default_dtype())
    n = builtins.max(0, math.ceil((end - start) / step))
    return _leaf((start + step * np.arange(n)).astype(d), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    """``steps`` evenly spaced numbers from start to end (both included); default dtype float32."""
    if not isinstance(steps, (builtins.int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    d = _dtype(dtype, "linspace") or get_default_dtype()
    return _leaf(np.linspace(_number(start), _number(end), builtins.int(steps)).astype(d), requires_grad)


def meshgrid(*tensors, indexing="ij"):
    """Coordinate grids of 1-d tensors, as torch.meshgrid (indexing "ij" or "xy")."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in tensors:
        if t.ndim != 1:
            raise ValueError(f"meshgrid: expects 1-d tensors, got one of shape {t.shape}")
    shape = [t.shape[0] for t in tensors]
    if indexing == "xy" and len(shape) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    grids = []
    for k, t in enumerate(tensors):
        axis = k if indexing == "ij" or len(shape) < 2 or k > 1 else 1 - k
        view = [1] * len(shape)
        view[axis] = -1
        grids.append(functional.broadcast_to(functional.reshape(t, tuple(view)), tuple(shape)) if t.requires_grad
                     else _leaf(np.broadcast_to(t.value.reshape(view), shape).copy()))
    return tuple(grids)


def _tensors(tensors, op):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: expects a non-empty sequence of tensors")
    torch = builtins.any(isinstance(t, TensorNode) and t.dialect == "pytorch" for t in tensors)
    # arrays and numbers join as constants of the nodes' dialect (vg.stack of vugrad nodes stays vugrad's)
    return [t if isinstance(t, TensorNode) else tensor(t) if torch else functional._node(t, op) for t in tensors]


def cat(tensors, dim=0, axis=None):
    """Tensors joined along an existing dimension ``dim``."""
    tensors = _tensors(tensors, "cat")
    dim = dim if axis is None else axis
    if builtins.any(not np.issubdtype(t.dtype, np.floating) for t in tensors):
        return _leaf(np.concatenate([t.value for t in tensors], axis=dim))
    return functional.concatenate(tensors, axis=dim)


concatenate = cat


def stack(tensors, dim=0, axis=None):
    """Tensors of one shape joined along a new dimension ``dim`` (or ``axis``)."""
    tensors = _tensors(tensors, "stack")
    dim = dim if axis is None else axis
    if builtins.any(not np.issubdtype(t.dtype, np.floating) for t in tensors):
        return _leaf(np.stack([t.value for t in tensors], axis=dim))
    return functional.stack(tensors, axis=dim)


def manual_seed(seed):
    """Seed tapegrad's generator (rand, randn, initialisers, dropout, shuffles)."""
    return init.manual_seed(seed)


def numel(t):
    """The number of elements of t."""
    return builtins.int(np.prod(t.shape, dtype=np.int64))


def from_dlpack(obj):
    """A tensor sharing the memory of any object with ``__dlpack__`` (numpy arrays, torch tensors)."""
    return from_numpy(np.from_dlpack(obj))


# ---- functions under PyTorch's names and argument names ----

def _is_float(x):
    return x.dtype.kind == "f"


def _dim_args(dim, keepdim, axis, keepdims):
    return (dim if axis is None else axis), (keepdim or keepdims)


def _reduced(name, op):
    def function(x, dim=None, keepdim=False, *, axis=None, keepdims=False, dtype=None):
        x = x if isinstance(x, TensorNode) else functional._node(x, name)
        dim, keepdim = _dim_args(dim, keepdim, axis, keepdims)
        if dtype is not None:
            x = _cast(x, dtype)
        if not _is_float(x):
            value = getattr(np, name)(x.value, axis=dim, keepdims=keepdim)
            if name == "mean":
                raise TypeError(f"mean: needs a float tensor, got {x.dtype} (call .float() first)")
            if x.dtype == bool and name == "sum":
                value = value.astype(np.int64)
            return _leaf(np.asarray(value))
        return op(x, axis=dim, keepdims=keepdim)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"{name} over ``dim`` (None: all; an int or a tuple), keeping it as size 1 with keepdim."
    return function


sum = _reduced("sum", functional.sum)  # noqa: A001
mean = _reduced("mean", functional.mean)

MaxResult = collections.namedtuple("max", "values indices")


def _extreme(name, reduce_fn, arg_fn):
    def function(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
        x = x if isinstance(x, TensorNode) else functional._node(x, name)
        if isinstance(dim, TensorNode):  # torch.max(a, b): element-wise
            return (functional.maximum if name == "max" else functional.minimum)(x, dim)
        dim, keepdim = _dim_args(dim, keepdim, axis, keepdims)
        if x.dialect == "vugrad":  # numpy's max: the values only
            return reduce_fn(x, axis=dim, keepdims=keepdim)
        if dim is None:
            return (_leaf(np.asarray(getattr(np, name)(x.value))) if not _is_float(x) else reduce_fn(x))
        indices = _leaf(np.asarray(arg_fn(x.value, axis=dim, keepdims=keepdim), dtype=np.int64))
        if not _is_float(x):
            return MaxResult(_leaf(np.asarray(getattr(np, name)(x.value, axis=dim, keepdims=keepdim))), indices)
        return MaxResult(reduce_fn(x, axis=dim, keepdims=keepdim), indices)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = (f"The {name}imum of all elements, or with ``dim`` a named tuple (values, indices) "
                        f"along it, as torch.{name}; torch.{name}(a, b) is element-wise. For vugrad's "
                        f"TensorNode, numpy's {name} (the values along ``axis``).")
    return function


max = _extreme("max", functional.max, np.argmax)  # noqa: A001
min = _extreme("min", functional.min, np.argmin)  # noqa: A001


def argmax(x, dim=None, keepdim=False):
    """Indices (int64) of the maxima along ``dim`` (None: of the flattened tensor)."""
    return _leaf(np.asarray(np.argmax(x.value, axis=dim, keepdims=keepdim if dim is not None else False),
                            dtype=np.int64))


def argmin(x, dim=None, keepdim=False):
    """Indices (int64) of the minima along ``dim`` (None: of the flattened tensor)."""
    return _leaf(np.asarray(np.argmin(x.value, axis=dim, keepdims=keepdim if dim is not None else False),
                            dtype=np.int64))


def all(x, dim=None, keepdim=False):  # noqa: A001
    """Whether all elements (along ``dim``) are non-zero: a bool tensor."""
    return _leaf(np.asarray(np.all(x.value, axis=dim, keepdims=keepdim)))


def any(x, dim=None, keepdim=False):  # noqa: A001
    """Whether any element (along ``dim``) is non-zero: a bool tensor."""
    return _leaf(np.asarray(np.any(x.value, axis=dim, keepdims=keepdim)))


def flatten(x, start_dim=0, end_dim=-1):
    """Dimensions start_dim..end_dim merged into one (``torch.flatten(x, 1)`` keeps the batch)."""
    if not _is_float(x):
        shape = x.shape
        n = len(shape)
        s, e = start_dim % builtins.max(n, 1), end_dim % builtins.max(n, 1)
        merged = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:] if n else (1,)
        return _leaf(x.value.reshape(merged), share=False)
    return functional.flatten(x, start_dim, end_dim)


def transpose(x, *dims, axes=None):
    """``transpose(x, dim0, dim1)`` swaps two dimensions (PyTorch); ``transpose(x)`` and
    ``transpose(x, axes)`` are numpy's."""
    if len(dims) == 2 and builtins.all(isinstance(d, (builtins.int, np.integer)) for d in dims):
        order = list(range(x.ndim))
        order[dims[0]], order[dims[1]] = order[dims[1]], order[dims[0]]
        return functional.transpose(x, order)
    return functional.transpose(x, dims[0] if dims else axes)


def permute(x, *dims):
    """x with its dimensions in the order ``dims``."""
    return functional.transpose(x, _shape(dims))


def squeeze(x, dim=None, *, axis=None):
    """x without size-1 dimensions (or only ``dim``). PyTorch's tensors keep a ``dim`` whose size
    is not 1; numpy's rule (vugrad's TensorNode, or ``axis=``) refuses it."""
    if axis is None and x.dialect == "pytorch" and dim is not None and x.shape and x.shape[dim] != 1:
        return x
    return functional.squeeze(x, dim if axis is None else axis)


def unsqueeze(x, dim=None, *, axis=None):
    """x with a size-1 dimension inserted at ``dim`` (or numpy's ``axis``)."""
    return functional.unsqueeze(x, dim if axis is None else axis)


def matmul(a, b):
    """Matrix product with numpy's (and PyTorch's) broadcasting rules."""
    return a @ b


def mul(a, b):
    """a * b, element-wise with broadcasting."""
    return a * b


def clamp(x, min=None, max=None):  # noqa: A002
    """x limited to [min, max] (either may be None)."""
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return functional.clip(x, lo, hi)


clip = clamp


def _shape(dims):
    return tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)


def _cast(x, dtype):
    """x in ``dtype``: float to float on the graph (AsType); anything else without gradient."""
    d = _dtype(dtype, "to")
    if d == x.dtype:
        return x
    if d.kind == "f" and _is_float(x) and x.requires_grad:
        return functional.astype(x, d)
    return _leaf(x.value.astype(d))


# ---- operators on integer and boolean tensors (the kernels take floats only) ----

_NUMPY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
          "power": np.power, "equal": np.equal, "not_equal": np.not_equal, "less": np.less,
          "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal,
          "maximum": np.maximum, "minimum": np.minimum, "matmul": np.matmul}
_NAMES = [row["name"] for row in _core.op_table()]


def _integer_operator(op, node, other, reflected):
    """self <op> other where an operand is an integer or boolean tensor: with a float tensor, the
    other is converted to its dtype (as PyTorch promotes) and the engine runs the op; otherwise
    numpy computes it (no gradient), integer division and Python floats giving the default float."""
    name = _NAMES[op]
    a, b = (other, node) if reflected else (node, other)
    fa = isinstance(a, TensorNode) and _is_float(a)
    fb = isinstance(b, TensorNode) and _is_float(b)
    if fa or fb:
        like = a if fa else b
        a = a if fa else _cast(a, like.dtype) if isinstance(a, TensorNode) else a
        b = b if fb else _cast(b, like.dtype) if isinstance(b, TensorNode) else b
        return _core.apply(op, [a if isinstance(a, TensorNode) else _leaf(np.asarray(a, like.dtype)),
                                b if isinstance(b, TensorNode) else _leaf(np.asarray(b, like.dtype))], {})
    if name not in _NUMPY:
        raise TypeError(f"{name}: not defined for {node.dtype} tensors")
    va = a.value if isinstance(a, TensorNode) else a
    vb = b.value if isinstance(b, TensorNode) else b
    result = np.asarray(_NUMPY[name](va, vb))
    weak_float = builtins.any(isinstance(v, builtins.float) for v in (va, vb))
    if result.dtype == np.float64 and (weak_float or name == "divide"):
        result = result.astype(get_default_dtype())
    return _leaf(result)


_core.set_integer_operator(_integer_operator)


class _TensorType(type):
    """isinstance(x, Tensor) is true for every TensorNode, of either dialect."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, TensorNode)

    def __subclasscheck__(cls, sub):
        return isinstance(sub, type) and issubclass(sub, TensorNode)


class Tensor(metaclass=_TensorType):
    """PyTorch's name for the tensor type: ``isinstance(x, Tensor)`` holds for every TensorNode.

    ``Tensor(data)`` makes a default-dtype (float32) tensor from data, ``Tensor(2, 3)`` one of
    that shape whose values are not set, as torch.Tensor does.
    """

    def __new__(cls, *args):
        if args and builtins.all(isinstance(a, (builtins.int, np.integer)) and not isinstance(a, builtins.bool)
                                 for a in args):
            return empty(*args)
        if len(args) != 1:
            raise TypeError("Tensor: expected Tensor(data) or Tensor(*sizes)")
        return tensor(args[0], dtype=get_default_dtype())
