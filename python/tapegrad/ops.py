"""The ops of vugrad's course, each bound to a forward and backward kernel pair in the C++ engine.

Each docstring gives the forward and the backward (g is the gradient of the output).
"""

import operator

from .core import NativeOp


class Add(NativeOp):
    """a + b with numpy broadcasting. Backward: g, summed back to each input's shape."""
    _native = "add"


class Sub(NativeOp):
    """a - b with broadcasting. Backward: g and -g, summed back to each input's shape."""
    _native = "sub"


class Multiply(NativeOp):
    """Element-wise a * b with broadcasting. Backward: g * b and g * a (summed to shape)."""
    _native = "mul"


class Divide(NativeOp):
    """Element-wise a / b with broadcasting. Backward: g / b and -g * a / b**2 (summed to shape)."""
    _native = "div"


class Power(NativeOp):
    """Element-wise a ** b with broadcasting. Backward: g * b * a**(b-1) and g * a**b * log(a)."""
    _native = "pow"


class Maximum(NativeOp):
    """Element-wise maximum(a, b), broadcasting. Backward: g to the larger input (shared equally on ties)."""
    _native = "maximum"


class Minimum(NativeOp):
    """Element-wise minimum(a, b), broadcasting. Backward: g to the smaller input (shared equally on ties)."""
    _native = "minimum"


class Equal(NativeOp):
    """a == b as 1.0/0.0 in the inputs' dtype, broadcasting. No gradient."""
    _native = "equal"


class NotEqual(NativeOp):
    """a != b as 1.0/0.0. No gradient."""
    _native = "not_equal"


class Less(NativeOp):
    """a < b as 1.0/0.0. No gradient."""
    _native = "less"


class LessEqual(NativeOp):
    """a <= b as 1.0/0.0. No gradient."""
    _native = "less_equal"


class Greater(NativeOp):
    """a > b as 1.0/0.0. No gradient."""
    _native = "greater"


class GreaterEqual(NativeOp):
    """a >= b as 1.0/0.0. No gradient."""
    _native = "greater_equal"


class Negative(NativeOp):
    """-x. Backward: -g."""
    _native = "neg"


class Log(NativeOp):
    """Natural logarithm log(x) (nan for x < 0, -inf at 0, like numpy). Backward: g / x."""
    _native = "log"


class Exp(NativeOp):
    """exp(x). Backward: g * exp(x)."""
    _native = "exp"


class Sigmoid(NativeOp):
    """sigmoid(x) = 1 / (1 + exp(-x)). Backward: g * s * (1 - s) with s = sigmoid(x)."""
    _native = "sigmoid"


class Sqrt(NativeOp):
    """sqrt(x) (nan for x < 0, like numpy). Backward: g / (2 sqrt(x))."""
    _native = "sqrt"


class Abs(NativeOp):
    """|x|. Backward: g * sign(x) (0 at 0)."""
    _native = "abs"


class Square(NativeOp):
    """x**2. Backward: 2 g x."""
    _native = "square"


class Tanh(NativeOp):
    """tanh(x). Backward: g * (1 - tanh(x)**2)."""
    _native = "tanh"


class ReLU(NativeOp):
    """max(x, 0). Backward: g where x > 0, else 0."""
    _native = "relu"


class LeakyReLU(NativeOp):
    """x where x > 0, ``slope`` * x elsewhere. Backward: g or slope * g."""
    _native = "leaky_relu"

    @staticmethod
    def _constants(slope=0.01):
        return (), (float(slope),), None


class Softplus(NativeOp):
    """log(1 + exp(x)), computed without overflow. Backward: g * sigmoid(x)."""
    _native = "softplus"


class Clip(NativeOp):
    """min(max(x, lo), hi). Backward: g where lo <= x <= hi, else 0."""
    _native = "clip"

    @staticmethod
    def _constants(*, lo, hi):
        return (), (float(lo), float(hi)), None


class Id(NativeOp):
    """Identity: a new node with the same value (a view). Backward: g."""
    _native = "id"


class MatrixMultiply(NativeOp):
    """Matrix product a @ b of (n, k) and (k, m) matrices. Backward: g @ b.T and a.T @ g."""
    _native = "matmul"


class BatchMM(NativeOp):
    """One matrix (o, i) applied to a batch of vectors (n, i): vectors @ matrix.T, shape (n, o).

    Backward: g.T @ vectors for the matrix, g @ matrix for the vectors.
    """
    _native = "batch_mm"


def _reduction(axis=None, keepdims=False):
    """Engine constants of a reduction: (keepdims, number of axes or -1 for all, axis...)."""
    if axis is None:
        return (int(bool(keepdims)), -1), (), None
    axes = tuple(operator.index(a) for a in axis) if isinstance(axis, (tuple, list)) else (operator.index(axis),)
    return (int(bool(keepdims)), len(axes)) + axes, (), None


class FusedLinear(NativeOp):
    """x @ W.T + b in one kernel: x (n, i), W (o, i), optional b (o,) or (1, o); shape (n, o).

    Backward: g @ W for x, g.T @ x for W, column sums of g for b.
    """
    _native = "linear"


class Sum(NativeOp):
    """Sum over ``axis`` (default: all elements, a 0-d result; ``keepdims`` keeps reduced axes as 1).

    Backward: g copied back over the reduced axes.
    """
    _native = "sum"
    _constants = staticmethod(_reduction)


class Mean(NativeOp):
    """Mean over ``axis`` (default all). Backward: g / count copied back over the reduced axes."""
    _native = "mean"
    _constants = staticmethod(_reduction)


class Max(NativeOp):
    """Maximum over ``axis`` (default all). Backward: g at the first arg-max of each group, 0 elsewhere."""
    _native = "max"
    _constants = staticmethod(_reduction)


class Min(NativeOp):
    """Minimum over ``axis`` (default all). Backward: g at the first arg-min of each group, 0 elsewhere."""
    _native = "min"
    _constants = staticmethod(_reduction)


class LogSumExp(NativeOp):
    """log(sum(exp(x))) over ``axis``, computed stably. Backward: g * exp(x - out) (a softmax)."""
    _native = "logsumexp"
    _constants = staticmethod(_reduction)


class Var(NativeOp):
    """Variance over ``axis``: sum((x - mean)**2) / (count - ddof). Backward: 2 g (x - mean) / (count - ddof)."""
    _native = "var"

    @staticmethod
    def _constants(axis=None, keepdims=False, ddof=0):
        ints, _, _ = _reduction(axis, keepdims)
        return ints, (float(ddof),), None


class RowSum(NativeOp):
    """Row sums of a matrix (n, m) -> (n,). Backward: g[i] in every column of row i."""
    _native = "row_sum"


class RowMax(NativeOp):
    """Row maxima of a matrix (n, m) -> (n,). Backward: g[i] at the (first) argmax of row i, 0 elsewhere."""
    _native = "row_max"


class Normalize(NativeOp):
    """Divide each row of a matrix by its sum: y = x / s. Backward: g / s - sum(g * x, row) / s**2."""
    _native = "normalize"


class Expand(NativeOp):
    """Repeat a size-1 axis ``dim`` ``repeats`` times (explicit broadcasting).

    Backward: g summed over that axis (keeping it as size 1).
    """
    _native = "expand"

    @staticmethod
    def _constants(*, dim, repeats):
        return (int(dim), int(repeats)), (), None


class Select(NativeOp):
    """One element per row of a matrix (n, m): out[i] = x[i, indices[i]], shape (n,).

    ``indices`` is an integer vector of length n (a constant: no gradient). Backward: g[i] at
    (i, indices[i]), 0 elsewhere.
    """
    _native = "select"

    @staticmethod
    def _constants(*, indices):
        return (), (), indices


class Squeeze(NativeOp):
    """Remove axis ``dim`` (default 0), which must have size 1. Backward: g with the axis put back."""
    _native = "squeeze"

    @staticmethod
    def _constants(dim=0):
        return (int(dim),), (), None


class Unsqueeze(NativeOp):
    """Insert a size-1 axis at ``dim`` (default 0). Backward: g with that axis removed."""
    _native = "unsqueeze"

    @staticmethod
    def _constants(dim=0):
        return (int(dim),), (), None


def _shape(shape):
    return tuple(int(d) for d in shape)


class Reshape(NativeOp):
    """The same elements in a new ``shape`` (one entry may be -1); a view. Backward: g reshaped back."""
    _native = "reshape"

    @staticmethod
    def _constants(*, shape):
        return _shape(shape), (), None


class BroadcastTo(NativeOp):
    """numpy's broadcast_to(x, ``shape``). Backward: g summed over the broadcast axes."""
    _native = "broadcast_to"

    @staticmethod
    def _constants(*, shape):
        return _shape(shape), (), None


class Transpose(NativeOp):
    """Axes permuted: output axis i is input axis ``axes[i]``. Backward: g permuted back."""
    _native = "transpose"

    @staticmethod
    def _constants(*, axes):
        return _shape(axes), (), None


class Concatenate(NativeOp):
    """Inputs joined along ``axis``. Backward: g split into the inputs' blocks."""
    _native = "concatenate"

    @staticmethod
    def _constants(axis=0):
        return (int(axis),), (), None


class GetItem(NativeOp):
    """A basic-indexing view (ints, slices, None, ...) copied out: ``view`` = (offset, shape, strides)
    in elements. Backward: g added back at the viewed positions."""
    _native = "strided"

    @staticmethod
    def _constants(*, view):
        offset, shape, strides = view
        return (int(offset), len(shape)) + _shape(shape) + _shape(strides), (), None


class Gather(NativeOp):
    """Elements at flat positions ``indices`` (an integer array; the output has its shape).
    Backward: g scattered back; repeated positions add up."""
    _native = "gather"

    @staticmethod
    def _constants(*, indices):
        return (), (), indices


class Softmax(NativeOp):
    """Softmax along the last axis: exp(x - max) / sum(exp(x - max)). Backward: y * (g - sum(g * y))."""
    _native = "softmax"


class LogSoftmax(NativeOp):
    """Log-softmax along the last axis: x - logsumexp(x). Backward: g - softmax(x) * sum(g)."""
    _native = "log_softmax"


_REDUCTIONS = {"mean": 0, "sum": 1}


def _loss(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean' or 'sum', got {reduction!r}")
    return (_REDUCTIONS[reduction],)


class CrossEntropy(NativeOp):
    """Cross-entropy from logits (n, C) and integer ``targets`` (n,): mean or sum over rows of
    logsumexp(x_i) - x_i[t_i]. Backward: g * (softmax(x) - onehot(t)) (/ n for the mean)."""
    _native = "cross_entropy"

    @staticmethod
    def _constants(*, targets, reduction="mean"):
        return _loss("cross_entropy", reduction), (), targets


class BinaryCrossEntropy(NativeOp):
    """-(y log p + (1 - y) log(1 - p)) from probabilities p and targets y (logs clamped at -100).
    Backward: g (p - y) / (p (1 - p)) for p, g (log(1 - p) - log p) for y."""
    _native = "binary_cross_entropy"

    @staticmethod
    def _constants(reduction="mean"):
        return _loss("binary_cross_entropy", reduction), (), None


class BinaryCrossEntropyWithLogits(NativeOp):
    """Binary cross-entropy from logits z: max(z, 0) - z y + log(1 + exp(-|z|)).
    Backward: g (sigmoid(z) - y) for z, -g z for y."""
    _native = "binary_cross_entropy_with_logits"

    @staticmethod
    def _constants(reduction="mean"):
        return _loss("binary_cross_entropy_with_logits", reduction), (), None


class MSELoss(NativeOp):
    """Mean (or sum) of (p - t)**2. Backward: 2 g (p - t) for p, -2 g (p - t) for t (/ count for the mean)."""
    _native = "mse_loss"

    @staticmethod
    def _constants(reduction="mean"):
        return _loss("mse_loss", reduction), (), None
