"""Modules: a forward that composes ops, and the parameters it owns."""

import numpy as np

from .core import TensorNode
from .ops import FusedLinear


class Module:
    """Base class of models and layers: ``module(x)`` calls ``forward(x)``.

    ``parameters()`` collects the TensorNodes held in attributes (directly, or in lists, tuples and
    dicts) and those of sub-modules; a subclass may override it to list them explicitly, as in vugrad.
    """

    def __init__(self):
        pass

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def parameters(self):
        """The TensorNodes this module learns, each once, in attribute order."""
        found, seen = [], set()

        def visit(obj):
            if isinstance(obj, TensorNode):
                if obj.requires_grad and id(obj) not in seen:
                    seen.add(id(obj))
                    found.append(obj)
            elif isinstance(obj, Module):
                for p in obj.parameters():
                    visit(p)
            elif isinstance(obj, (list, tuple)):
                for item in obj:
                    visit(item)
            elif isinstance(obj, dict):
                for item in obj.values():
                    visit(item)

        for value in vars(self).values():
            visit(value)
        return found


class Linear(Module):
    """y = x W^T + b (one fused kernel) for a batch x of shape (n, input_size); y is (n, output_size).

    W (``w``, shape (output_size, input_size)) is drawn from a normal distribution with Glorot's
    std sqrt(2 / (input_size + output_size)); b (``b``, shape (1, output_size)) starts at zero.
    """

    def __init__(self, input_size, output_size, dtype=np.float64):
        super().__init__()
        glorot_std = np.sqrt(2.0 / (input_size + output_size))
        self.w = TensorNode((np.random.randn(output_size, input_size) * glorot_std).astype(dtype))
        self.b = TensorNode(np.zeros((1, output_size), dtype=dtype))

    def forward(self, input):
        outsize, insize = self.w.size()
        if input.ndim != 2 or input.size(1) != insize:
            raise ValueError(f"Linear: expected input of shape (n, {insize}), got {input.size()}")
        return FusedLinear.do_forward(input, self.w, self.b)

    def parameters(self):
        return [self.w, self.b]
