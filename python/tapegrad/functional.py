"""Functions on TensorNodes with numpy's names, vugrad's activations and losses, and the
TensorNode methods that mirror numpy's (``x.sum(axis=1)``, ``x.T``, ``x[0, 1:]`` ...).

Every function takes TensorNodes (arrays and numbers become constants without gradient) and
returns a TensorNode; each is one engine op unless its docstring says otherwise.
"""

import numpy as np

from . import _core, ops
from .core import TensorNode, is_grad_enabled, no_grad


def _node(x, op, dtype=None):
    """x as a TensorNode: a node is itself, anything else a constant (no gradient) of ``dtype``
    (default: its own, integers becoming float64); TypeError naming ``op`` if it is not numeric."""
    if isinstance(x, TensorNode):
        return x
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{op}: cannot use a {type(x).__name__} as a tensor ({e})") from None
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{op}: unsupported dtype {array.dtype} (expected a float, integer or boolean array)")
    return TensorNode(array if dtype is None else array.astype(dtype), requires_grad=False)


def _apply(cls, x):
    """The short path of a native op without constants on one operand (per-op cost matters)."""
    return _core.apply1(cls._index, x if type(x) is TensorNode else _node(x, cls._native))


def _weak(x, like, op):
    """A Python number takes the dtype of the node it meets (x * 0.5 stays float32); arrays keep theirs."""
    is_number = isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)
    return _node(x, op, like.dtype if is_number else None)


def _pair(a, b, op):
    """Two operands, at least one a node; non-node operands become constants."""
    if isinstance(a, TensorNode):
        return a, _weak(b, a, op)
    if isinstance(b, TensorNode):
        return _weak(a, b, op), b
    return _node(a, op), _node(b, op)


# ---- element-wise, broadcasting ----

def add(a, b):
    """a + b, numpy broadcasting."""
    a, b = _pair(a, b, "add")
    return a + b


def subtract(a, b):
    """a - b, numpy broadcasting."""
    a, b = _pair(a, b, "sub")
    return a - b


def multiply(a, b):
    """a * b element-wise, numpy broadcasting."""
    a, b = _pair(a, b, "mul")
    return a * b


def divide(a, b):
    """a / b element-wise, numpy broadcasting."""
    a, b = _pair(a, b, "div")
    return a / b


def power(a, b):
    """a ** b element-wise, numpy broadcasting."""
    a, b = _pair(a, b, "pow")
    return a ** b


def _binary(cls, a, b):
    return cls.do_forward(*_pair(a, b, cls._native))


def maximum(a, b):
    """Element-wise maximum, broadcasting; on ties the gradient is shared equally."""
    return _binary(ops.Maximum, a, b)


def minimum(a, b):
    """Element-wise minimum, broadcasting; on ties the gradient is shared equally."""
    return _binary(ops.Minimum, a, b)


def equal(a, b):
    """a == b as 1.0/0.0 (no gradient)."""
    return _binary(ops.Equal, a, b)


def not_equal(a, b):
    """a != b as 1.0/0.0 (no gradient)."""
    return _binary(ops.NotEqual, a, b)


def less(a, b):
    """a < b as 1.0/0.0 (no gradient)."""
    return _binary(ops.Less, a, b)


def less_equal(a, b):
    """a <= b as 1.0/0.0 (no gradient)."""
    return _binary(ops.LessEqual, a, b)


def greater(a, b):
    """a > b as 1.0/0.0 (no gradient)."""
    return _binary(ops.Greater, a, b)


def greater_equal(a, b):
    """a >= b as 1.0/0.0 (no gradient)."""
    return _binary(ops.GreaterEqual, a, b)


# ---- element-wise, unary (same shape out) ----

def negative(x):
    """-x."""
    return _apply(ops.Negative, x)


def exp(x):
    """exp(x)."""
    return _apply(ops.Exp, x)


def log(x):
    """Natural log; nan for x < 0 and -inf at 0, as in numpy."""
    return _apply(ops.Log, x)


def sqrt(x):
    """Square root; nan for x < 0, as in numpy."""
    return _apply(ops.Sqrt, x)


def abs(x):
    """|x| (gradient 0 at 0)."""
    return _apply(ops.Abs, x)


def square(x):
    """x ** 2."""
    return _apply(ops.Square, x)


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x))."""
    return _apply(ops.Sigmoid, x)


def tanh(x):
    """Hyperbolic tangent."""
    return _apply(ops.Tanh, x)


def relu(x):
    """max(x, 0)."""
    return _apply(ops.ReLU, x)


def leaky_relu(x, slope=0.01):
    """x where x > 0, slope * x elsewhere."""
    return ops.LeakyReLU.do_forward(_node(x, ops.LeakyReLU._native), slope=slope)


def softplus(x):
    """log(1 + exp(x)), without overflow."""
    return _apply(ops.Softplus, x)


def clip(x, a_min, a_max):
    """Values limited to [a_min, a_max] (None: no bound on that side); gradient 0 outside."""
    lo = -np.inf if a_min is None else a_min
    hi = np.inf if a_max is None else a_max
    return ops.Clip.do_forward(_node(x, ops.Clip._native), lo=lo, hi=hi)


# ---- reductions: axis None (all), an int or a tuple; keepdims keeps reduced axes as size 1 ----

def _reduce(cls, x, axis, keepdims, **kwargs):
    return cls.do_forward(_node(x, cls._native), axis=axis, keepdims=keepdims, **kwargs)


def sum(x, axis=None, keepdims=False):
    """Sum over axis (all elements by default)."""
    return _reduce(ops.Sum, x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over axis (all elements by default)."""
    return _reduce(ops.Mean, x, axis, keepdims)


def max(x, axis=None, keepdims=False):
    """Maximum over axis; the gradient goes to the (first) arg-max element."""
    return _reduce(ops.Max, x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over axis; the gradient goes to the (first) arg-min element."""
    return _reduce(ops.Min, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, computed stably."""
    return _reduce(ops.LogSumExp, x, axis, keepdims)


def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over axis with numpy's ddof (0: divide by the count)."""
    return _reduce(ops.Var, x, axis, keepdims, ddof=ddof)


# ---- linear algebra ----

def matmul(a, b):
    """numpy's matmul: 1-d operands are vectors, 2-d matrices, more dimensions batches of
    matrices (batch axes broadcast)."""
    a, b = _pair(a, b, "matmul")
    return a @ b


def transpose(x, axes=None):
    """Axes reversed (axes=None) or permuted: output axis i is input axis axes[i]."""
    x = _node(x, "transpose")
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    return ops.Transpose.do_forward(x, axes=axes)


def linear(x, weight, bias=None):
    """x @ weight.T + bias in one fused kernel: x (n, in), weight (out, in), bias (out,) or (1, out)."""
    inputs = [_node(v, "linear") for v in ([x, weight] if bias is None else [x, weight, bias])]
    return ops.FusedLinear.do_forward(*inputs)


# ---- shape ----

def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, shape):
    """The same elements in a new shape; one entry may be -1 (inferred)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return ops.Reshape.do_forward(_node(x, ops.Reshape._native), shape=shape)


def flatten(x):
    """The elements as a 1-d node."""
    return reshape(x, (-1,))


def squeeze(x, axis=None):
    """Size-1 axes removed (all of them, or the given axis or tuple of axes)."""
    x = _node(x, "squeeze")
    shape = x.shape
    if axis is None:
        axes = {i for i, d in enumerate(shape) if d == 1}
    else:
        axes = set()
        for a in (axis if isinstance(axis, (tuple, list)) else (axis,)):
            if not -len(shape) <= a < len(shape):
                raise IndexError(f"squeeze: axis {a} is out of range for shape {shape}")
            a %= len(shape)
            if a in axes:
                raise ValueError(f"squeeze: repeated axis {a}")
            if shape[a] != 1:
                raise ValueError(f"squeeze: cannot squeeze axis {a} of shape {shape}: its size is {shape[a]}, not 1")
            axes.add(a)
    return reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def unsqueeze(x, axis):
    """A size-1 axis inserted at position axis (numpy's expand_dims)."""
    return ops.Unsqueeze.do_forward(_node(x, ops.Unsqueeze._native), dim=axis)


expand_dims = unsqueeze


def broadcast_to(x, shape):
    """numpy's broadcast_to (a copy); the gradient sums over the broadcast axes."""
    return ops.BroadcastTo.do_forward(_node(x, ops.BroadcastTo._native), shape=tuple(shape))


def concatenate(nodes, axis=0):
    """Nodes joined along an existing axis."""
    nodes = [_node(n, "concatenate") for n in nodes]
    if not nodes:
        raise ValueError("concatenate: need at least one node")
    return ops.Concatenate.do_forward(*nodes, axis=axis)


def stack(nodes, axis=0):
    """Nodes of one shape joined along a new axis (unsqueeze each, then concatenate)."""
    nodes = [_node(n, "stack") for n in nodes]
    if not nodes:
        raise ValueError("stack: need at least one node")
    shapes = {n.shape for n in nodes}
    if len(shapes) > 1:
        raise ValueError(f"stack: all nodes must have the same shape, got {sorted(shapes)}")
    ndim = nodes[0].ndim
    if not -(ndim + 1) <= axis <= ndim:
        raise IndexError(f"stack: axis {axis} is out of range for stacking nodes of {ndim} dimensions")
    return concatenate([unsqueeze(n, axis) for n in nodes], axis=axis)


def _is_basic(k):
    return k is None or k is Ellipsis or isinstance(k, slice) or (
        isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)))


def getitem(x, key):
    """x[key] with numpy's indexing rules: ints, slices, None, Ellipsis, integer arrays and
    boolean masks (a TensorNode key is read as a mask of its non-zero values). The gradient goes
    back to the indexed positions; repeated indices add up."""
    x = _node(x, "getitem")
    if isinstance(key, TensorNode):
        key = key.value != 0
    key = key if isinstance(key, tuple) else (key,)
    try:
        if all(_is_basic(k) for k in key):
            # numpy computes the view; its offset and strides say which elements it reads.
            base = x.value
            view = base[key if any(k is Ellipsis for k in key) else key + (Ellipsis,)]
            item = base.itemsize
            offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // item
            return ops.GetItem.do_forward(x, view=(offset, view.shape, [s // item for s in view.strides]))
        flat = np.arange(x.value.size, dtype=np.int64).reshape(x.shape)[key]
    except IndexError as e:
        raise IndexError(f"getitem: {e} (indexing a node of shape {x.shape})") from None
    return ops.Gather.do_forward(x, indices=flat)


# ---- neural-network functions (fused kernels) ----

def _along_last(cls, x, axis):
    x = _node(x, cls._native)
    if x.ndim == 0:
        raise ValueError(f"{cls.__name__}: needs at least 1 dimension, got a scalar")
    axis = axis % x.ndim if -x.ndim <= axis < x.ndim else None
    if axis is None:
        raise IndexError(f"{cls.__name__}: axis out of range for shape {x.shape}")
    if axis == x.ndim - 1:
        return cls.do_forward(x)
    perm = list(range(x.ndim))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return transpose(cls.do_forward(transpose(x, perm)), perm)


def softmax(x, axis=-1):
    """Softmax along axis (rows of a matrix by default), stable."""
    return _along_last(ops.Softmax, x, axis)


def logsoftmax(x, axis=-1):
    """Log of the softmax along axis (rows by default), stable (log-sum-exp)."""
    return _along_last(ops.LogSoftmax, x, axis)


log_softmax = logsoftmax


def cross_entropy(logits, targets, reduction="mean"):
    """Cross-entropy of logits (n, C) against integer class targets (n,); 'mean' or 'sum'."""
    return ops.CrossEntropy.do_forward(_node(logits, "cross_entropy"), targets=np.asarray(targets), reduction=reduction)


def binary_cross_entropy(probs, targets, reduction="mean"):
    """Binary cross-entropy of probabilities against targets in [0, 1] (same shape)."""
    p = _node(probs, "binary_cross_entropy")
    return ops.BinaryCrossEntropy.do_forward(p, _node(targets, "binary_cross_entropy", p.dtype), reduction=reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Binary cross-entropy from logits (sigmoid inside, stable) against targets in [0, 1]."""
    op = "binary_cross_entropy_with_logits"
    z = _node(logits, op)
    return ops.BinaryCrossEntropyWithLogits.do_forward(z, _node(targets, op, z.dtype), reduction=reduction)


def mse_loss(prediction, target, reduction="mean"):
    """Mean (or sum) of squared differences; prediction and target have the same shape."""
    p = _node(prediction, "mse_loss")
    return ops.MSELoss.do_forward(p, _node(target, "mse_loss", p.dtype), reduction=reduction)


def nll_loss(logprobs, targets, reduction="mean"):
    """Negative log-likelihood of integer targets (n,) under log-probabilities (n, C): the mean
    (or sum) of -logprobs[i, targets[i]]."""
    picked = ops.Select.do_forward(_node(logprobs, "nll_loss"), indices=np.asarray(targets))
    if reduction == "mean":
        return -mean(picked)
    if reduction == "sum":
        return -sum(picked)
    raise ValueError(f"nll_loss: reduction must be 'mean' or 'sum', got {reduction!r}")


def logceloss(logprobs, targets):
    """vugrad's summed cross-entropy from log-probabilities (n, m) and integer targets (n,): a
    0-d node (Select, Sum, times -1)."""
    return ops.Sum.do_forward(ops.Select.do_forward(logprobs, indices=targets)) * -1.0


def celoss(outputs, targets):
    """vugrad's summed cross-entropy from probabilities (n, m) and integer targets (n,)."""
    return logceloss(ops.Log.do_forward(outputs), targets)


# ---- in-place operators ----

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

    method.__doc__ = (f"x {symbol}= other: in place on a leaf (bumping its version); x = x {symbol} other when "
                      "x or other is part of a graph")
    return method


# ---- TensorNode methods with numpy's names ----

def _truth(x):
    if x.value.size != 1:
        raise ValueError(f"the truth value of a TensorNode of shape {x.shape} is ambiguous; "
                         "use .value.any() or .value.all()")
    return bool(x.value.reshape(()))


_METHODS = {
    "sum": sum, "mean": mean, "max": max, "min": min, "var": var, "logsumexp": logsumexp,
    "exp": exp, "log": log, "sqrt": sqrt, "abs": abs, "square": square, "sigmoid": sigmoid,
    "tanh": tanh, "relu": relu, "softplus": softplus, "clip": clip,
    "reshape": lambda x, *shape: reshape(x, _shape_arg(shape)),
    "flatten": flatten, "squeeze": squeeze, "unsqueeze": unsqueeze,
    "transpose": lambda x, *axes: transpose(x, _shape_arg(axes) if axes else None),
    "broadcast_to": broadcast_to, "expand": lambda x, *shape: broadcast_to(x, _shape_arg(shape)),
    "softmax": softmax, "log_softmax": logsoftmax,
    "__getitem__": getitem, "__abs__": abs,
    "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
    "__eq__": equal, "__ne__": not_equal, "__bool__": _truth,
    "__iadd__": _inplace(add, "+"), "__isub__": _inplace(subtract, "-"),
    "__imul__": _inplace(multiply, "*"), "__itruediv__": _inplace(divide, "/"),
}
for _name, _fn in _METHODS.items():
    setattr(TensorNode, _name, _fn)
TensorNode.__hash__ = object.__hash__  # nodes stay usable as dict keys despite element-wise ==
TensorNode.T = property(lambda x: transpose(x), doc="The node with its axes reversed.")
