"""PyTorch's ``torch.autograd`` names: Function, grad mode and backward.

    from tapegrad.autograd import Function

    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * x * g
"""

from .core import Function, FunctionContext, detect_anomaly, enable_grad, no_grad, set_detect_anomaly, \
    set_grad_enabled

__all__ = ["Function", "FunctionContext", "backward", "detect_anomaly", "enable_grad", "no_grad",
           "set_detect_anomaly", "set_grad_enabled"]


def backward(tensors, grad_tensors=None, retain_graph=None):
    """Backpropagate from each tensor in ``tensors`` (one tensor or a sequence), with the matching
    gradient of ``grad_tensors`` (None: 1, for one-element tensors)."""
    if not isinstance(tensors, (list, tuple)):
        tensors = [tensors]
    if grad_tensors is None or not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors] * len(tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"backward: {len(tensors)} tensors but {len(grad_tensors)} gradients")
    for t, g in zip(tensors, grad_tensors):
        t.backward(g, retain_graph=retain_graph)
