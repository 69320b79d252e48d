"""Functions on TensorNodes with numpy's names, and vugrad's activations and losses.

Every function takes TensorNodes (arrays and numbers become constants without gradient) and
returns a TensorNode; each is one engine op unless its docstring says otherwise. The functions of
the unary, binary and reduction ops are made from the rows of tapegrad.ops.OPS; the others are
written below. TensorNode's methods are installed from both by tapegrad.methods.
"""

import numpy as np

from . import _core, ops
from .core import TensorNode


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


# ---- functions made from the op table: unary f(x), binary f(a, b), reductions ----

def _summary(r):
    """The forward half of a row's docstring."""
    return r.doc.split(" Backward:")[0]


def _unary(r):
    cls = getattr(ops, r.cls)

    def function(x):
        return _core.apply1(cls._index, x if type(x) is TensorNode else _node(x, r.native))

    return function, f"{_summary(r)}\n\nx: a TensorNode (or an array or number, a constant); the result has its shape."


def _binary(r):
    cls = getattr(ops, r.cls)

    def function(a, b):
        return cls.do_forward(*_pair(a, b, r.native))

    return function, (f"{_summary(r)}\n\na, b: TensorNodes, arrays or numbers (at least one a node for a "
                      "gradient; a Python number takes the other operand's dtype).")


def _reduction(r):
    cls = getattr(ops, r.cls)

    def function(x, axis=None, keepdims=False):
        return cls.do_forward(_node(x, r.native), axis=axis, keepdims=keepdims)

    return function, (f"{_summary(r)}\n\naxis: None (all axes), an int or a tuple of ints; keepdims keeps "
                      "the reduced axes as size 1.")


_MAKERS = {ops.UNARY: _unary, ops.BINARY: _binary, ops.REDUCTION: _reduction}

for _r in ops.OPS:
    if _r.kind is not None:
        _fn, _fn.__doc__ = _MAKERS[_r.kind](_r)
        _fn.__name__ = _fn.__qualname__ = _r.function
        _fn.__module__ = __name__
        globals()[_r.function] = _fn


# ---- written by hand: constants with other names, several ops, or logic around the op ----

def leaky_relu(x, slope=0.01):
    """x where x > 0, slope * x elsewhere."""
    return ops.LeakyReLU.do_forward(_node(x, "leaky_relu"), slope=slope)


def clip(x, a_min, a_max):
    """Values limited to [a_min, a_max] (None: no bound on that side); gradient 0 outside."""
    lo = -np.inf if a_min is None else a_min
    hi = np.inf if a_max is None else a_max
    return ops.Clip.do_forward(_node(x, "clip"), lo=lo, hi=hi)


def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over axis with numpy's ddof (0: divide by the count)."""
    return ops.Var.do_forward(_node(x, "var"), axis=axis, keepdims=keepdims, ddof=ddof)


# ---- linear algebra ----

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
    return ops.Reshape.do_forward(_node(x, "reshape"), shape=shape)


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
    return ops.Unsqueeze.do_forward(_node(x, "unsqueeze"), dim=axis)


expand_dims = unsqueeze


def broadcast_to(x, shape):
    """numpy's broadcast_to (a copy); the gradient sums over the broadcast axes."""
    return ops.BroadcastTo.do_forward(_node(x, "broadcast_to"), shape=tuple(shape))


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
            return ops.GetItem.do_forward(x, offset=offset, shape=view.shape,
                                          strides=[s // item for s in view.strides])
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


__all__ = sorted({r.function for r in ops.OPS if r.function} |
                 {"celoss", "expand_dims", "flatten", "logceloss", "logsoftmax", "nll_loss", "stack"})
