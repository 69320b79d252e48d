"""TensorNode's methods and operators, all installed here.

TensorNode itself is a C++ class with the graph's attributes (value, grad, source, backward ...).
Its numpy-style methods come from two places, both read below: the op table's rows (each row's
``methods`` call its function, each row's ``operators`` call the engine directly: ``a + b`` is one
C++ call), and the short list of methods made of several ops or with numpy's variadic signatures.
"""

import numpy as np

from . import _core, functional, ops
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
            if r.kind == ops.UNARY:
                setattr(TensorNode, name, _core.unary_method(index, name))
            else:
                setattr(TensorNode, name, _core.binary_method(index, name.startswith("__r"), name))
    for name, fn in COMPOSITE.items():
        if fn.__module__ == __name__:  # this module's own helpers show in help() under their method names
            fn.__name__ = fn.__qualname__ = name
        setattr(TensorNode, name, fn)
    TensorNode.T = property(lambda x: functional.transpose(x), doc="The node with its axes reversed.")
    TensorNode.__hash__ = object.__hash__  # nodes stay usable as dict keys despite element-wise ==
    TensorNode.__array_ufunc__ = None  # numpy arrays on the left defer to our reflected operators


install()
