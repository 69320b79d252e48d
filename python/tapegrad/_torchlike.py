"""What the PyTorch-dialect Python layer (tapegrad.nn, tapegrad.utils.data, save/load) shares:
making torch tensors from arrays, reading dtypes given in either dialect, writing a tensor's value in
place. Private: users call tapegrad.tensor / tapegrad.from_numpy and the in-place methods.
"""

import numpy as np

from .core import TensorNode


def _package():
    import tapegrad  # the package's factories are defined after this module is imported

    return tapegrad


def default_dtype():
    """The dtype of floating tensors made without one: PyTorch's default (float32), or what
    tapegrad.set_default_dtype chose where the package has it."""
    get = getattr(_package(), "get_default_dtype", None)
    return numpy_dtype(get()) if get is not None else np.dtype(np.float32)


def numpy_dtype(dtype, default=None):
    """A numpy dtype from a numpy dtype, a numpy type, a name ("float32") or a tapegrad dtype
    (tapegrad.float64); None gives ``default`` (None: the default floating dtype)."""
    if dtype is None:
        return default_dtype() if default is None else np.dtype(default)
    try:
        return np.dtype(dtype)
    except TypeError:
        pass
    for attribute in ("numpy_dtype", "np_dtype", "type"):  # a dtype object of the PyTorch dialect
        inner = getattr(dtype, attribute, None)
        if inner is not None and inner is not dtype:
            try:
                return np.dtype(inner)
            except TypeError:
                continue
    name = str(dtype).rsplit(".", 1)[-1]
    try:
        return np.dtype(name)
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def make_tensor(array, requires_grad=False):
    """A torch tensor (PyTorch dialect: .grad None until a backward reaches it) holding ``array``
    (shared when the factory can share it)."""
    pkg = _package()
    array = np.asarray(array)
    for name in ("from_numpy", "tensor"):
        factory = getattr(pkg, name, None)
        if factory is not None:
            t = factory(np.asarray(array, order="C")) if name == "from_numpy" else factory(array)
            if requires_grad:
                t.requires_grad = True
            return t
    return TensorNode(array, requires_grad=requires_grad)  # an engine without the PyTorch dialect


def is_tensor(value):
    """Whether value is a node of either dialect."""
    return isinstance(value, TensorNode)


def as_array(value):
    """The numpy value of a node (shared), or numpy.asarray of anything else."""
    return value.value if isinstance(value, TensorNode) else np.asarray(value)


def write(target, value):
    """Overwrite the value of a node (or an array) in place with ``value`` (cast to its dtype),
    counting the change in the node's version so graphs that saved the old value refuse to
    backward through it. Returns target."""
    source = as_array(value)
    if isinstance(target, TensorNode):
        np.copyto(target.value, source, casting="unsafe")
        target._bump_version()
    else:
        np.copyto(target, source, casting="unsafe")
    return target
