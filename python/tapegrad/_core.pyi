"""Type stub of tapegrad._core, the C++ engine (made by tests/core_stub.py from the built module).

TensorNode's numpy-style methods and operators are installed at import by tapegrad.methods and
declared here as well.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# What an op takes as an operand: a node, or an array or number (a constant).
_TensorLike = TensorNode | npt.ArrayLike
_Axis = int | Sequence[int] | None

class TensorNode:
    """A value in the computation graph, linked to the op that produced it."""
    @property
    def T(self) -> TensorNode:
        """The node with its axes reversed."""
        ...
    def __abs__(self) -> TensorNode: ...
    def __add__(self, other: _TensorLike) -> TensorNode: ...
    def __bool__(self) -> bool: ...
    def __eq__(self, other: _TensorLike) -> TensorNode:  # type: ignore[override]
        ...
    def __ge__(self, other: _TensorLike) -> TensorNode: ...
    def __getitem__(self, key: Any) -> TensorNode:
        """x[key] with numpy's indexing rules: ints, slices, None, Ellipsis, integer arrays and
        boolean masks (a TensorNode key is read as a mask of its non-zero values). The gradient goes
        back to the indexed positions; repeated indices add up."""
        ...
    def __gt__(self, other: _TensorLike) -> TensorNode: ...
    def __iadd__(self, other: _TensorLike) -> TensorNode:
        """x += other: in place on a leaf (bumping its version); x = x + other when x or other is part of a graph"""
        ...
    def __imul__(self, other: _TensorLike) -> TensorNode:
        """x *= other: in place on a leaf (bumping its version); x = x * other when x or other is part of a graph"""
        ...
    def __init__(self, value: npt.ArrayLike, source: None = None, name: str | None = None, requires_grad: bool = True) -> None:
        """A leaf node holding `value` (an array, or anything numpy.asarray takes; its memory is shared when it is a contiguous float32/float64 array)."""
        ...
    def __isub__(self, other: _TensorLike) -> TensorNode:
        """x -= other: in place on a leaf (bumping its version); x = x - other when x or other is part of a graph"""
        ...
    def __itruediv__(self, other: _TensorLike) -> TensorNode:
        """x /= other: in place on a leaf (bumping its version); x = x / other when x or other is part of a graph"""
        ...
    def __le__(self, other: _TensorLike) -> TensorNode: ...
    def __len__(self) -> int:
        """The size of the first axis."""
        ...
    def __lt__(self, other: _TensorLike) -> TensorNode: ...
    def __matmul__(self, other: _TensorLike) -> TensorNode: ...
    def __mul__(self, other: _TensorLike) -> TensorNode: ...
    def __ne__(self, other: _TensorLike) -> TensorNode:  # type: ignore[override]
        ...
    def __neg__(self) -> TensorNode: ...
    def __pow__(self, other: _TensorLike) -> TensorNode: ...
    def __radd__(self, other: _TensorLike) -> TensorNode: ...
    def __repr__(self) -> str:
        """TensorNode[name, size (shape), dtype, source Op]."""
        ...
    def __rmatmul__(self, other: _TensorLike) -> TensorNode: ...
    def __rmul__(self, other: _TensorLike) -> TensorNode: ...
    def __rpow__(self, other: _TensorLike) -> TensorNode: ...
    def __rsub__(self, other: _TensorLike) -> TensorNode: ...
    def __rtruediv__(self, other: _TensorLike) -> TensorNode: ...
    def __str__(self) -> str:
        """As repr."""
        ...
    def __sub__(self, other: _TensorLike) -> TensorNode: ...
    def __truediv__(self, other: _TensorLike) -> TensorNode: ...
    def _bump_version(self) -> None:
        """Count an in-place change of the value made outside the library."""
        ...
    @property
    def _has_grad(self) -> bool:
        """Whether a gradient is stored (reading .grad would create zeros)."""
        ...
    @property
    def _version(self) -> int:
        """Counter of in-place changes to the value through the library."""
        ...
    def abs(self) -> TensorNode:
        """|x|.

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def backward(self, retain_graph: bool = False) -> None:
        """Backpropagate from this one-element node. Leaves that require grad add the gradient to .grad; the graph's saved values are freed unless retain_graph=True."""
        ...
    def broadcast_to(self, shape: int | Sequence[int]) -> TensorNode:
        """numpy's broadcast_to (a copy); the gradient sums over the broadcast axes."""
        ...
    def clear(self) -> None:
        """Disconnect the graph below this node so it can be freed."""
        ...
    def clip(self, a_min: float | None, a_max: float | None) -> TensorNode:
        """Values limited to [a_min, a_max] (None: no bound on that side); gradient 0 outside."""
        ...
    def detach(self) -> TensorNode:
        """A new leaf sharing this node's value, cut off from the graph (no gradient)."""
        ...
    @property
    def dtype(self) -> np.dtype[Any]:
        """The value's numpy dtype (float32 or float64)."""
        ...
    def exp(self) -> TensorNode:
        """exp(x).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def expand(self, *shape: int | Sequence[int]) -> TensorNode:
        """numpy's broadcast_to under PyTorch's name: ``x.expand(3, 4)``."""
        ...
    def flatten(self, start_dim: Any = ..., end_dim: Any = ...) -> TensorNode:
        """Axes start_dim..end_dim (inclusive) merged into one, as torch.flatten: by default every
        axis, giving a 1-d node (a 0-d node becomes shape (1,)); ``flatten(x, 1)`` turns images
        (N, C, H, W) into rows (N, C * H * W). A view (one Reshape)."""
        ...
    @property
    def grad(self) -> np.ndarray:
        """Gradient of the loss with respect to the value (zeros before backward)."""
        ...
    @grad.setter
    def grad(self, value: npt.ArrayLike | None) -> None: ...
    @property
    def is_leaf(self) -> bool:
        """True for nodes not made by an op (no source)."""
        ...
    def item(self) -> float:
        """The value of a one-element node as a float."""
        ...
    def log(self) -> TensorNode:
        """Natural logarithm log(x) (nan for x < 0, -inf at 0, like numpy).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def log1p(self) -> TensorNode:
        """log(1 + x), accurate for small x (nan for x < -1, -inf at -1).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def log_softmax(self, axis: _Axis = ...) -> TensorNode:
        """Log of the softmax along axis (rows by default), stable (log-sum-exp)."""
        ...
    def logsumexp(self, axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """log(sum(exp(x))) over ``axis``, computed stably.

        axis: None (all axes), an int or a tuple of ints; keepdims keeps the reduced axes as size 1."""
        ...
    def matmul(self, b: _TensorLike) -> TensorNode:
        """numpy's matmul: 1-d operands are vectors, 2-d matrices, more dimensions batches of matrices (batch axes broadcast).

        a, b: TensorNodes, arrays or numbers (at least one a node for a gradient; a Python number takes the other operand's dtype)."""
        ...
    def max(self, axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """Maximum over ``axis`` (default all).

        axis: None (all axes), an int or a tuple of ints; keepdims keeps the reduced axes as size 1."""
        ...
    def mean(self, axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """Mean over ``axis`` (default all).

        axis: None (all axes), an int or a tuple of ints; keepdims keeps the reduced axes as size 1."""
        ...
    def min(self, axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """Minimum over ``axis`` (default all).

        axis: None (all axes), an int or a tuple of ints; keepdims keeps the reduced axes as size 1."""
        ...
    @property
    def name(self) -> str | None:
        """An optional label, shown by repr and in pictures of the graph."""
        ...
    @name.setter
    def name(self, value: str | None) -> None: ...
    @property
    def ndim(self) -> int:
        """The value's number of axes."""
        ...
    def relu(self) -> TensorNode:
        """max(x, 0).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this node (leaves: whether .grad is filled)."""
        ...
    @requires_grad.setter
    def requires_grad(self, value: bool) -> None: ...
    def reshape(self, *shape: int | Sequence[int]) -> TensorNode:
        """The same elements in a new shape: ``x.reshape(2, -1)`` or ``x.reshape((2, -1))``."""
        ...
    def retain_grad(self) -> None:
        """Keep this node's gradient after backward even though an op made it."""
        ...
    @property
    def shape(self) -> tuple[int, ...]:
        """The value's shape, a tuple of ints."""
        ...
    def sigmoid(self) -> TensorNode:
        """sigmoid(x) = 1 / (1 + exp(-x)).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape as a tuple, or the size of one dimension."""
        ...
    def softmax(self, axis: _Axis = ...) -> TensorNode:
        """Softmax along axis (rows of a matrix by default), stable."""
        ...
    def softplus(self) -> TensorNode:
        """log(1 + exp(x)), computed without overflow.

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    @property
    def source(self) -> OpNode | None:
        """The OpNode that produced this node (None for leaves)."""
        ...
    @source.setter
    def source(self, value: OpNode | None) -> None: ...
    def sqrt(self) -> TensorNode:
        """sqrt(x) (nan for x < 0, like numpy).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def square(self) -> TensorNode:
        """x**2.

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def squeeze(self, axis: _Axis = ...) -> TensorNode:
        """Size-1 axes removed (all of them, or the given axis or tuple of axes)."""
        ...
    def sum(self, axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """Sum over ``axis`` (default: all elements, a 0-d result; ``keepdims`` keeps reduced axes as 1).

        axis: None (all axes), an int or a tuple of ints; keepdims keeps the reduced axes as size 1."""
        ...
    def tanh(self) -> TensorNode:
        """tanh(x).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def transpose(self, *axes: int | Sequence[int]) -> TensorNode:
        """Axes reversed (no arguments) or permuted: ``x.transpose(1, 0, 2)``."""
        ...
    def unsqueeze(self, axis: _Axis) -> TensorNode:
        """A size-1 axis inserted at position axis (numpy's expand_dims)."""
        ...
    @property
    def value(self) -> np.ndarray:
        """The node's array (shares memory with the engine: in-place changes reach it)."""
        ...
    @value.setter
    def value(self, value: npt.ArrayLike) -> None: ...
    def var(self, axis: _Axis = ..., ddof: float = ..., keepdims: bool = ...) -> TensorNode:
        """Variance over axis with numpy's ddof (0: divide by the count)."""
        ...
    def zero_grad(self) -> None:
        """Set the gradients of this node and all nodes below it to zero."""
        ...

class AdamConfig:
    """Hyperparameters of an Adam or AdamW step."""
    def __init__(self, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float, decoupled: bool) -> None: ...

class DTypeError(TypeError):
    """An input of the wrong kind or dtype (a TypeError)."""

class GraphError(RuntimeError):
    """A graph that cannot be differentiated as asked: freed, or changed in place since the forward (a RuntimeError)."""

class NativeContext:
    """What a native op's forward on raw arrays keeps for backward."""
    @property
    def index(self) -> int:
        """The op's row in op_table()."""
        ...
    @property
    def inputs(self) -> list[Any]:
        """The arrays the forward was given."""
        ...
    @property
    def op(self) -> str:
        """The op's name."""
        ...

class OpNode:
    """One application of an op in the graph (a diamond node)."""
    def __repr__(self) -> str:
        """OpNode[op class name]."""
        ...
    @property
    def context(self) -> dict[str, Any]:
        """What the op saved for its backward (for Python ops: the dict its forward filled)."""
        ...
    @property
    def inputs(self) -> list[TensorNode]:
        """The TensorNodes the op was applied to."""
        ...
    @property
    def name(self) -> str:
        """The op's name (the engine's, or the Python op class's)."""
        ...
    @property
    def op(self) -> type | str:
        """The op class (e.g. vg.Add) whose forward produced the outputs."""
        ...
    @property
    def outputs(self) -> list[TensorNode | None]:
        """The TensorNodes the op produced (None for an output that no longer exists)."""
        ...

class RmspropConfig:
    """Hyperparameters of an RMSprop step."""
    def __init__(self, lr: float, alpha: float, eps: float, weight_decay: float, momentum: float) -> None: ...

class SgdConfig:
    """Hyperparameters of an SGD step."""
    def __init__(self, lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool) -> None: ...

def adam_step(params: Sequence[TensorNode], first_moments: list[Any], second_moments: list[Any], steps: Sequence[int], config: AdamConfig) -> None:
    """One Adam (or AdamW) step in place; steps[i] counts parameter i's updates, this one included."""
    ...
def apply(op: int, inputs: Sequence[TensorNode], kwargs: dict[str, Any]) -> TensorNode | list[TensorNode]:
    """Applies op (a row of op_table()) to TensorNodes, with its attributes as keyword arguments."""
    ...
def apply1(op: int, x: TensorNode) -> TensorNode | list[TensorNode]:
    """apply(op, [x], {}): the shortest path, for unary functions."""
    ...
def apply_plain(op: int, *args: TensorNode) -> TensorNode | list[TensorNode]:
    """apply(op, nodes, {}) for ops called without attributes: the short path of Op.do_forward."""
    ...
def backward(context: NativeContext, grads: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
    """Runs a native op's backward for a context of forward()."""
    ...
def binary_method(op: int, reflected: bool, name: str) -> Callable[..., Any]:
    """A TensorNode method computing self <op> other (other <op> self when reflected)."""
    ...
def forward(op: int, arrays: Sequence[npt.ArrayLike], kwargs: dict[str, Any]) -> tuple[list[np.ndarray], NativeContext]:
    """Runs a native op's forward on raw arrays; returns the outputs and a context for backward."""
    ...
def gemm_backend() -> str:
    """Which library runs matrix products: 'blas' or 'eigen'."""
    ...
def get_num_threads() -> int:
    """Threads the engine uses (set_num_threads)."""
    ...
def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on in this thread."""
    ...
def is_grad_enabled() -> bool:
    """Whether ops are recorded for backward in this thread."""
    ...
def kernel_isa() -> str:
    """The instruction set of the kernels in use (chosen at import, or TAPEGRAD_ISA)."""
    ...
def kernel_isas() -> list[str]:
    """The instruction sets the kernels were compiled for, best first."""
    ...
def load_blas(path: str) -> bool:
    """Use cblas_sgemm/dgemm from this shared library for matrix products; False if it has neither."""
    ...
def op_table() -> list[dict[str, Any]]:
    """The engine's op table: one dict per row (name, arity, attrs, ...)."""
    ...
def pool_threads() -> int:
    """Threads of the element-wise pool, the caller included."""
    ...
def record(cls: Any, context: Any, inputs: Sequence[Any], outputs: Any) -> Any:
    """Puts a Python Op's application on the tape."""
    ...
def register_op_class(op: int, cls: Any) -> None:
    """The Python class of row `op` (OpNode.op returns it)."""
    ...
def rmsprop_step(params: Sequence[TensorNode], square_averages: list[Any], momentum_buffers: list[Any], config: RmspropConfig) -> None:
    """One RMSprop step in place on every parameter with a gradient."""
    ...
def set_anomaly_enabled(enabled: bool) -> None:
    """Turn anomaly mode on or off in this thread (ops remember the Python stack that made them)."""
    ...
def set_gemm_backend(name: str) -> None:
    """Switch matrix products to 'blas' (once one is loaded) or 'eigen'."""
    ...
def set_grad_enabled(enabled: bool) -> None:
    """Turn recording of ops for backward on or off in this thread."""
    ...
def set_num_threads(n: int) -> None:
    """Threads for the engine's matrix products (the BLAS's) and large element-wise kernels."""
    ...
def set_pool_threads(n: int) -> None:
    """Threads for large element-wise kernels only (set_num_threads sets these and the BLAS's)."""
    ...
def set_trace(arg0: Any) -> None:
    """Trace mode for this thread: backward calls sink(line) for each op it runs (None: off)."""
    ...
def sgd_step(params: Sequence[TensorNode], momentum_buffers: list[Any], first: Sequence[bool], config: SgdConfig) -> None:
    """One SGD step in place on every parameter with a gradient; first[i]: buffer i is new."""
    ...
def unary_method(op: int, name: str) -> Callable[..., Any]:
    """A TensorNode method applying a one-input op without attributes."""
    ...
