"""The graph: TensorNode and OpNode (C++ objects), the Op base class and grad mode.

A TensorNode holds a value (a numpy array sharing the engine's buffer), its gradient, and the OpNode
that produced it (``source``). An Op is a class with static ``forward(context, *arrays, **kwargs)`` and
``backward(context, *grads)``; ``Op.do_forward(*nodes, **kwargs)`` applies it and records an OpNode on
the tape. Ops written in Python run on the same tape as the engine's own ops.
"""

import sys

from . import _core

TensorNode = _core.TensorNode
OpNode = _core.OpNode


class Op:
    """An operation: static ``forward(context, *arrays, **kwargs)`` and ``backward(context, *grads)``.

    Subclass it to write your own op. ``forward`` gets the raw numpy values of the input nodes and
    returns an array (or a tuple of arrays); keyword arguments are constants and get no gradient.
    ``context`` is a dict to keep what the backward needs. ``backward`` gets one gradient array per
    output and returns one gradient per input (a tuple when there are several), each of its input's
    shape: the derivative of the loss with respect to that input, not just the local derivative.
    """

    @classmethod
    def do_forward(cls, *inputs, **kwargs):
        """Apply the op to TensorNodes; return the output node (a list of them for several outputs)."""
        for i, x in enumerate(inputs):
            if not isinstance(x, TensorNode):
                raise TypeError(f"{cls.__name__}: all inputs must be TensorNodes; input {i} is "
                                f"{type(x).__name__} (constants go in as keyword arguments)")
        context = {}
        outputs = cls.forward(context, *[x.value for x in inputs], **kwargs)
        if isinstance(outputs, list):
            outputs = tuple(outputs)
        return _core.record(cls, context, inputs, outputs)

    @staticmethod
    def forward(context, *inputs, **kwargs):
        """Compute the output arrays from the input arrays."""
        raise NotImplementedError("an Op subclass must define forward(context, *inputs, **kwargs)")

    @staticmethod
    def backward(context, *goutputs):
        """Compute the gradients of the inputs from those of the outputs."""
        raise NotImplementedError("an Op subclass must define backward(context, *goutputs)")


class FunctionContext:
    """What a Function's forward keeps for its backward (PyTorch's ``ctx``).

    ``save_for_backward(*values)`` stores values, ``saved_tensors`` gives them back;
    ``needs_input_grad`` tells, per argument of forward, whether it is a node that needs a gradient.
    Any other attribute may be set freely.
    """

    def __init__(self, args):
        self.needs_input_grad = tuple(isinstance(a, TensorNode) and a.requires_grad for a in args)
        self.saved_tensors = ()
        self._nargs = len(args)
        self._positions = [i for i, a in enumerate(args) if isinstance(a, TensorNode)]
        self._torch = any(isinstance(a, TensorNode) and a.dialect == "pytorch" for a in args)

    def save_for_backward(self, *values):
        """Keep values (tensors or arrays) for backward, which reads them from ``saved_tensors``."""
        self.saved_tensors = values


def _array_of(value, cls, what):
    if isinstance(value, TensorNode):
        return value.value
    return value


class Function:
    """PyTorch-style custom op: ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` as static
    methods, applied with ``F.apply(*args)`` (or on an instance, ``F().apply(*args)``).

    With PyTorch's tensors among the arguments, forward receives tensors (without a graph: what
    forward computes is not recorded) and backward receives tensors, as in PyTorch; with vugrad's
    TensorNodes they arrive as numpy arrays. Other arguments (numbers, arrays, flags) arrive as they
    are. forward returns a tensor or an array (or a tuple of them); backward returns one gradient
    (tensor, array or None) per argument of forward; only those of tensor arguments are used. Runs
    on the engine's tape like any Op.
    """

    @staticmethod
    def forward(ctx, *args):
        """Compute the output(s) from the arguments; keep what backward needs on ctx."""
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        """One gradient (or None) per argument of forward, from one gradient per output."""
        raise NotImplementedError("a Function subclass must define backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        """Apply the function; returns a TensorNode (a tuple of them for several outputs)."""
        ctx = FunctionContext(args)
        if ctx._torch:
            inputs = [a.detach() if isinstance(a, TensorNode) else a for a in args]
            with no_grad():
                outputs = cls.forward(ctx, *inputs)
        else:
            outputs = cls.forward(ctx, *[a.value if isinstance(a, TensorNode) else a for a in args])
        if isinstance(outputs, list):
            outputs = tuple(outputs)
        if isinstance(outputs, tuple):
            outputs = tuple(_array_of(o, cls, "forward") for o in outputs)
        else:
            outputs = _array_of(outputs, cls, "forward")
        return _core.record(cls, ctx, [args[i] for i in ctx._positions], outputs)

    @classmethod
    def _tape_backward(cls, ctx, *grads):
        """The engine's callback: backward's gradients, kept for the TensorNode arguments only."""
        if ctx._torch:
            grads = tuple(_core.tensor_leaf(g, False, True) for g in grads)
        result = cls.backward(ctx, *grads)
        if not isinstance(result, (tuple, list)):
            result = (result,)
        if len(result) != ctx._nargs:
            raise ValueError(f"{cls.__name__}.backward returned {len(result)} gradient(s) for the "
                             f"{ctx._nargs} argument(s) of forward")
        return tuple(_array_of(result[i], cls, "backward") for i in ctx._positions)


_OP_INDEX = {row["name"]: i for i, row in enumerate(_core.op_table())}


class NativeOp(Op):
    """An op whose forward and backward are C++ kernels of the engine (a row of its op table).

    ``do_forward(*nodes, **attributes)`` goes straight to the engine, which checks the attributes
    against the row's declarations. ``forward(context, *arrays)`` and ``backward(context, *grads)``
    also work on raw arrays, as for any Op, and run the same kernels. A subclass that redefines
    forward or backward runs as a Python op instead.
    """

    _native = None  # the engine's name of the op (its row in the op table)
    _index = None   # the row's position

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_native" in cls.__dict__:
            if cls._native not in _OP_INDEX:
                raise ValueError(f"{cls.__name__}: the engine has no op named {cls._native!r}")
            cls._index = _OP_INDEX[cls._native]
            _core.register_op_class(cls._index, cls)
        elif "forward" in cls.__dict__ or "backward" in cls.__dict__:
            cls._index = None

    @classmethod
    def do_forward(cls, *inputs, **kwargs):
        if cls._index is None:
            return super().do_forward(*inputs, **kwargs)
        if not kwargs:
            return _core.apply_plain(cls._index, *inputs)
        return _core.apply(cls._index, inputs, kwargs)

    @classmethod
    def forward(cls, context, *inputs, **kwargs):
        outputs, native = _core.forward(cls._index, inputs, kwargs)
        context["native"] = native
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    @classmethod
    def backward(cls, context, *goutputs):
        native = context["native"]
        if native.index != cls._index:
            # vugrad's ops keep plain arrays in their contexts, so course code may run one op's backward
            # on a context another op's forward filled (RowSum.backward after RowMax.forward): this op's
            # backward at the inputs that forward was given.
            _, native = _core.forward(cls._index, native.inputs, {})
        grads = _core.backward(native, goutputs)
        return grads[0] if len(grads) == 1 else tuple(grads)


class set_grad_enabled:
    """Grad mode on or off: called, it sets the mode for this thread at once; as a context manager
    (or a decorator) it sets it for the block and then restores the previous one."""

    def __init__(self, mode):
        self._mode = bool(mode)
        self._previous = _core.is_grad_enabled()
        _core.set_grad_enabled(self._mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._previous)
        return False

    def __call__(self, fn):
        import functools

        mode = self._mode
        _core.set_grad_enabled(self._previous)  # used as a decorator: the mode applies inside fn only

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            previous = _core.is_grad_enabled()
            _core.set_grad_enabled(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _core.set_grad_enabled(previous)

        return wrapper


class no_grad(set_grad_enabled):
    """Context manager (and decorator) in which ops record nothing: results have no source."""

    def __init__(self):
        self._mode = False

    def __enter__(self):  # the mode is set on entering, not on construction as set_grad_enabled's
        self._previous = _core.is_grad_enabled()
        _core.set_grad_enabled(self._mode)
        return self

    def __call__(self, fn):
        self._previous = _core.is_grad_enabled()
        return super().__call__(fn)


class enable_grad(no_grad):
    """Context manager (and decorator) in which ops record again (inside no_grad, say)."""

    def __init__(self):
        self._mode = True


class detect_anomaly:
    """Context manager in which backward checks each op's gradients and raises RuntimeError at the
    first op that produces nan or inf, naming it and showing where it was created."""

    def __enter__(self):
        self._previous = _core.is_anomaly_enabled()
        _core.set_anomaly_enabled(True)
        return self

    def __exit__(self, *exc):
        _core.set_anomaly_enabled(self._previous)
        return False


class trace:
    """Context manager that shows the backward pass as it runs: each op in the order backward visits it,
    with the shapes of the gradients it received (one per output) and returned (one per input; "-"
    where an input needs none). Lines go to ``file`` (default: standard output) and are kept in
    ``lines``. Off by default, and costs nothing when off.

        with vg.trace():
            loss.backward()
        # 1. sum: received (()), returned ((128,))
        # ...
    """

    def __init__(self, file=None):
        self.file = file
        self.lines = []

    def _emit(self, line):
        self.lines.append(line)
        print(line, file=self.file if self.file is not None else sys.stdout)

    def __enter__(self):
        _core.set_trace(self._emit)
        return self

    def __exit__(self, *exc):
        _core.set_trace(None)
        return False


def set_detect_anomaly(enabled):
    """Turn anomaly mode on or off for this thread (see detect_anomaly)."""
    _core.set_anomaly_enabled(bool(enabled))


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return _core.is_grad_enabled()
