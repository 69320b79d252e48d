"""torch.nn.functional's names and arguments (``dim``, ``reduction=``) over tapegrad.functional.

    import tapegrad.nn.functional as F
    x = F.relu(F.linear(x, w, b))
    loss = F.cross_entropy(logits, labels)

Each function takes tensors (arrays and numbers become constants) and returns a tensor; the common
cases are one fused engine op, the rest (``reduction='none'``, class weights, ``ignore_index``,
label smoothing, probability targets) are composed of ops. ``inplace=True`` is accepted and computes
out of place (the result is returned; the input is left alone).
"""

import warnings

import numpy as np

from .. import functional as _F
from .. import init as _vg_init
from .. import replay as _jit
from .._torchlike import as_array, numpy_dtype
from ..core import TensorNode

_REDUCTIONS = ("mean", "sum", "none")


def _tensor(x, op):
    return _F._node(x, op)


def _check_reduction(reduction, op):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss, reduction):
    if reduction == "mean":
        return _F.mean(loss)
    if reduction == "sum":
        return _F.sum(loss)
    return loss


def _constant(x, like, op):
    """x (a tensor, array or number) as a constant array of the dtype of tensor ``like``."""
    return np.asarray(as_array(x), dtype=like.dtype)


def _target(target, like, op):
    """A loss's target: a tensor stays one (its gradient flows, as in PyTorch); anything else
    becomes a constant of ``like``'s dtype."""
    if isinstance(target, TensorNode):
        return target
    return _F._node(_constant(target, like, op), op)


# ---- activations ----

def relu(input, inplace=False):
    """max(input, 0) element-wise."""
    return _F.relu(input)


def sigmoid(input):
    """1 / (1 + exp(-input)) element-wise."""
    return _F.sigmoid(input)


def tanh(input):
    """tanh(input) element-wise."""
    return _F.tanh(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """input where input > 0, negative_slope * input elsewhere."""
    return _F.leaky_relu(input, negative_slope)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta * input)) / beta, and input itself where beta * input > threshold (as PyTorch)."""
    x = _tensor(input, "softplus")
    scaled = x if beta == 1 else x * beta
    out = _F.softplus(scaled) if beta == 1 else _F.softplus(scaled) / beta
    above = as_array(scaled) > threshold
    if above.any():
        keep = above.astype(x.dtype)
        out = x * keep + out * (1 - keep)
    return out


def silu(input, inplace=False):
    """input * sigmoid(input) (the swish)."""
    x = _tensor(input, "silu")
    return x * _F.sigmoid(x)


def logsigmoid(input):
    """log(sigmoid(input)) = -softplus(-input), stable."""
    return -_F.softplus(-_tensor(input, "logsigmoid"))


def _cast(x, dtype, op):
    """x converted to dtype (None: x itself), through the graph."""
    if dtype is None or x.dtype == numpy_dtype(dtype):
        return x
    if not hasattr(x, "to"):
        raise TypeError(f"{op}: this engine cannot convert a tensor of {x.dtype} to {dtype}")
    return x.to(dtype)


def _softmax_dim(x, dim, op):
    if dim is None:  # PyTorch's legacy rule, with its warning
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to include dim=X "
                      "as an argument.", UserWarning, stacklevel=3)
        return 0 if x.ndim in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along dim, stable; dtype casts the input first."""
    x = _cast(_tensor(input, "softmax"), dtype, "softmax")
    if x.ndim == 0:
        return x * 0.0 + 1.0
    return _F.softmax(x, _softmax_dim(x, dim, "softmax"))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along dim, stable (log-sum-exp); dtype casts the input first."""
    x = _cast(_tensor(input, "log_softmax"), dtype, "log_softmax")
    if x.ndim == 0:
        return x * 0.0
    return _F.logsoftmax(x, _softmax_dim(x, dim, "log_softmax"))


def dropout(input, p=0.5, training=True, inplace=False):
    """In training, each element zeroed with probability p and the rest scaled by 1 / (1 - p);
    the input itself otherwise. Masks come from tapegrad.init's generator."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    x = _tensor(input, "dropout")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    _jit.refuse("runs dropout in training mode (its masks are drawn outside the tape)",
                "call the step with the model in eval() mode, or without vg.jit")
    keep = _vg_init.generator().random(x.shape) >= p
    return x * (keep / (1 - p)).astype(x.dtype)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(||input||_p along dim, eps)."""
    x = _tensor(input, "normalize")
    if p == 2:
        norm = _F.sqrt(_F.sum(x * x, axis=dim, keepdims=True))
    else:
        norm = _F.power(_F.sum(_F.power(_F.abs(x), p), axis=dim, keepdims=True), 1.0 / p)
    return x / _F.maximum(norm, eps)


# ---- linear layers and convolutions ----

def linear(input, weight, bias=None):
    """input @ weight.T + bias: input (*, in), weight (out, in), bias (out,) or None; (*, out)."""
    x = _tensor(input, "linear")
    w = _tensor(weight, "linear")
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-d (out_features, in_features), got shape {w.shape}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not end in in_features = {w.shape[1]} "
                         f"(weight of shape {w.shape})")
    lead = x.shape[:-1]
    if x.ndim != 2:
        x = _F.reshape(x, (-1, w.shape[1]))
    out = _F.linear(x, w, bias)
    return out if len(lead) == 1 else _F.reshape(out, lead + (w.shape[0],))


def _batched(x, op):
    """(x as (N, C, H, W), whether it came without the batch axis); ValueError unless 3-d or 4-d."""
    if x.ndim == 3:
        return _F.unsqueeze(x, 0), True
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input, got shape {x.shape}")
    return x, False


def _unbatched(out, squeeze):
    return _F.reshape(out, out.shape[1:]) if squeeze else out


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d cross-correlation of input (N, C, H, W) or (C, H, W) with weight (O, C / groups, kH, kW),
    plus bias (O,); see tapegrad.conv2d for stride, padding ('valid', 'same' or sizes) and dilation."""
    x, squeeze = _batched(_tensor(input, "conv2d"), "conv2d")
    return _unbatched(_F.conv2d(x, weight, bias, stride, padding, dilation, groups), squeeze)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over windows of each channel of (N, C, H, W) or (C, H, W); stride defaults to
    kernel_size. return_indices is not supported."""
    if return_indices:
        raise ValueError("max_pool2d: return_indices=True is not supported")
    x, squeeze = _batched(_tensor(input, "max_pool2d"), "max_pool2d")
    return _unbatched(_F.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode), squeeze)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows of each channel of (N, C, H, W) or (C, H, W); stride defaults to kernel_size."""
    x, squeeze = _batched(_tensor(input, "avg_pool2d"), "avg_pool2d")
    return _unbatched(_F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                    divisor_override), squeeze)


def adaptive_avg_pool2d(input, output_size):
    """Means over the bins that split each (H, W) plane into output_size: (N, C, oH, oW) or (C, oH, oW)."""
    x, squeeze = _batched(_tensor(input, "adaptive_avg_pool2d"), "adaptive_avg_pool2d")
    return _unbatched(_F.adaptive_avg_pool2d(x, output_size), squeeze)


def pad(input, pad, mode="constant", value=None):
    """Constant padding: ``pad`` lists (before, after) for the last axis, then the one before it...
    ((left, right, top, bottom) for images); negative amounts crop."""
    return _F.pad(input, pad, mode, value)


def flatten(input, start_dim=0, end_dim=-1):
    """Axes start_dim..end_dim merged into one (torch.flatten)."""
    return _F.flatten(input, start_dim, end_dim)


# ---- losses ----

def _class_indices(target, op):
    """target (an int64 tensor, an integer array or a list of class numbers) as an int64 array."""
    t = as_array(target)
    if t.dtype.kind in "iu":
        return t.astype(np.int64, copy=False)
    vugrad = isinstance(target, TensorNode) and target.dialect == "vugrad"
    if vugrad and t.dtype.kind == "f" and np.all(t == np.round(t)):
        return t.astype(np.int64)  # vugrad's nodes hold integers as float64
    raise TypeError(f"{op}: class targets must be integers (int64), got {t.dtype}")


def _nll(logp, target, weight, ignore_index, reduction, op):
    """The negative log-likelihood of class targets under log-probabilities logp (N, C) or (C,)."""
    unbatched = logp.ndim == 1
    if unbatched:
        logp = _F.reshape(logp, (1, -1))
    if logp.ndim != 2:
        raise ValueError(f"{op}: expected an input of shape (N, C) or (C,), got {logp.shape}")
    n, classes = logp.shape
    t = _class_indices(target, op).reshape(-1)
    if t.shape != (n,):
        raise ValueError(f"{op}: expected {n} class targets for an input of shape {logp.shape}, got shape "
                         f"{np.shape(as_array(target))}")
    ignored = t == ignore_index
    bad = (~ignored) & ((t < 0) | (t >= classes))
    if bad.any():
        raise IndexError(f"{op}: target {t[bad][0]} is out of bounds for {classes} classes")
    safe = np.where(ignored, 0, t)
    w = np.ones(classes) if weight is None else np.asarray(as_array(weight), dtype=np.float64).reshape(-1)
    if w.shape != (classes,):
        raise ValueError(f"{op}: weight must have one entry per class ({classes}), got shape {w.shape}")
    wt = np.where(ignored, 0.0, w[safe]).astype(logp.dtype)
    picked = _F.getitem(logp, (np.arange(n), safe))
    losses = -(picked * wt)
    if reduction == "none":
        return _F.reshape(losses, ()) if unbatched else losses
    if reduction == "sum":
        return _F.sum(losses)
    return _F.sum(losses) / logp.dtype.type(wt.sum())


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log-likelihood of class targets (N,) under log-probabilities (N, C):
    -weight[t_i] * input[i, t_i], averaged over the weights of the targets not equal to
    ignore_index ('mean'), summed ('sum') or per instance ('none')."""
    _check_reduction(reduction, "nll_loss")
    return _nll(_tensor(input, "nll_loss"), target, weight, ignore_index, reduction, "nll_loss")


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits input (N, C) (or (C,)) against class targets (N,) (int64: tensors,
    arrays or lists) or against class probabilities of input's shape, as torch's: log_softmax then
    nll_loss, with optional class weights, ignore_index and label_smoothing. Fused into one engine
    op for the plain case."""
    _check_reduction(reduction, "cross_entropy")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    x = _tensor(input, "cross_entropy")
    t = as_array(target)
    if t.dtype.kind == "f" and t.shape == x.shape:
        return _soft_cross_entropy(x, t, weight, reduction, label_smoothing)
    labels = _class_indices(t, "cross_entropy")
    if (x.ndim == 2 and weight is None and label_smoothing == 0 and reduction != "none"
            and not np.any(labels == ignore_index)):
        if labels.shape != (x.shape[0],):
            raise ValueError(f"cross_entropy: expected {x.shape[0]} class targets for an input of shape {x.shape}, "
                             f"got shape {labels.shape}")
        return _F.cross_entropy(x, labels, reduction)
    dim = 1 if x.ndim == 2 else 0
    logp = _F.logsoftmax(x, dim)
    nll = _nll(logp, labels, weight, ignore_index, reduction, "cross_entropy")
    if label_smoothing == 0:
        return nll
    classes = x.shape[-1]
    w = np.ones(classes) if weight is None else np.asarray(as_array(weight), dtype=np.float64)
    smooth = -_F.sum(logp * w.astype(x.dtype), axis=dim)  # per instance: -sum_c w_c log p_c
    keep = (labels.reshape(-1) != ignore_index).astype(x.dtype)
    smooth = smooth * (keep if x.ndim == 2 else keep.reshape(()))
    if reduction == "mean":
        chosen = np.where(labels.reshape(-1) == ignore_index, 0, labels.reshape(-1))
        denominator = (w[chosen] * keep).sum()
        smooth = _F.sum(smooth) / x.dtype.type(denominator)
    elif reduction == "sum":
        smooth = _F.sum(smooth)
    eps = label_smoothing
    return nll * (1 - eps) + smooth * (eps / classes)


def _soft_cross_entropy(x, probs, weight, reduction, label_smoothing):
    """Cross-entropy against class probabilities of x's shape: -sum_c w_c p_c log softmax(x)_c."""
    dim = 1 if x.ndim >= 2 else 0
    classes = x.shape[dim]
    p = probs.astype(x.dtype)
    if label_smoothing:
        p = p * (1 - label_smoothing) + label_smoothing / classes
    if weight is not None:
        shape = [1] * x.ndim
        shape[dim] = classes
        p = p * np.asarray(as_array(weight), dtype=x.dtype).reshape(shape)
    losses = -_F.sum(_F.logsoftmax(x, dim) * p, axis=dim)
    if reduction == "mean" and x.ndim >= 2:
        return _F.sum(losses) / x.dtype.type(x.shape[0])
    return _reduce(losses, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean ('mean'), sum ('sum') or element-wise ('none') squared difference of input and target."""
    _check_reduction(reduction, "mse_loss")
    x = _tensor(input, "mse_loss")
    t = _target(target, x, "mse_loss")
    if weight is None and reduction != "none" and t.shape == x.shape:
        return _F.mse_loss(x, t, reduction)
    if t.shape != x.shape:
        warnings.warn(f"mse_loss: using a target size ({t.shape}) that is different to the input size ({x.shape}); "
                      "it is broadcast, which is likely not what you want", UserWarning, stacklevel=2)
    d = x - t
    losses = d * d
    if weight is not None:
        losses = losses * _constant(weight, x, "mse_loss")
    return _reduce(losses, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean ('mean'), sum ('sum') or element-wise ('none') absolute difference of input and target."""
    _check_reduction(reduction, "l1_loss")
    x = _tensor(input, "l1_loss")
    return _reduce(_F.abs(x - _target(target, x, "l1_loss")), reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)) of probabilities input against targets of its shape (each
    log clamped at -100, as PyTorch), times weight, reduced."""
    _check_reduction(reduction, "binary_cross_entropy")
    p = _tensor(input, "binary_cross_entropy")
    t = _target(target, p, "binary_cross_entropy")
    if t.shape != p.shape:
        raise ValueError(f"binary_cross_entropy: target of shape {t.shape} differs from the input's {p.shape}")
    if weight is None and reduction != "none":
        return _F.binary_cross_entropy(p, t, reduction)
    losses = -(_F.maximum(_F.log(p), -100.0) * t + _F.maximum(_F.log(1 - p), -100.0) * (1 - t))
    if weight is not None:
        losses = losses * _constant(weight, p, "binary_cross_entropy")
    return _reduce(losses, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(input), target), computed stably from the logits; pos_weight
    (one per class, the last axis) weighs the positive term."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    op = "binary_cross_entropy_with_logits"
    z = _tensor(input, op)
    t = _target(target, z, op)
    if t.shape != z.shape:
        raise ValueError(f"{op}: target of shape {t.shape} differs from the input's {z.shape}")
    if weight is None and pos_weight is None and reduction != "none":
        return _F.binary_cross_entropy_with_logits(z, t, reduction)
    log_weight = 1.0 if pos_weight is None else (_constant(pos_weight, z, op) - 1) * t + 1
    losses = z * (1 - t) + _F.softplus(-z) * log_weight
    if weight is not None:
        losses = losses * _constant(weight, z, op)
    return _reduce(losses, reduction)


__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "binary_cross_entropy", "binary_cross_entropy_with_logits", "conv2d",
    "cross_entropy", "dropout", "flatten", "l1_loss", "leaky_relu", "linear", "log_softmax", "logsigmoid",
    "max_pool2d", "mse_loss", "nll_loss", "normalize", "pad", "relu", "sigmoid", "silu", "softmax", "softplus",
    "tanh",
]
