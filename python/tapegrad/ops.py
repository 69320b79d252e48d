"""The ops of vugrad's course, each bound to a forward and backward kernel pair in the C++ engine.

Each docstring gives the forward and the backward (g is the gradient of the output).
"""

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


class Sum(NativeOp):
    """Sum of all elements, a 0-d result. Backward: g in every position."""
    _native = "sum"

    @staticmethod
    def _constants():
        return (0,), (), None


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
