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
    def __abs__(self) -> TensorNode:
        """|x|.

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def __add__(self, other: _TensorLike) -> TensorNode:
        """The op add on (self, other)."""
        ...
    def __array__(self, dtype: Any = ..., copy: Any = ...) -> TensorNode: ...
    def __bool__(self) -> bool: ...
    def __dlpack__(self, kw: Any) -> TensorNode: ...
    def __dlpack_device__(self) -> TensorNode: ...
    def __eq__(self, other: _TensorLike) -> TensorNode:  # type: ignore[override]
        """The op equal on (self, other)."""
        ...
    def __float__(self) -> TensorNode: ...
    def __format__(self, spec: Any) -> TensorNode: ...
    def __ge__(self, other: _TensorLike) -> TensorNode:
        """The op greater_equal on (self, other)."""
        ...
    def __getitem__(self, key: Any) -> TensorNode:
        """x[key] with numpy's (and PyTorch's) indexing; integer and boolean tensors as index arrays."""
        ...
    def __gt__(self, other: _TensorLike) -> TensorNode:
        """The op greater on (self, other)."""
        ...
    def __iadd__(self, other: _TensorLike) -> TensorNode:
        """x op= other. PyTorch's tensors: always in place (recorded on the graph when x is on one); vugrad's TensorNode: x += other: in place on a leaf (bumping its version); x = x + other when x or other is part of a graph"""
        ...
    def __imul__(self, other: _TensorLike) -> TensorNode:
        """x op= other. PyTorch's tensors: always in place (recorded on the graph when x is on one); vugrad's TensorNode: x *= other: in place on a leaf (bumping its version); x = x * other when x or other is part of a graph"""
        ...
    def __index__(self) -> TensorNode: ...
    def __init__(self, value: npt.ArrayLike, source: None = None, name: str | None = None, requires_grad: bool = True) -> None:
        """A leaf node holding `value` (an array, or anything numpy.asarray takes; its memory is shared when it is a contiguous float32/float64 array)."""
        ...
    def __int__(self) -> TensorNode: ...
    def __isub__(self, other: _TensorLike) -> TensorNode:
        """x op= other. PyTorch's tensors: always in place (recorded on the graph when x is on one); vugrad's TensorNode: x -= other: in place on a leaf (bumping its version); x = x - other when x or other is part of a graph"""
        ...
    def __iter__(self) -> TensorNode: ...
    def __itruediv__(self, other: _TensorLike) -> TensorNode:
        """x op= other. PyTorch's tensors: always in place (recorded on the graph when x is on one); vugrad's TensorNode: x /= other: in place on a leaf (bumping its version); x = x / other when x or other is part of a graph"""
        ...
    def __le__(self, other: _TensorLike) -> TensorNode:
        """The op less_equal on (self, other)."""
        ...
    def __len__(self) -> int:
        """The size of the first axis."""
        ...
    def __lt__(self, other: _TensorLike) -> TensorNode:
        """The op less on (self, other)."""
        ...
    def __matmul__(self, other: _TensorLike) -> TensorNode:
        """The op matmul on (self, other)."""
        ...
    def __mul__(self, other: _TensorLike) -> TensorNode:
        """The op multiply on (self, other)."""
        ...
    def __ne__(self, other: _TensorLike) -> TensorNode:  # type: ignore[override]
        """The op not_equal on (self, other)."""
        ...
    def __neg__(self) -> TensorNode:
        """-x.

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def __pow__(self, other: _TensorLike) -> TensorNode:
        """The op power on (self, other)."""
        ...
    def __radd__(self, other: _TensorLike) -> TensorNode:
        """The op add on (other, self)."""
        ...
    def __reduce__(self) -> TensorNode:
        """Pickling (and copy.deepcopy) keep the value, dtype, dialect and requires_grad, not the graph."""
        ...
    def __repr__(self) -> TensorNode:
        """PyTorch's tensors: ``tensor([...], grad_fn=<...>)``; vugrad's: TensorNode[name, size, dtype, source]."""
        ...
    def __rmatmul__(self, other: _TensorLike) -> TensorNode:
        """The op matmul on (other, self)."""
        ...
    def __rmul__(self, other: _TensorLike) -> TensorNode:
        """The op multiply on (other, self)."""
        ...
    def __rpow__(self, other: _TensorLike) -> TensorNode:
        """The op power on (other, self)."""
        ...
    def __rsub__(self, other: _TensorLike) -> TensorNode:
        """The op subtract on (other, self)."""
        ...
    def __rtruediv__(self, other: _TensorLike) -> TensorNode:
        """The op divide on (other, self)."""
        ...
    def __setitem__(self, key: Any, value: Any) -> TensorNode:
        """x[key] = value, in place (recorded on the graph when x or value is part of one)."""
        ...
    def __str__(self) -> TensorNode:
        """PyTorch's tensors: ``tensor([...], grad_fn=<...>)``; vugrad's: TensorNode[name, size, dtype, source]."""
        ...
    def __sub__(self, other: _TensorLike) -> TensorNode:
        """The op subtract on (self, other)."""
        ...
    def __truediv__(self, other: _TensorLike) -> TensorNode:
        """The op divide on (self, other)."""
        ...
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
    def add(self, y: Any, alpha: Any = ...) -> TensorNode:
        """x + alpha * y."""
        ...
    def add_(self, other: _TensorLike, alpha: Any = ...) -> TensorNode:
        """In place: x.add_(other) sets x to x add other (``alpha`` scales other)."""
        ...
    def all(self, dim: Any = ..., keepdim: Any = ...) -> TensorNode:
        """Whether all elements (along ``dim``) are non-zero: a bool tensor."""
        ...
    def any(self, dim: Any = ..., keepdim: Any = ...) -> TensorNode:
        """Whether any element (along ``dim``) is non-zero: a bool tensor."""
        ...
    def argmax(self, dim: Any = ..., keepdim: Any = ...) -> TensorNode:
        """Indices (int64) of the maxima along ``dim`` (None: of the flattened tensor)."""
        ...
    def argmin(self, dim: Any = ..., keepdim: Any = ...) -> TensorNode:
        """Indices (int64) of the minima along ``dim`` (None: of the flattened tensor)."""
        ...
    def backward(self, gradient: Any = None, retain_graph: Any = None) -> None:
        """Backpropagate from this node with `gradient` as its gradient (default 1: one-element nodes only). Leaves that require grad add the gradient to .grad; the graph's saved values are freed unless retain_graph=True."""
        ...
    def bool(self) -> TensorNode:
        """The tensor as bool (itself if it already is)."""
        ...
    def broadcast_to(self, shape: int | Sequence[int]) -> TensorNode:
        """numpy's broadcast_to (a copy); the gradient sums over the broadcast axes."""
        ...
    def clamp(self, min: Any = ..., max: Any = ...) -> TensorNode:
        """x limited to [min, max] (either may be None)."""
        ...
    def clamp_(self, min: Any = ..., max: Any = ...) -> TensorNode:
        """In place: x limited to [min, max]."""
        ...
    def clear(self) -> None:
        """Disconnect the graph below this node so it can be freed."""
        ...
    def clip(self, min: Any = ..., max: Any = ...) -> TensorNode:
        """x limited to [min, max] (either may be None)."""
        ...
    def clone(self) -> TensorNode:
        """A copy of the tensor with its own memory, on the graph (the gradient flows back to x)."""
        ...
    def copy_(self, src: Any) -> TensorNode:
        """In place: x's values from ``src`` (broadcast to x's shape; a gradient flows to src)."""
        ...
    @property
    def data(self) -> TensorNode:
        """The tensor's values as a tensor without a graph, sharing its memory."""
        ...
    @data.setter
    def data(self, value: TensorNode) -> None: ...
    def detach(self) -> TensorNode:
        """A new leaf sharing this node's value, cut off from the graph (no gradient)."""
        ...
    @property
    def device(self) -> TensorNode:
        """Always 'cpu'."""
        ...
    @property
    def dialect(self) -> str:
        """'vugrad' for vg.TensorNode and what is made from it only, 'pytorch' for the tensors of tapegrad.tensor and the other factories and anything computed from one."""
        ...
    def dim(self) -> TensorNode:
        """The number of dimensions."""
        ...
    def div(self, y: Any) -> TensorNode:
        """x / y, element-wise with broadcasting."""
        ...
    def div_(self, other: _TensorLike, alpha: Any = ...) -> TensorNode:
        """In place: x.div_(other) sets x to x divide other (``alpha`` scales other)."""
        ...
    def double(self) -> TensorNode:
        """The tensor as float64 (itself if it already is)."""
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
    def fill_(self, value: Any) -> TensorNode:
        """In place: every element ``value`` (a gradient flows to a tensor value)."""
        ...
    def flatten(self, start_dim: Any = ..., end_dim: Any = ...) -> TensorNode:
        """Axes start_dim..end_dim (inclusive) merged into one, as torch.flatten: by default every
        axis, giving a 1-d node (a 0-d node becomes shape (1,)); ``flatten(x, 1)`` turns images
        (N, C, H, W) into rows (N, C * H * W). A view (one Reshape)."""
        ...
    def float(self) -> TensorNode:
        """The tensor as float32 (itself if it already is)."""
        ...
    @property
    def grad(self) -> np.ndarray:
        """Gradient of the loss with respect to the value. vugrad's TensorNode: an array (zeros before backward); PyTorch's tensors: a tensor sharing the gradient's memory, or None before a backward reaches the node (and for nodes made by ops, unless retain_grad())."""
        ...
    @grad.setter
    def grad(self, value: npt.ArrayLike | None) -> None: ...
    @property
    def grad_fn(self) -> TensorNode:
        """The OpNode that made this tensor (None for leaves)."""
        ...
    def int(self) -> TensorNode:
        """The tensor as int64 (itself if it already is)."""
        ...
    def is_floating_point(self) -> TensorNode:
        """Whether the dtype is float32 or float64."""
        ...
    @property
    def is_leaf(self) -> bool:
        """True for nodes not made by an op (no source)."""
        ...
    def item(self) -> Any:
        """The value of a one-element tensor as a Python number: a float, or an int or bool for integer and boolean tensors."""
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
    def long(self) -> TensorNode:
        """The tensor as int64 (itself if it already is)."""
        ...
    def matmul(self, b: _TensorLike) -> TensorNode:
        """Matrix product with numpy's (and PyTorch's) broadcasting rules."""
        ...
    def max(self, dim: Any = ..., keepdim: Any = ..., axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """PyTorch's tensors: max(dim) is a named tuple (values, indices); numpy's: the maximum over ``axis``."""
        ...
    def mean(self, dim: Any = ..., keepdim: Any = ..., axis: _Axis = ..., keepdims: bool = ..., dtype: Any = ...) -> TensorNode:
        """Mean over ``dim``/``axis`` (None: all), keeping it as size 1 with keepdim/keepdims."""
        ...
    def min(self, dim: Any = ..., keepdim: Any = ..., axis: _Axis = ..., keepdims: bool = ...) -> TensorNode:
        """PyTorch's tensors: min(dim) is a named tuple (values, indices); numpy's: the minimum over ``axis``."""
        ...
    def mul(self, b: _TensorLike) -> TensorNode:
        """a * b, element-wise with broadcasting."""
        ...
    def mul_(self, other: _TensorLike, alpha: Any = ...) -> TensorNode:
        """In place: x.mul_(other) sets x to x multiply other (``alpha`` scales other)."""
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
    def ndimension(self) -> TensorNode:
        """The number of dimensions."""
        ...
    def nelement(self) -> TensorNode:
        """The number of elements."""
        ...
    def normal_(self, *args: Any) -> TensorNode:
        """In place, without a graph: values drawn from tapegrad's generator (normal_(*parameters))."""
        ...
    def numel(self) -> TensorNode:
        """The number of elements."""
        ...
    def numpy(self, force: Any = ...) -> TensorNode:
        """The values as a numpy array sharing the tensor's memory (changes show in both)."""
        ...
    def permute(self, *dims: Any) -> TensorNode:
        """x with its dimensions in the order ``dims``."""
        ...
    def pow(self, y: Any) -> TensorNode:
        """x ** y, element-wise with broadcasting."""
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
    def requires_grad_(self, requires_grad: Any = ...) -> TensorNode:
        """Set requires_grad (of a leaf) and return the tensor."""
        ...
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
    def squeeze(self, dim: Any = ..., axis: _Axis = ...) -> TensorNode:
        """Size-1 dimensions removed (all, or only ``dim``; PyTorch's tensors keep a ``dim`` of another size)."""
        ...
    def sub(self, y: Any, alpha: Any = ...) -> TensorNode:
        """x - alpha * y."""
        ...
    def sub_(self, other: _TensorLike, alpha: Any = ...) -> TensorNode:
        """In place: x.sub_(other) sets x to x subtract other (``alpha`` scales other)."""
        ...
    def sum(self, dim: Any = ..., keepdim: Any = ..., axis: _Axis = ..., keepdims: bool = ..., dtype: Any = ...) -> TensorNode:
        """Sum over ``dim``/``axis`` (None: all), keeping it as size 1 with keepdim/keepdims."""
        ...
    def t(self) -> TensorNode:
        """The transpose of a matrix (a 0-d or 1-d tensor is itself)."""
        ...
    def tanh(self) -> TensorNode:
        """tanh(x).

        x: a TensorNode (or an array or number, a constant); the result has its shape."""
        ...
    def to(self, *args: Any, dtype: Any = ..., kwargs: Any) -> TensorNode:
        """The tensor in another dtype (``to(tapegrad.float64)``); devices other than "cpu" are refused."""
        ...
    def tolist(self) -> TensorNode:
        """The values as (nested lists of) Python numbers."""
        ...
    def transpose(self, *axes: int | Sequence[int]) -> TensorNode:
        """PyTorch's tensors: transpose(dim0, dim1) swaps two dimensions; vugrad's: numpy's transpose(*axes)."""
        ...
    def type(self, dtype: Any = ...) -> TensorNode:
        """The dtype's name (no argument), or the tensor converted to ``dtype``."""
        ...
    def uniform_(self, *args: Any) -> TensorNode:
        """In place, without a graph: values drawn from tapegrad's generator (uniform_(*parameters))."""
        ...
    def unsqueeze(self, dim: Any = ..., axis: _Axis = ...) -> TensorNode:
        """x with a size-1 dimension inserted at ``dim`` (or numpy's ``axis``)."""
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
    def view(self, *shape: int | Sequence[int]) -> TensorNode:
        """The same memory in another shape (``view(-1, 4)``)."""
        ...
    def zero_(self) -> TensorNode:
        """In place: every element 0."""
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
    def next_functions(self) -> TensorNode:
        """PyTorch's view of the graph: ((the op that made each input, or None for a leaf, 0), ...)."""
        ...
    @property
    def op(self) -> type | str:
        """The op class (e.g. vg.Add) whose forward produced the outputs."""
        ...
    @property
    def outputs(self) -> list[TensorNode | None]:
        """The TensorNodes the op produced (None for an output that no longer exists)."""
        ...

class Program:
    """A recorded training step (vg.jit), replayable in C++ on new arguments of the same shapes."""
    @property
    def actions(self) -> int:
        """The number of recorded actions."""
        ...
    def describe(self) -> list[str]:
        """One line per recorded action, then what the step returns."""
        ...
    def difference(self, other: Program) -> str:
        """The first difference from another recording of the step, or '' when both did the same."""
        ...
    def optimiser_steps(self) -> list[list[int]]:
        """Per recorded optimiser step (in order): Adam's update counts as of the last call (empty for others)."""
        ...
    def run(self, args: Sequence[Any]) -> list[Any]:
        """Replay the step on new arguments (the recorded call's TensorNodes and arrays in their places); returns the nodes the step returned, as a list."""
        ...
    def set_optimiser_steps(self, k: int, steps: Sequence[int]) -> None:
        """Set Adam's update counts of recorded optimiser step k (as of now)."""
        ...

class RmspropConfig:
    """Hyperparameters of an RMSprop step."""
    def __init__(self, lr: float, alpha: float, eps: float, weight_decay: float, momentum: float) -> None: ...

class SgdConfig:
    """Hyperparameters of an SGD step."""
    def __init__(self, lr: float, momentum: float, dampening: float, weight_decay: float, nesterov: bool) -> None: ...

class TraceError:
    """A step that vg.jit cannot replay in C++ (a Python op, numpy code on a node's value, a random draw): a ValueError."""

class UnaryFunction:
    """A one-input function of the op table (vg.sigmoid, vg.exp ...), run without Python."""
    def __call__(self, x: _TensorLike) -> TensorNode: ...
    def __reduce__(self) -> str: ...

def adam_step(params: Sequence[TensorNode], first_moments: list[Any], second_moments: list[Any], steps: Sequence[int], config: AdamConfig) -> None:
    """One Adam (or AdamW) step in place; steps[i] counts parameter i's updates, this one included."""
    ...
def apply(op: int, inputs: Sequence[TensorNode], kwargs: dict[str, Any]) -> TensorNode | list[TensorNode]:
    """Applies op (a row of op_table()) to TensorNodes, with its attributes as keyword arguments."""
    ...
def apply_plain(op: int, *args: TensorNode) -> TensorNode | list[TensorNode]:
    """apply(op, nodes, {}) for ops called without attributes: the short path of Op.do_forward."""
    ...
def backward(context: NativeContext, grads: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
    """Runs a native op's backward for a context of forward()."""
    ...
def bf16_kernel() -> str:
    """Which kernel runs bfloat16 products: 'avx512_bf16' (the CPU has it) or 'emulated'."""
    ...
def binary_method(op: int, reflected: bool, name: str) -> Callable[..., Any]:
    """A TensorNode method computing self <op> other (other <op> self when reflected)."""
    ...
def buffer_cache_bytes() -> int:
    """Bytes held now in freed tensor buffers kept for reuse."""
    ...
def buffer_cache_limit() -> int:
    """Bytes of freed large tensor buffers kept for reuse, at most."""
    ...
def forward(op: int, arrays: Sequence[npt.ArrayLike], kwargs: dict[str, Any]) -> tuple[list[np.ndarray], NativeContext]:
    """Runs a native op's forward on raw arrays; returns the outputs and a context for backward."""
    ...
def gemm_backend() -> str:
    """Which library runs matrix products: 'blas' or 'eigen'."""
    ...
def get_bf16_products() -> bool:
    """Whether float32 products take bfloat16 operands."""
    ...
def get_flush_denormal() -> bool:
    """Whether the matrix products and optimiser steps flush subnormals to zero."""
    ...
def get_num_threads() -> int:
    """Threads the engine uses (set_num_threads)."""
    ...
def inplace(target: Any, compute: Any, name: str) -> None:
    """target <- compute(target) in place: written into its memory, and recorded on the graph (target becomes the result node, keeping its identity) when the result has a source."""
    ...
def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on in this thread."""
    ...
def is_grad_enabled() -> bool:
    """Whether ops are recorded for backward in this thread."""
    ...
def jit_signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a vg.jit recording depends on of these arguments: a hashable tuple (see replay.py)."""
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
def release_buffer_cache() -> None:
    """Give the freed tensor buffers kept for reuse back to malloc."""
    ...
def rmsprop_step(params: Sequence[TensorNode], square_averages: list[Any], momentum_buffers: list[Any], config: RmspropConfig) -> None:
    """One RMSprop step in place on every parameter with a gradient."""
    ...
def set_anomaly_enabled(enabled: bool) -> None:
    """Turn anomaly mode on or off in this thread (ops remember the Python stack that made them)."""
    ...
def set_bf16_kernel(name: str) -> None:
    """Force 'emulated' bfloat16 products (rounded operands, float32 product) or the 'avx512_bf16' kernel."""
    ...
def set_bf16_products(on: bool) -> None:
    """float32 products of at least 32^3 multiply-adds with bfloat16 operands (True) or in float32 (False)."""
    ...
def set_buffer_cache_limit(bytes: int) -> None:
    """Keep at most this many bytes of freed large tensor buffers for reuse (0: none); frees the excess."""
    ...
def set_flush_denormal(on: bool) -> bool:
    """Flush subnormals to zero (FTZ|DAZ) in the matrix products and optimiser steps (True, the default) or keep IEEE subnormals (False), process-wide; False if the CPU has no such mode."""
    ...
def set_gemm_backend(name: str) -> None:
    """Switch matrix products to 'blas' (once one is loaded) or 'eigen'."""
    ...
def set_grad_enabled(enabled: bool) -> None:
    """Turn recording of ops for backward on or off in this thread."""
    ...
def set_integer_operator(function: Any) -> None:
    """Set f(op, self, other, reflected), which computes operators whose operands are not all floats."""
    ...
def set_num_threads(n: int) -> None:
    """Threads for the engine's large matrix products (split over its own threads; the BLAS runs on one) and large element-wise kernels."""
    ...
def set_pool_threads(n: int) -> None:
    """Threads of the engine's pool only (set_num_threads sets these and OpenMP's)."""
    ...
def set_trace(arg0: Any) -> None:
    """Trace mode for this thread: backward calls sink(line) for each op it runs (None: off)."""
    ...
def sgd_step(params: Sequence[TensorNode], momentum_buffers: list[Any], first: Sequence[bool], config: SgdConfig) -> None:
    """One SGD step in place on every parameter with a gradient; first[i]: buffer i is new."""
    ...
def tensor_leaf(data: Any, requires_grad: bool = False, share: bool = False) -> TensorNode:
    """A PyTorch-dialect leaf holding `data` (copied unless share and it is a C-contiguous, writeable array of the kept dtype: floats keep their width, integers become int64, booleans bool)."""
    ...
def trace_abort() -> None:
    """Drop this thread's recording, if any."""
    ...
def trace_refuse(what: str, instead: str) -> None:
    """TraceError saying the step does `what`, which a replay cannot repeat (when recording; else nothing)."""
    ...
def trace_start(args: Sequence[Any]) -> None:
    """Start recording this thread's tape actions for vg.jit, with the step's arguments."""
    ...
def trace_stop(outputs: Sequence[Any]) -> Program:
    """End the recording with the nodes the step returned; the Program (TraceError if it cannot be replayed)."""
    ...
def tracing() -> bool:
    """Whether this thread is recording for vg.jit."""
    ...
def unary_function(op: int, convert: Callable[[Any], TensorNode]) -> UnaryFunction:
    """vg.<op>(x) for a one-input op without attributes: the op on a TensorNode, on convert(x) otherwise."""
    ...
def writable(node: TensorNode) -> np.ndarray:
    """A writeable numpy view of the node's memory (for in-place methods, which then bump its version)."""
    ...
