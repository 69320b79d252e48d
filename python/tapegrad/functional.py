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
    # A C callable (fast_calls.cpp): the op on a TensorNode without Python in between; anything else
    # goes through _node first.
    native = r.native
    function = _core.unary_function(getattr(ops, r.cls)._index, lambda x: _node(x, native))
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


def flatten(x, start_dim=0, end_dim=-1):
    """Axes start_dim..end_dim (inclusive) merged into one, as torch.flatten: by default every
    axis, giving a 1-d node (a 0-d node becomes shape (1,)); ``flatten(x, 1)`` turns images
    (N, C, H, W) into rows (N, C * H * W). A view (one Reshape)."""
    x = _node(x, "flatten")
    shape = x.shape
    nd = len(shape) or 1
    dims = []
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"flatten: {name} must be an int, got {type(d).__name__}")
        if not -nd <= d < nd:
            raise IndexError(f"flatten: {name} {d} is out of range for a node of shape {shape}")
        dims.append(int(d) % nd)
    first, last = dims
    if first > last:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {shape}")
    if not shape:
        return reshape(x, (1,))
    merged = int(np.prod(shape[first:last + 1], dtype=np.int64))
    return reshape(x, shape[:first] + (merged,) + shape[last + 1:])


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


def setitem(x, key, value):
    """A new node: x with ``x[key] = value`` (numpy's indexing; value broadcast to the indexed
    shape). Gradients go to x (except at the written positions) and to value."""
    x = _node(x, "setitem")
    if isinstance(key, TensorNode):
        key = key.value != 0
    try:
        flat = np.arange(x.value.size, dtype=np.int64).reshape(x.shape)[key]
    except IndexError as e:
        raise IndexError(f"setitem: {e} (indexing a node of shape {x.shape})") from None
    v = _weak(value, x, "setitem")
    if v.shape != flat.shape:
        try:
            np.broadcast_shapes(v.shape, flat.shape)
        except ValueError:
            raise ValueError(f"setitem: a value of shape {v.shape} cannot be written into the indexed "
                             f"positions of shape {flat.shape}") from None
        v = broadcast_to(v, flat.shape)
    return ops.SetItem.do_forward(x, v, indices=flat)


def astype(x, dtype):
    """x's values in float32 or float64 (a copy, on the graph: the gradient is converted back)."""
    x = _node(x, "astype")
    name = np.dtype(dtype).name
    if name not in ("float32", "float64"):
        raise TypeError(f"astype: dtype must be float32 or float64 for a node on the graph, got {name}")
    return ops.AsType.do_forward(x, dtype=name)


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


# ---- convolution and pooling (NCHW) ----

def _two(value, name, op):
    """An int or a pair of ints as a pair (height, width); TypeError or ValueError naming op."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value):
        if len(value) == 1:
            return (int(value[0]), int(value[0]))
        if len(value) == 2:
            return (int(value[0]), int(value[1]))
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {tuple(value)}")
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution (cross-correlation, as torch.nn.functional.conv2d) of images with filters.

    input (N, C, H, W), weight (O, C / groups, kH, kW), bias (O,) or None; stride, padding and
    dilation are ints or (height, width) pairs, padding also 'valid' (none) or 'same' (output of the
    input's size at stride 1; an odd total puts the extra row and column at the bottom and right).
    groups splits the channels into groups convolved separately. Returns (N, O, H', W') with
    H' = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1 (W' alike).
    """
    op = "conv2d"
    x, w = _node(input, op), _node(weight, op)
    stride, dilation = _two(stride, "stride", op), _two(dilation, "dilation", op)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}")
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
            if w.ndim != 4:
                raise ValueError(f"conv2d: expected a 4-d weight (out_channels, in_channels / groups, kH, kW), "
                                 f"got shape {w.shape}")
            total = [d * (k - 1) for d, k in zip(dilation, w.shape[2:])]
            before = [t // 2 for t in total]
            if any(t % 2 for t in total):
                x = pad(x, (before[1], total[1] - before[1], before[0], total[0] - before[0]))
                before = [0, 0]
            padding = tuple(before)
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    padding = _two(padding, "padding", op)
    inputs = [x, w] if bias is None else [x, w, _node(bias, op)]
    return ops.Convolution2D.do_forward(*inputs, stride=stride, padding=padding, dilation=dilation, groups=int(groups))


def _pool_stride(stride, kernel_size, op):
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        return kernel_size
    return _two(stride, "stride", op)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over windows of each channel of (N, C, H, W), as torch.nn.functional.max_pool2d.

    kernel_size, stride (default: kernel_size), padding and dilation are ints or pairs; the padding
    is never chosen as a maximum and may be at most half the dilated kernel; ceil_mode rounds the
    output size up. Returns (N, C, H', W'), H' = (H + 2 padding - dilation (k - 1) - 1) // stride + 1.
    The gradient goes to each window's first maximum.
    """
    op = "max_pool2d"
    k = _two(kernel_size, "kernel_size", op)
    return ops.MaxPooling2D.do_forward(_node(input, op), kernel_size=k, stride=_pool_stride(stride, k, op),
                                       padding=_two(padding, "padding", op), dilation=_two(dilation, "dilation", op),
                                       ceil_mode=bool(ceil_mode))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows of each channel of (N, C, H, W), as torch.nn.functional.avg_pool2d.

    kernel_size, stride (default: kernel_size) and padding are ints or pairs (zero padding, at most
    half the kernel). The divisor is the window's size within the padded input (count_include_pad,
    the default) or within the input, or divisor_override. Returns (N, C, H', W').
    """
    op = "avg_pool2d"
    k = _two(kernel_size, "kernel_size", op)
    if divisor_override is not None and (isinstance(divisor_override, bool)
                                         or not isinstance(divisor_override, (int, np.integer))
                                         or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    return ops.AvgPooling2D.do_forward(_node(input, op), kernel_size=k, stride=_pool_stride(stride, k, op),
                                       padding=_two(padding, "padding", op), ceil_mode=bool(ceil_mode),
                                       count_include_pad=bool(count_include_pad),
                                       divisor_override=int(divisor_override or 0))


def adaptive_avg_pool2d(input, output_size):
    """Means over the bins that split each (H, W) plane into output_size (an int, a pair, or a pair
    with None for "the input's size"), as torch.nn.functional.adaptive_avg_pool2d: (N, C, oH, oW)."""
    op = "adaptive_avg_pool2d"
    x = _node(input, op)
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2 and None in output_size:
        if x.ndim != 4:
            raise ValueError(f"adaptive_avg_pool2d: expected a 4-d input (N, C, H, W), got shape {x.shape}")
        output_size = tuple(x.shape[2 + i] if s is None else s for i, s in enumerate(output_size))
    return ops.AdaptiveAvgPooling2D.do_forward(x, output_size=_two(output_size, "output_size", op))


def pad(input, pad, mode="constant", value=None):
    """Constant padding, as torch.nn.functional.pad: ``pad`` lists (before, after) amounts for the
    last axis, then the one before it, and so on ((left, right, top, bottom) for images); negative
    amounts crop. value (default 0) fills the new positions. Only mode='constant' exists."""
    if mode != "constant":
        raise ValueError(f"pad: mode {mode!r} is not supported (only 'constant')")
    amounts = list(pad) if isinstance(pad, (tuple, list)) else None
    if amounts is None or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                                  for v in amounts):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    return ops.Pad.do_forward(_node(input, "pad"), pad=[int(v) for v in amounts],
                              value=0.0 if value is None else float(value))


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
