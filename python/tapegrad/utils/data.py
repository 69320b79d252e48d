"""PyTorch's data loading (torch.utils.data): datasets of samples and a loader that batches them.

    from tapegrad.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True)
    for inputs, labels in loader:
        ...

A dataset is anything with ``__getitem__(i)`` and ``__len__()`` (a list of (x, y) pairs will do)
or anything iterable; DataLoader batches its samples with ``default_collate``: tensors, numpy arrays
and numbers are stacked into tensors (Python floats as float64, ints as int64, numpy values keep
their dtype, as PyTorch's), tuples and lists field by field, dicts key by key.

This is not ``vg.DataLoader`` (tapegrad.data.DataLoader), the array loader of vugrad's course:
``vg.DataLoader(x, y, batch_size=128, shuffle=False, drop_last=False, seed=None)`` takes the arrays
themselves and yields arrays. Both stay; they are different classes.

Loading runs in the calling process: ``num_workers``, ``pin_memory`` and the other worker
settings are accepted and ignored. Shuffles draw from ``generator`` (a numpy Generator) or from
tapegrad.init's generator (numpy's global one until ``tapegrad.manual_seed``), at the start of each
epoch; PyTorch's orders are not reproduced.
"""

import collections.abc
import math

import numpy as np

from .. import functional as _F
from .. import init as _vg_init
from .._torchlike import as_array, make_tensor
from ..core import TensorNode


class Dataset:
    """Base class of map-style datasets: ``__getitem__(index)`` gives one sample, ``__len__()``
    their number. Subclass it (or use any object with those two methods)."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of datasets that are iterated (``__iter__``) instead of indexed."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


def _length(t):
    return t.shape[0] if isinstance(t, (TensorNode, np.ndarray)) else len(t)


class TensorDataset(Dataset):
    """Samples (tensors[0][i], tensors[1][i], ...) of tensors (or arrays) of the same first size."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, (TensorNode, np.ndarray)) or not t.shape:
                raise TypeError(f"TensorDataset: argument {i} must be a tensor or array with a first axis, "
                                f"got {type(t).__name__}")
        sizes = [_length(t) for t in tensors]
        if len(set(sizes)) > 1:
            raise ValueError(f"TensorDataset: size mismatch between tensors (first axes {sizes})")
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return _length(self.tensors[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1]) if self.cumulative_sizes else 0

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {n} samples")
        index %= n
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = 0 if which == 0 else int(self.cumulative_sizes[which - 1])
        return self.datasets[which][index - start]


def random_split(dataset, lengths, generator=None):
    """Split dataset into non-overlapping Subsets of the given lengths (or fractions summing to 1,
    the remainder given out one by one from the first), in a random order."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1) and sum(lengths) != n:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"random_split: the lengths {lengths} do not sum to the dataset's {n} samples")
    order = (_vg_init.generator() if generator is None else generator).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + length].tolist()))
        start += length
    return out


def _stack(batch):
    """Tensors of one shape stacked along a new first axis (through the graph when one needs it)."""
    shapes = {t.shape for t in batch}
    if len(shapes) > 1:
        raise ValueError(f"default_collate: stack expects each tensor to be equal size, got shapes {sorted(shapes)}")
    if any(t.requires_grad for t in batch):
        return _F.stack(batch)
    return make_tensor(np.stack([t.value for t in batch]))


def default_collate(batch):
    """A list of samples as one batch, as PyTorch's default_collate: tensors, numpy arrays and numpy
    numbers stacked into a tensor (keeping their dtype), Python floats into float64 and ints into
    int64 tensors, strings left as a list, dicts collated key by key, tuples and lists field by
    field (a list of batches), namedtuples as namedtuples."""
    elem = batch[0]
    if isinstance(elem, TensorNode):
        return _stack(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind not in "biuf":
            raise TypeError(f"default_collate: cannot batch numpy arrays of dtype {elem.dtype}")
        shapes = {np.shape(a) for a in batch}
        if len(shapes) > 1:
            raise ValueError(f"default_collate: stack expects each array to be equal size, got shapes {sorted(shapes)}")
        return make_tensor(np.stack(batch))
    if isinstance(elem, np.generic):
        return make_tensor(np.array(batch))
    if isinstance(elem, bool):
        return make_tensor(np.array(batch, dtype=bool))
    if isinstance(elem, float):
        return make_tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):
        return make_tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise ValueError("default_collate: each element in list of batch should be of equal size")
        fields = [default_collate(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(f"default_collate: a batch must hold tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


def default_convert(data):
    """One sample without batching (batch_size=None): numpy arrays and numbers become tensors, tuples,
    lists and dicts are converted element by element, tensors stay."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "biuf":
        return make_tensor(data)
    if isinstance(data, np.generic):
        return make_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(v) for v in data)
    return data


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"DataLoader: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


class DataLoader:
    """Batches of the samples of ``dataset``, one epoch per ``for batch in loader``.

    batch_size samples per batch (None: samples one by one, not batched), in order or shuffled
    (``shuffle=True``: a new order each epoch), the last short batch dropped with drop_last;
    ``sampler`` (an iterable of indices) or ``batch_sampler`` (of lists of indices) choose the
    samples instead. ``collate_fn`` (default: default_collate) turns a list of samples into a
    batch. ``len(loader)`` is the number of batches. num_workers and the other worker settings are
    accepted and ignored (loading runs in this process).
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None, persistent_workers=False,
                 pin_memory_device="", in_order=True):
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative, got {num_workers!r}")
        if batch_size is not None:
            batch_size = _positive_int(batch_size, "batch_size")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                             "sampler, and drop_last")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        iterable = isinstance(dataset, IterableDataset) or not (hasattr(dataset, "__getitem__")
                                                                 and hasattr(dataset, "__len__"))
        if iterable and not hasattr(dataset, "__iter__"):
            raise TypeError(f"DataLoader: the dataset ({type(dataset).__name__}) needs __getitem__ and __len__, "
                            "or __iter__")
        if iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader: an iterable dataset cannot be shuffled or sampled")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, bool(shuffle), drop_last
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.num_workers, self.pin_memory, self.timeout = num_workers, pin_memory, timeout
        self.collate_fn = collate_fn
        self._iterable = iterable

    def _indices(self):
        """The order of the samples of one epoch."""
        if self.sampler is not None:
            return list(self.sampler)
        n = len(self.dataset)
        if self.shuffle:
            return (_vg_init.generator() if self.generator is None else self.generator).permutation(n).tolist()
        return range(n)

    def _batches_of_indices(self):
        if self.batch_sampler is not None:
            yield from (list(b) for b in self.batch_sampler)
            return
        indices = list(self._indices())
        for start in range(0, len(indices), self.batch_size):
            chosen = indices[start:start + self.batch_size]
            if self.drop_last and len(chosen) < self.batch_size:
                return
            yield chosen

    def _collate(self, samples):
        return (self.collate_fn or default_collate)(samples)

    def __iter__(self):
        if self._iterable:
            return self._iterate_stream()
        if self.batch_size is None and self.batch_sampler is None:
            convert = self.collate_fn or default_convert
            return (convert(self.dataset[i]) for i in self._indices())
        if self.collate_fn is None and type(self.dataset) is TensorDataset:
            return self._iterate_tensors()
        return (self._collate([self.dataset[i] for i in chosen]) for chosen in self._batches_of_indices())

    def _iterate_tensors(self):
        """A TensorDataset's batches as one gather per tensor (what stacking its samples gives):
        in numpy for data (a tensor that requires grad is gathered on the graph)."""
        for chosen in self._batches_of_indices():
            index = np.asarray(chosen, dtype=np.int64)
            yield [t[index] if isinstance(t, TensorNode) and t.requires_grad else make_tensor(as_array(t)[index])
                   for t in self.dataset.tensors]

    def _iterate_stream(self):
        if self.batch_size is None:
            convert = self.collate_fn or default_convert
            yield from (convert(sample) for sample in self.dataset)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield self._collate(batch)

    def __len__(self):
        if self._iterable:
            raise TypeError("DataLoader: an iterable dataset has no length")
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


__all__ = ["ConcatDataset", "DataLoader", "Dataset", "IterableDataset", "Subset", "TensorDataset",
           "default_collate", "default_convert", "random_split"]
