"""TensorNode's methods and operators, all installed here.

TensorNode itself is a C++ class with the graph's attributes (value, grad, source, backward ...).
Its numpy-style methods come from two places, both read below: the op table's rows (each row's
``methods`` call its function, each row's ``operators`` call the engine directly: ``a + b`` is one
C++ call), and the short list of methods made of several ops or with numpy's variadic signatures.
"""

import numpy as np

from . import _core, functional, ops
from . import pytorch as pt
from .core import TensorNode, is_grad_enabled, no_grad


def _shape_arg(shape):
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _truth(x):
    if x.value.size != 1:
        raise ValueError(f"the truth value of a TensorNode of shape {x.shape} is ambiguous; "
                         "use .value.any() or .value.all()")
    return bool(x.value.reshape(()))


def _inplace(fn, symbol):
    def method(x, other):
        if x.source is not None or (is_grad_enabled() and isinstance(other, TensorNode) and other.requires_grad):
            return fn(x, other)  # part of a graph: a new node, as x = x <op> other, so gradients stay right
        if x.requires_grad and is_grad_enabled():
            raise RuntimeError(f"in-place {symbol}= on a leaf node that requires grad would bypass the graph; "
                               f"write updates inside `with vg.no_grad():`, or use x = x {symbol} other")
        with no_grad():
            result = fn(x.detach(), other)
        if result.shape != x.shape:
            raise ValueError(f"in-place {symbol}=: result of shape {result.shape} does not fit a node of shape {x.shape}")
        np.copyto(x.value, result.value, casting="same_kind")
        x._bump_version()  # graphs that saved the old value will refuse to backward through it
        return x

    method.__name__ = fn.__name__
    method.__doc__ = (f"x {symbol}= other: in place on a leaf (bumping its version); x = x {symbol} other when "
                      "x or other is part of a graph")
    return method


def _reshape(x, *shape):
    """The same elements in a new shape: ``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
    return functional.reshape(x, _shape_arg(shape))


def _transpose(x, *axes):
    """Axes reversed (no arguments) or permuted: ``x.transpose(1, 0, 2)``."""
    return functional.transpose(x, _shape_arg(axes) if axes else None)


def _expand(x, *shape):
    """numpy's broadcast_to under PyTorch's name: ``x.expand(3, 4)``."""
    return functional.broadcast_to(x, _shape_arg(shape))


# ---- PyTorch's methods (tapegrad.pytorch says where the dialects differ) ----

def _torch(x):
    return x.dialect == "pytorch"


def _key(x, key):
    """An index key with tensors in it read as PyTorch does: integer tensors as index arrays,
    boolean ones as masks (vugrad's TensorNode: any tensor as a mask of its non-zero values)."""
    def one(k):
        if not isinstance(k, TensorNode):
            return k
        if k.dtype.kind == "f":
            if _torch(x) or _torch(k):
                raise IndexError(f"tensors used as indices must be integer or bool tensors, got {k.dtype}")
            return k.value != 0
        return k.value
    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


def _getitem(x, key):
    """x[key] with numpy's (and PyTorch's) indexing; integer and boolean tensors as index arrays."""
    key = _key(x, key)
    if x.dtype.kind != "f":
        try:
            return pt._leaf(np.array(x.value[key]))
        except IndexError as e:
            raise IndexError(f"getitem: {e} (indexing a tensor of shape {x.shape})") from None
    return functional.getitem(x, key)


def _setitem(x, key, value):
    """x[key] = value, in place (recorded on the graph when x or value is part of one)."""
    key = _key(x, key)
    if isinstance(value, TensorNode) and value.dtype != x.dtype:
        value = pt._cast(value, x.dtype) if x.dtype.kind == "f" else value.value
    if x.dtype.kind != "f" or not is_grad_enabled() or not (
            x.requires_grad or (isinstance(value, TensorNode) and value.requires_grad)):
        if x.requires_grad and x.is_leaf and is_grad_enabled():
            raise RuntimeError("__setitem__: a leaf tensor that requires grad cannot be changed in place while "
                               "grad mode is on; do it under `with tapegrad.no_grad():` or through .data")
        try:
            _core.writable(x)[key] = value.value if isinstance(value, TensorNode) else value
        except (IndexError, ValueError) as e:
            raise type(e)(f"__setitem__: {e} (a tensor of shape {x.shape})") from None
        x._bump_version()
        return
    _core.inplace(x, lambda t: functional.setitem(t, key, value), "__setitem__")


def _operand(x, other):
    if isinstance(other, TensorNode) and x.dtype.kind == "f" and other.dtype != x.dtype and other.dtype.kind != "f":
        return pt._cast(other, x.dtype)
    return other


def _inplace_method(name, fn):
    def method(x, other, *, alpha=None):
        other = _operand(x, other)
        if alpha is not None:
            other = other * alpha
        _core.inplace(x, lambda t: fn(t, other), name)
        return x

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In place: x.{name}(other) sets x to x {fn.__name__} other (``alpha`` scales other)."
    return method


def _dialect_inplace(torch_method, vugrad_method):
    def method(x, other):
        return torch_method(x, other) if _torch(x) else vugrad_method(x, other)

    method.__name__ = vugrad_method.__name__
    method.__doc__ = ("x op= other. PyTorch's tensors: always in place (recorded on the graph when x is on one); "
                      "vugrad's TensorNode: " + vugrad_method.__doc__)
    return method


def _zero_(x):
    """In place: every element 0."""
    return _fill_(x, 0)


def _fill_(x, value):
    """In place: every element ``value`` (a gradient flows to a tensor value)."""
    _setitem(x, Ellipsis, value)
    return x


def _copy_(x, src):
    """In place: x's values from ``src`` (broadcast to x's shape; a gradient flows to src)."""
    _setitem(x, Ellipsis, src)
    return x


def _clamp_(x, min=None, max=None):  # noqa: A002
    """In place: x limited to [min, max]."""
    _core.inplace(x, lambda t: pt.clamp(t, min, max), "clamp_")
    return x


def _random_(name, draw):
    def method(x, *args):
        with no_grad():
            _setitem(x, Ellipsis, draw(x.shape, *args).astype(x.dtype))
        return x

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In place, without a graph: values drawn from tapegrad's generator ({name}(*parameters))."
    return method


def _data(x):
    """The tensor's values as a tensor without a graph, sharing its memory."""
    return x.detach()


def _set_data(x, value):
    x.value = value.value if isinstance(value, TensorNode) else value


def _numpy(x, force=False):
    """The values as a numpy array sharing the tensor's memory (changes show in both)."""
    if x.requires_grad and not force:
        raise RuntimeError("numpy(): the tensor requires grad; call tensor.detach().numpy() instead")
    return _core.writable(x)


def _tolist(x):
    """The values as (nested lists of) Python numbers."""
    return x.value.tolist()


def _one(x, kind, name):
    if x.value.size != 1:
        raise TypeError(f"only one-element tensors can be converted to Python scalars ({name}() of a tensor "
                        f"of shape {x.shape})")
    return kind(x.value.reshape(()).item())


def _index(x):
    if x.dtype.kind not in "iub" or x.value.size != 1:
        raise TypeError(f"only integer tensors of one element can be used as an index (got {x.dtype}, shape {x.shape})")
    return int(x.value.reshape(()).item())


def _format(x, spec):
    if x.value.size == 1 and spec:
        return format(x.value.reshape(()).item(), spec)
    return format(repr(x), spec)


def _iter(x):
    if x.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (x[i] for i in range(x.shape[0]))


def _array(x, dtype=None, copy=None):
    a = x.value
    if dtype is not None:
        a = a.astype(dtype)
    return a.copy() if copy else a


_VUGRAD_REPR = TensorNode.__repr__


def _repr(x):
    """PyTorch's tensors: ``tensor([...], grad_fn=<...>)``; vugrad's: TensorNode[name, size, dtype, source]."""
    if not _torch(x):
        return _VUGRAD_REPR(x)
    v = x.value
    integral = v.dtype.kind != "f" or not np.all(np.isfinite(v)) or np.all(v == np.round(v))
    body = np.array2string(v, separator=", ", prefix="tensor(", precision=4,
                           floatmode="maxprec" if integral else "fixed")
    extras = []
    if x.dtype not in (pt.get_default_dtype(), np.int64, np.bool_):
        extras.append(f"dtype=tapegrad.{x.dtype.name}")
    if x.source is not None:
        extras.append(f"grad_fn=<{_op_name(x.source)}Backward>")
    elif x.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body] + extras) + ")"


def _op_name(op_node):
    op = op_node.op
    return op.__name__ if isinstance(op, type) else str(op)


def _next_functions(op_node):
    """PyTorch's view of the graph: ((the op that made each input, or None for a leaf, 0), ...)."""
    return tuple((x.source, 0) for x in op_node.inputs)


def _rebuild(value, dialect, requires_grad, name):
    if dialect == "pytorch":
        node = _core.tensor_leaf(value, requires_grad, True)
    else:
        node = TensorNode(value, requires_grad=requires_grad)
    if name is not None:
        node.name = name
    return node


def _reduce(x):
    """Pickling (and copy.deepcopy) keep the value, dtype, dialect and requires_grad, not the graph."""
    return _rebuild, (np.array(x.value), x.dialect, x.requires_grad and x.is_leaf, x.name)


def _requires_grad_(x, requires_grad=True):
    """Set requires_grad (of a leaf) and return the tensor."""
    x.requires_grad = requires_grad
    return x


def _to(x, *args, dtype=None, **kwargs):
    """The tensor in another dtype (``to(tapegrad.float64)``); devices other than "cpu" are refused."""
    for a in args:
        if isinstance(a, str) or a is None:
            if a not in (None, "cpu"):
                raise ValueError(f"to: tapegrad runs on the CPU only, got device {a!r}")
        else:
            dtype = a
    if kwargs.get("device") not in (None, "cpu"):
        raise ValueError(f"to: tapegrad runs on the CPU only, got device {kwargs['device']!r}")
    return x if dtype is None else pt._cast(x, dtype)


def _caster(dtype, name):
    def method(x):
        return pt._cast(x, dtype)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The tensor as {np.dtype(dtype).name} (itself if it already is)."
    return method


def _sum(x, dim=None, keepdim=False, *, axis=None, keepdims=False, dtype=None):
    """Sum over ``dim``/``axis`` (None: all), keeping it as size 1 with keepdim/keepdims."""
    return pt.sum(x, dim, keepdim, axis=axis, keepdims=keepdims, dtype=dtype)


def _mean(x, dim=None, keepdim=False, *, axis=None, keepdims=False, dtype=None):
    """Mean over ``dim``/``axis`` (None: all), keeping it as size 1 with keepdim/keepdims."""
    return pt.mean(x, dim, keepdim, axis=axis, keepdims=keepdims, dtype=dtype)


def _extreme_method(name, vugrad_fn):
    torch_fn = getattr(pt, name)

    def method(x, dim=None, keepdim=False, *, axis=None, keepdims=False):
        if _torch(x) and axis is None:
            return torch_fn(x, dim, keepdim)
        return vugrad_fn(x, dim if axis is None else axis, keepdim or keepdims)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f"PyTorch's tensors: {name}(dim) is a named tuple (values, indices); numpy's: the "
                      f"{name}imum over ``axis``.")
    return method


def _transpose_method(x, *axes):
    """PyTorch's tensors: transpose(dim0, dim1) swaps two dimensions; vugrad's: numpy's transpose(*axes)."""
    if _torch(x) and len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
        return pt.transpose(x, *axes)
    return functional.transpose(x, _shape_arg(axes) if axes else None)


def _squeeze_method(x, dim=None, *, axis=None):
    """Size-1 dimensions removed (all, or only ``dim``; PyTorch's tensors keep a ``dim`` of another size)."""
    if _torch(x) and axis is None:
        return pt.squeeze(x, dim)
    return functional.squeeze(x, dim if axis is None else axis)


def _t(x):
    """The transpose of a matrix (a 0-d or 1-d tensor is itself)."""
    if x.ndim > 2:
        raise ValueError(f"t(): expects a tensor of at most 2 dimensions, got shape {x.shape}")
    return x if x.ndim < 2 else functional.transpose(x)


def _view(x, *shape):
    """The same memory in another shape (``view(-1, 4)``)."""
    return _reshape(x, *shape) if x.dtype.kind == "f" else pt._leaf(x.value.reshape(_shape_arg(shape)), share=True)


def _documented(fn, name, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _clone(x):
    """A copy of the tensor with its own memory, on the graph (the gradient flows back to x)."""
    return x * 1.0 if x.dtype.kind == "f" else pt._leaf(np.array(x.value))


def _add(x, y, *, alpha=1):
    """x + alpha * y."""
    return x + (y if alpha == 1 else y * alpha)


def _sub(x, y, *, alpha=1):
    """x - alpha * y."""
    return x - (y if alpha == 1 else y * alpha)


def _type(x, dtype=None):
    """The dtype's name (no argument), or the tensor converted to ``dtype``."""
    return x.dtype.name if dtype is None else pt._cast(x, dtype)


PYTORCH = {
    "data": property(_data, _set_data, doc=_data.__doc__),
    "clone": _clone,
    "numpy": _numpy, "tolist": _tolist,
    "__float__": lambda x: _one(x, float, "float"), "__int__": lambda x: _one(x, int, "int"),
    "__index__": _index, "__format__": _format, "__iter__": _iter, "__array__": _array,
    "__repr__": _repr, "__str__": _repr, "__reduce__": _reduce,
    "__dlpack__": lambda x, **kw: _core.writable(x).__dlpack__(**kw),
    "__dlpack_device__": lambda x: _core.writable(x).__dlpack_device__(),
    "__getitem__": _getitem, "__setitem__": _setitem,
    "view": _view, "t": _t,
    "dim": _documented(lambda x: x.ndim, "dim", "The number of dimensions."),
    "numel": _documented(lambda x: int(x.value.size), "numel", "The number of elements."),
    "ndimension": _documented(lambda x: x.ndim, "ndimension", "The number of dimensions."),
    "nelement": _documented(lambda x: int(x.value.size), "nelement", "The number of elements."),
    "requires_grad_": _requires_grad_,
    "grad_fn": property(lambda x: x.source, doc="The OpNode that made this tensor (None for leaves)."),
    "to": _to, "double": _caster(pt.float64, "double"), "float": _caster(pt.float32, "float"),
    "long": _caster(pt.int64, "long"), "int": _caster(pt.int64, "int"), "bool": _caster(pt.bool, "bool"),
    "type": _type,
    "sum": _sum, "mean": _mean, "max": _extreme_method("max", functional.max),
    "min": _extreme_method("min", functional.min),
    "argmax": pt.argmax, "argmin": pt.argmin, "all": pt.all, "any": pt.any,
    "matmul": pt.matmul, "mul": pt.mul, "add": _add, "sub": _sub,
    "div": _documented(lambda x, y: x / y, "div", "x / y, element-wise with broadcasting."),
    "pow": _documented(lambda x, y: x ** y, "pow", "x ** y, element-wise with broadcasting."),
    "permute": pt.permute, "unsqueeze": pt.unsqueeze,
    "squeeze": _squeeze_method, "transpose": _transpose_method,
    "clamp": pt.clamp, "clip": pt.clamp,
    "add_": _inplace_method("add_", functional.add), "sub_": _inplace_method("sub_", functional.subtract),
    "mul_": _inplace_method("mul_", functional.multiply), "div_": _inplace_method("div_", functional.divide),
    "zero_": _zero_, "fill_": _fill_, "copy_": _copy_, "clamp_": _clamp_,
    "uniform_": _random_("uniform_", lambda s, a=0.0, b=1.0: pt.init.generator().uniform(a, b, s)),
    "normal_": _random_("normal_", lambda s, mean=0.0, std=1.0: pt.init.generator().normal(mean, std, s)),
    "is_floating_point": _documented(lambda x: x.dtype.kind == "f", "is_floating_point",
                                     "Whether the dtype is float32 or float64."),
    "device": property(lambda x: "cpu", doc="Always 'cpu'."),
}


# Methods that are not one row's function.
COMPOSITE = {
    "reshape": _reshape, "transpose": _transpose, "expand": _expand, "flatten": functional.flatten,
    "__bool__": _truth,
    "__iadd__": _inplace(functional.add, "+"), "__isub__": _inplace(functional.subtract, "-"),
    "__imul__": _inplace(functional.multiply, "*"), "__itruediv__": _inplace(functional.divide, "/"),
}


def install():
    """Put every method and operator on TensorNode (once, at import)."""
    for r in ops.OPS:
        index = getattr(ops, r.cls)._index
        for name in r.methods:
            setattr(TensorNode, name, getattr(functional, r.function))
        for name in r.operators:
            if r.kind == ops.UNARY:  # -x, abs(x): the function itself (a UnaryFunction binds as a method)
                setattr(TensorNode, name, getattr(functional, r.function))
            else:
                setattr(TensorNode, name, _core.binary_method(index, name.startswith("__r"), name))
    for name, fn in COMPOSITE.items():
        if fn.__module__ == __name__:  # this module's own helpers show in help() under their method names
            fn.__name__ = fn.__qualname__ = name
        setattr(TensorNode, name, fn)
    for name, fn in PYTORCH.items():
        if getattr(fn, "__module__", None) == __name__ and callable(fn):
            fn.__name__ = fn.__qualname__ = name
        setattr(TensorNode, name, fn)
    for symbol, name, fn in (("+", "__iadd__", functional.add), ("-", "__isub__", functional.subtract),
                             ("*", "__imul__", functional.multiply), ("/", "__itruediv__", functional.divide)):
        setattr(TensorNode, name, _dialect_inplace(_inplace_method(name, fn), COMPOSITE[name]))
    TensorNode.T = property(lambda x: functional.transpose(x), doc="The node with its axes reversed.")
    _core.OpNode.next_functions = property(_next_functions, doc=_next_functions.__doc__)
    TensorNode.__hash__ = object.__hash__  # nodes stay usable as dict keys despite element-wise ==
    TensorNode.__array_ufunc__ = None  # numpy arrays on the left defer to our reflected operators


install()
