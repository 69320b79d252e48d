"""What the PyTorch-dialect Python layer (tapegrad.nn, tapegrad.utils.data, save/load) shares:
making tensors from arrays (in a node's dialect), reading dtypes, writing a value in place outside
the graph. Private: users call tapegrad.tensor / tapegrad.from_numpy and the in-place methods.
"""

import numpy as np

from .core import TensorNode


def _pytorch():
    from . import pytorch  # imported late: tapegrad.pytorch imports the package's functional layer

    return pytorch


def default_dtype():
    """The dtype of floating tensors made without one: tapegrad.get_default_dtype() (float32)."""
    return _pytorch().get_default_dtype()


def numpy_dtype(dtype, default=None):
    """A numpy dtype from a tapegrad dtype (tapegrad.float64 is numpy's), a numpy type, a name
    ("float32") or Python's float (float64); None gives ``default`` (None: the default dtype)."""
    if dtype is None:
        return default_dtype() if default is None else np.dtype(default)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


_SHAREABLE = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)}


def make_tensor(array, requires_grad=False):
    """A PyTorch-dialect tensor holding ``array``: sharing its memory when it is a C-contiguous
    float32, float64, int64 or bool array (tapegrad.from_numpy), a copy otherwise (other integers
    become int64)."""
    pt = _pytorch()
    array = np.asarray(array)
    if array.dtype in _SHAREABLE and array.flags.c_contiguous:
        t = pt.from_numpy(array)
    else:
        t = pt.tensor(array)
    if requires_grad:
        t.requires_grad = True
    return t


def like(node, array, requires_grad=False):
    """A new leaf holding array in the dialect of ``node`` (a vugrad TensorNode or a tensor)."""
    if isinstance(node, TensorNode) and node.dialect == "vugrad":
        return TensorNode(array, requires_grad=requires_grad)
    return make_tensor(array, requires_grad)


def is_tensor(value):
    """Whether value is a node of either dialect."""
    return isinstance(value, TensorNode)


def as_array(value):
    """The numpy value of a node (shared), or numpy.asarray of anything else."""
    return value.value if isinstance(value, TensorNode) else np.asarray(value)


def write(target, value):
    """Overwrite the value of a node (or an array) in place with ``value`` (cast to its dtype),
    outside any graph, counting the change in the node's version so graphs that saved the old value
    refuse to backward through it. Returns target."""
    source = as_array(value)
    if isinstance(target, TensorNode):
        np.copyto(target.value, source, casting="unsafe")
        target._bump_version()
    else:
        np.copyto(target, source, casting="unsafe")
    return target
