"""The engine's ops as Python classes, one row each in the table OPS below.

Each row names an op of the engine's table (cpp/ops/registry.cpp), the Python class that applies
it (vugrad's name where the course has one), the docstring (forward, then backward; g is the
gradient of the output) and how the op appears beyond its class:

- ``kind``: a function of that kind is made in tapegrad.functional, named ``function`` (default:
  the engine's name): UNARY ``f(x)``, BINARY ``f(a, b)`` (numbers and arrays on either side become
  constants), REDUCTION ``f(x, axis=None, keepdims=False)``. Without a kind, ``function`` names a
  function written by hand in functional.py (None: the op is reached through its class only).
- ``methods``: TensorNode methods that call the function (default: the function's own name for
  UNARY and REDUCTION ops); ``operators``: Python operators that call the engine directly.

The attributes an op takes (``axis``, ``dim``, ``indices`` ...) are declared once, in its engine
row: ``do_forward(x, axis=1)`` passes them to the engine, which checks them by that declaration.
A test fails when an engine row has no class here, a row no docs entry, or a function is missing.
"""

from collections import namedtuple

from .core import NativeOp

UNARY, BINARY, REDUCTION = "unary", "binary", "reduction"

Row = namedtuple("Row", "native cls doc kind function methods operators")


def row(native, cls, doc, kind=None, function=None, methods=None, operators=()):
    """One entry of OPS (see the module's docstring); ``function`` and ``methods`` get their defaults."""
    if function is None and kind is not None:
        function = native
    if methods is None:
        methods = (function,) if kind in (UNARY, REDUCTION) else ()
    return Row(native, cls, doc, kind, function, tuple(methods), tuple(operators))


OPS = (
    # element-wise, broadcasting
    row("add", "Add", "a + b with numpy broadcasting. Backward: g, summed back to each input's shape.",
        BINARY, operators=("__add__", "__radd__")),
    row("subtract", "Sub", "a - b with broadcasting. Backward: g and -g, summed back to each input's shape.",
        BINARY, operators=("__sub__", "__rsub__")),
    row("multiply", "Multiply", "Element-wise a * b with broadcasting. Backward: g * b and g * a (summed to shape).",
        BINARY, operators=("__mul__", "__rmul__")),
    row("divide", "Divide", "Element-wise a / b with broadcasting. Backward: g / b and -g * a / b**2 (summed to shape).",
        BINARY, operators=("__truediv__", "__rtruediv__")),
    row("power", "Power", "Element-wise a ** b with broadcasting. Backward: g * b * a**(b-1) and g * a**b * log(a).",
        BINARY, operators=("__pow__", "__rpow__")),
    row("maximum", "Maximum", "Element-wise maximum(a, b), broadcasting. Backward: g to the larger input "
        "(shared equally on ties).", BINARY),
    row("minimum", "Minimum", "Element-wise minimum(a, b), broadcasting. Backward: g to the smaller input "
        "(shared equally on ties).", BINARY),
    row("equal", "Equal", "a == b as 1.0/0.0 in the inputs' dtype, broadcasting. No gradient.", BINARY,
        operators=("__eq__",)),
    row("not_equal", "NotEqual", "a != b as 1.0/0.0. No gradient.", BINARY, operators=("__ne__",)),
    row("less", "Less", "a < b as 1.0/0.0. No gradient.", BINARY, operators=("__lt__",)),
    row("less_equal", "LessEqual", "a <= b as 1.0/0.0. No gradient.", BINARY, operators=("__le__",)),
    row("greater", "Greater", "a > b as 1.0/0.0. No gradient.", BINARY, operators=("__gt__",)),
    row("greater_equal", "GreaterEqual", "a >= b as 1.0/0.0. No gradient.", BINARY, operators=("__ge__",)),
    # element-wise, unary
    row("negative", "Negative", "-x. Backward: -g.", UNARY, methods=(), operators=("__neg__",)),
    row("exp", "Exp", "exp(x). Backward: g * exp(x).", UNARY),
    row("log", "Log", "Natural logarithm log(x) (nan for x < 0, -inf at 0, like numpy). Backward: g / x.", UNARY),
    row("log1p", "Log1p", "log(1 + x), accurate for small x (nan for x < -1, -inf at -1). Backward: g / (1 + x).",
        UNARY),
    row("sqrt", "Sqrt", "sqrt(x) (nan for x < 0, like numpy). Backward: g / (2 sqrt(x)).", UNARY),
    row("abs", "Abs", "|x|. Backward: g * sign(x) (0 at 0).", UNARY, operators=("__abs__",)),
    row("square", "Square", "x**2. Backward: 2 g x.", UNARY),
    row("sigmoid", "Sigmoid", "sigmoid(x) = 1 / (1 + exp(-x)). Backward: g * s * (1 - s) with s = sigmoid(x).", UNARY),
    row("tanh", "Tanh", "tanh(x). Backward: g * (1 - tanh(x)**2).", UNARY),
    row("relu", "ReLU", "max(x, 0). Backward: g where x > 0, else 0.", UNARY),
    row("leaky_relu", "LeakyReLU", "x where x > 0, ``slope`` * x elsewhere. Backward: g or slope * g.",
        function="leaky_relu"),
    row("softplus", "Softplus", "log(1 + exp(x)), computed without overflow. Backward: g * sigmoid(x).", UNARY),
    row("clip", "Clip", "min(max(x, lo), hi). Backward: g where lo <= x <= hi, else 0.", function="clip",
        methods=("clip",)),
    row("id", "Id", "Identity: a new node with the same value (a view). Backward: g."),
    # reductions
    row("sum", "Sum", "Sum over ``axis`` (default: all elements, a 0-d result; ``keepdims`` keeps reduced axes "
        "as 1). Backward: g copied back over the reduced axes.", REDUCTION),
    row("mean", "Mean", "Mean over ``axis`` (default all). Backward: g / count copied back over the reduced axes.",
        REDUCTION),
    row("max", "Max", "Maximum over ``axis`` (default all). Backward: g at the first arg-max of each group, "
        "0 elsewhere.", REDUCTION),
    row("min", "Min", "Minimum over ``axis`` (default all). Backward: g at the first arg-min of each group, "
        "0 elsewhere.", REDUCTION),
    row("logsumexp", "LogSumExp", "log(sum(exp(x))) over ``axis``, computed stably. Backward: g * exp(x - out) "
        "(a softmax).", REDUCTION),
    row("var", "Var", "Variance over ``axis``: sum((x - mean)**2) / (count - ``ddof``). Backward: "
        "2 g (x - mean) / (count - ddof).", function="var", methods=("var",)),
    row("row_sum", "RowSum", "Row sums of a matrix (n, m) -> (n,). Backward: g[i] in every column of row i."),
    row("row_max", "RowMax", "Row maxima of a matrix (n, m) -> (n,). Backward: g[i] at the (first) argmax of "
        "row i, 0 elsewhere."),
    row("normalize", "Normalize", "Divide each row of a matrix by its sum: y = x / s. Backward: "
        "g / s - sum(g * x, row) / s**2."),
    # linear algebra
    row("matmul", "MatrixMultiply", "numpy's matmul: 1-d operands are vectors, 2-d matrices, more dimensions "
        "batches of matrices (batch axes broadcast). Backward: g @ b.T and a.T @ g per matrix.",
        BINARY, methods=("matmul",), operators=("__matmul__", "__rmatmul__")),
    row("batch_mm", "BatchMM", "One matrix (o, i) applied to a batch of vectors (n, i): vectors @ matrix.T, "
        "shape (n, o). Backward: g.T @ vectors for the matrix, g @ matrix for the vectors."),
    row("linear", "FusedLinear", "x @ W.T + b in one kernel: x (n, i), W (o, i), optional b (o,) or (1, o); "
        "shape (n, o). Backward: g @ W for x, g.T @ x for W, column sums of g for b.", function="linear"),
    # shape
    row("reshape", "Reshape", "The same elements in a new ``shape`` (one entry may be -1); a view. "
        "Backward: g reshaped back.", function="reshape"),
    row("squeeze", "Squeeze", "Remove axis ``dim`` (default 0), which must have size 1. Backward: g with the "
        "axis put back.", function="squeeze", methods=("squeeze",)),
    row("unsqueeze", "Unsqueeze", "Insert a size-1 axis at ``dim`` (default 0). Backward: g with that axis "
        "removed.", function="unsqueeze", methods=("unsqueeze",)),
    row("expand", "Expand", "Repeat a size-1 axis ``dim`` ``repeats`` times (explicit broadcasting). Backward: "
        "g summed over that axis (keeping it as size 1)."),
    row("broadcast_to", "BroadcastTo", "numpy's broadcast_to(x, ``shape``) (a copy). Backward: g summed over "
        "the broadcast axes.", function="broadcast_to", methods=("broadcast_to",)),
    row("transpose", "Transpose", "Axes permuted: output axis i is input axis ``axes[i]``. Backward: g permuted "
        "back.", function="transpose"),
    row("concatenate", "Concatenate", "Inputs joined along ``axis``. Backward: g split into the inputs' blocks.",
        function="concatenate"),
    row("select", "Select", "One element per row of a matrix (n, m): out[i] = x[i, indices[i]], shape (n,); "
        "``indices`` is an integer vector of length n (a constant). Backward: g[i] at (i, indices[i]), "
        "0 elsewhere."),
    row("getitem", "GetItem", "A basic-indexing view (ints, slices, None, ...) copied out, given as ``offset``, "
        "``shape`` and ``strides`` in elements. Backward: g added back at the viewed positions.",
        function="getitem", methods=("__getitem__",)),
    row("gather", "Gather", "Elements at flat positions ``indices`` (an integer array; the output has its "
        "shape). Backward: g scattered back; repeated positions add up."),
    row("setitem", "SetItem", "a with the values v (of the shape of ``indices``) written at flat positions "
        "``indices``; where a position repeats, the last write stays. What ``t[key] = v`` records on a graph. "
        "Backward: g with the written positions zeroed for a; g at each position whose write stayed for v.",
        function="setitem"),
    row("astype", "AsType", "The values converted to ``dtype`` (\"float32\" or \"float64\"); a copy. "
        "Backward: g converted back to x's dtype.", function="astype"),
    # neural-network functions (fused)
    row("softmax", "Softmax", "Softmax along the last axis: exp(x - max) / sum(exp(x - max)). Backward: "
        "y * (g - sum(g * y)).", function="softmax", methods=("softmax",)),
    row("log_softmax", "LogSoftmax", "Log-softmax along the last axis: x - logsumexp(x). Backward: "
        "g - softmax(x) * sum(g).", function="log_softmax", methods=("log_softmax",)),
    row("cross_entropy", "CrossEntropy", "Cross-entropy from logits (n, C) and integer ``targets`` (n,): mean "
        "(or sum, ``reduction``) over rows of logsumexp(x_i) - x_i[t_i]. Backward: g * (softmax(x) - onehot(t)) "
        "(/ n for the mean).", function="cross_entropy"),
    row("binary_cross_entropy", "BinaryCrossEntropy", "-(y log p + (1 - y) log(1 - p)) from probabilities p "
        "and targets y (logs clamped at -100). Backward: g (p - y) / (p (1 - p)) for p, g (log(1 - p) - log p) "
        "for y.", function="binary_cross_entropy"),
    row("binary_cross_entropy_with_logits", "BinaryCrossEntropyWithLogits", "Binary cross-entropy from logits z: "
        "max(z, 0) - z y + log(1 + exp(-|z|)). Backward: g (sigmoid(z) - y) for z, -g z for y.",
        function="binary_cross_entropy_with_logits"),
    row("mse_loss", "MSELoss", "Mean (or sum) of (p - t)**2. Backward: 2 g (p - t) for p, -2 g (p - t) for t "
        "(/ count for the mean).", function="mse_loss"),
    # convolution and pooling on NCHW images ((height, width) pairs for the window attributes)
    row("conv2d", "Convolution2D", "2-d cross-correlation of input (N, C, H, W) with weight (O, C / ``groups``, kH, "
        "kW) plus an optional bias (O,), with ``stride``, zero ``padding`` and ``dilation``; shape (N, O, H', W'). "
        "Backward: the correlation's adjoint (col2im of W^T g) for the input, sum over images of g col^T for the "
        "weight, sums of g per channel for the bias.", function="conv2d"),
    row("max_pool2d", "MaxPooling2D", "Maximum over windows of ``kernel_size`` at ``stride`` with ``padding`` "
        "(never chosen) and ``dilation``, per channel of (N, C, H, W); ``ceil_mode`` rounds the output size up. "
        "Backward: g at each window's first maximum, summed where windows overlap.", function="max_pool2d"),
    row("avg_pool2d", "AvgPooling2D", "Mean over windows of ``kernel_size`` at ``stride`` with zero ``padding``, "
        "per channel of (N, C, H, W); the divisor counts the padding (``count_include_pad``) or not, or is "
        "``divisor_override``. Backward: g / divisor added to each pixel of the window.", function="avg_pool2d"),
    row("adaptive_avg_pool2d", "AdaptiveAvgPooling2D", "Mean over the bins that split (H, W) into "
        "``output_size`` (bin i of n over H pixels: [floor(i H / n), ceil((i + 1) H / n))). Backward: g / bin size "
        "added to each pixel of the bin.", function="adaptive_avg_pool2d"),
    row("pad", "Pad", "Constant padding: ``pad`` holds (before, after) pairs from the last axis backwards, as "
        "torch.nn.functional.pad (negative amounts crop), filled with ``value``. Backward: g at the input's "
        "positions.", function="pad"),
)


def _make_class(r):
    return type(r.cls, (NativeOp,), {"__doc__": r.doc, "_native": r.native, "__module__": __name__})


for _row in OPS:
    globals()[_row.cls] = _make_class(_row)

BY_NATIVE = {r.native: r for r in OPS}
__all__ = [r.cls for r in OPS]
