"""Data sets of vugrad's course: the synthetic ellipse task and MNIST (IDX files)."""

import gzip
import hashlib
import os
import urllib.request
import zlib

import numpy as np


def load_synth(num_train=60_000, num_val=10_000, seed=None):
    """vugrad's synthetic task: 2 standard-normal features, class 1 outside an ellipse.

    The label is 1 where the quadratic form x^T Q x exceeds 0.6, with Q = [[1, .5], [1, .2]].
    Draws from numpy's global generator (as vugrad does) unless ``seed`` is given.
    Returns ``(xtrain, ytrain), (xval, yval), 2``: float64 arrays of shape (n, 2) and int64 labels.
    """
    rng = np.random if seed is None else np.random.default_rng(seed)
    quad = np.asarray([[1, 0.5], [1, 0.2]])
    x = rng.standard_normal((num_train + num_val, 2))
    q = np.einsum("bf,fk,bk->b", x, quad, x)
    y = (q > 0.6).astype(np.int64)
    return (x[:num_train], y[:num_train]), (x[num_train:], y[num_train:]), 2


MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a numpy array; ValueError if it is malformed."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX payload is {len(data) - header} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder, name):
    """The path of ``name`` in folder, gzipped or not, or None."""
    for candidate in (name, name[:-3]):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def _download(name, folder, checksum):
    errors = []
    for mirror in MNIST_MIRRORS:
        tmp = os.path.join(folder, name + ".part")
        try:
            urllib.request.urlretrieve(mirror + name, tmp)
            if _md5(tmp) != checksum:
                raise ValueError(f"checksum mismatch (expected md5 {checksum})")
            os.replace(tmp, os.path.join(folder, name))  # atomic: no half-written file under the real name
            return
        except Exception as e:  # try the next mirror
            errors.append(f"{mirror}{name}: {e}")
            if os.path.exists(tmp):
                os.remove(tmp)
    raise RuntimeError(
        "could not download MNIST:\n  " + "\n  ".join(errors) + "\n"
        f"Put the four IDX files ({', '.join(MNIST_FILES)}) in {folder}, or pass load_mnist(path=...) "
        "a folder that holds them. Offline, Fashion-MNIST works the same way: "
        "apt-get install dataset-fashion-mnist, then load_fashion_mnist().")


def mnist_folder():
    """Where MNIST is cached: $TAPEGRAD_DATA/mnist, else ~/.cache/tapegrad/mnist."""
    base = os.environ.get("TAPEGRAD_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "tapegrad")
    return os.path.join(base, "mnist")


def _load_idx_set(folder, final, flatten, name):
    paths = {f: _find(folder, f) for f in MNIST_FILES}
    missing = [f for f, p in paths.items() if p is None]
    if missing:
        raise FileNotFoundError(f"{name}: {folder} lacks {', '.join(missing)}")
    xtrain = read_idx(paths["train-images-idx3-ubyte.gz"])
    ytrain = read_idx(paths["train-labels-idx1-ubyte.gz"]).astype(np.int64)
    xtest = read_idx(paths["t10k-images-idx3-ubyte.gz"])
    ytest = read_idx(paths["t10k-labels-idx1-ubyte.gz"]).astype(np.int64)
    if len(xtrain) != len(ytrain) or len(xtest) != len(ytest):
        raise ValueError(f"{name}: image and label counts differ in {folder}")
    if flatten:
        xtrain = xtrain.reshape(len(xtrain), -1)
        xtest = xtest.reshape(len(xtest), -1)
    if not final:  # the last 5000 training images serve as validation; the test set stays hidden
        if len(xtrain) <= 5000:
            raise ValueError(f"{name}: {folder} has {len(xtrain)} training images; splitting off 5000 for "
                             "validation needs more (or use final=True)")
        return (xtrain[:-5000], ytrain[:-5000]), (xtrain[-5000:], ytrain[-5000:]), 10
    return (xtrain, ytrain), (xtest, ytest), 10


def load_mnist(final=False, flatten=True, path=None):
    """MNIST as in vugrad: ``(xtrain, ytrain), (xval, yval), 10`` with uint8 pixels (0-255).

    With ``final=False`` the validation set is the last 5000 training images; with ``final=True`` it
    is the test set. ``flatten`` gives images as rows of 784 values, else (n, 28, 28).
    Reads the IDX files from ``path`` when given; otherwise from the cache folder (see
    ``mnist_folder()``), downloading them there once (checksums verified) when absent.
    """
    if path is not None:
        return _load_idx_set(path, final, flatten, "load_mnist")
    folder = mnist_folder()
    os.makedirs(folder, exist_ok=True)
    for name, checksum in MNIST_FILES.items():
        if _find(folder, name) is None:
            _download(name, folder, checksum)
    return _load_idx_set(folder, final, flatten, "load_mnist")


def load_fashion_mnist(final=False, flatten=True, path=None):
    """Fashion-MNIST, same form as ``load_mnist``, from ``path`` or from Debian's package
    dataset-fashion-mnist (``/usr/share/datasets/fashion-mnist``), which works offline."""
    folder = path or FASHION_MNIST_DIR
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"load_fashion_mnist: no folder {folder}; install it with "
                                "`apt-get install dataset-fashion-mnist` or pass path= a folder of the IDX files")
    return _load_idx_set(folder, final, flatten, "load_fashion_mnist")
