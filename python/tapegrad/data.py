"""Data sets of the course and the tools to feed them to a model.

- ``load_synth``: vugrad's synthetic ellipse task; ``load_five_points``: the labs' five-point toy set.
- ``load_mnist`` / ``load_fashion_mnist``: IDX files from a folder the user names, from Debian's
  dataset-fashion-mnist, or downloaded once into a cache folder (checksums verified, several mirrors).
- ``load_cifar10``: the binary version of CIFAR-10 (never its pickles), from a folder or downloaded
  once into the cache folder (md5 checked), as NCHW float32 images.
- ``read_idx`` / ``write_idx``: the IDX format (raw or gzipped).
- ``batches`` / ``DataLoader``: mini-batches, optionally shuffled (seeded) and without a short last one.
"""

import gzip
import hashlib
import math
import os
import urllib.request
import zlib

import numpy as np

from . import init


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


def load_five_points():
    """The labs' five-point toy set: x = (0,0), (1,0), (0,-1), (-1,0), (0,1) with labels 1,0,0,0,0.

    The centre point is class 1 and the four around it class 0, so no line separates them.
    Returns ``(x, y)``: float64 x of shape (5, 2) and int64 y of shape (5,).
    """
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0, 0, 0, 0], dtype=np.int64)
    return x, y


# ---- IDX files ----

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(t).newbyteorder("=") if np.dtype(t).byteorder != "|" else np.dtype(t): code
              for code, t in _IDX_TYPES.items()}


def read_idx(path):
    """Read an IDX file (gzipped when the name ends in .gz) into a numpy array of native byte order.

    ValueError if it is malformed (bad magic number, truncated header, payload of the wrong size, or
    a broken gzip stream).
    """
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


def write_idx(path, array):
    """Write an array as an IDX file, gzipped when the name ends in .gz; returns path.

    The IDX types are uint8, int8, int16, int32, float32 and float64 (stored big-endian); other
    dtypes raise TypeError. Dimensions are limited to 255, sizes to 2**32 - 1.
    """
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.byteorder not in "|=" else array.dtype
    if native not in _IDX_CODES:
        raise TypeError(f"write_idx: IDX has no type for {array.dtype}; use uint8, int8, int16, int32, "
                        "float32 or float64")
    if array.ndim > 255 or any(n >= 2 ** 32 for n in array.shape):
        raise ValueError(f"write_idx: shape {array.shape} does not fit an IDX header")
    header = bytes([0, 0, _IDX_CODES[native], array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


# ---- MNIST and Fashion-MNIST ----

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
FASHION_MNIST_FILES = {  # Zalando's published md5 sums of the gzipped files
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # plain http: the md5 check guards it
)
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
DOWNLOAD_TIMEOUT = 60  # seconds without data before a mirror is given up


def _find(folder, name):
    """The path of ``name`` in folder, gzipped or not, or None."""
    for candidate in (name, name[:-3]):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(name, folder, checksum, mirrors, title, how_to):
    """Fetch name from the first mirror that serves it with the right md5, into folder, atomically."""
    errors = []
    for mirror in mirrors:
        tmp = os.path.join(folder, name + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=DOWNLOAD_TIMEOUT) as response, open(tmp, "wb") as f:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
            got = _md5(tmp)
            if got != checksum:
                raise ValueError(f"checksum mismatch (md5 {got}, expected {checksum})")
            os.replace(tmp, os.path.join(folder, name))  # atomic: no half-written file under the real name
            return
        except Exception as e:  # try the next mirror
            errors.append(f"{mirror}{name}: {e}")
            if os.path.exists(tmp):
                os.remove(tmp)
    raise RuntimeError(f"could not download {title}:\n  " + "\n  ".join(errors) + "\n" + how_to)


def data_folder():
    """The cache folder of downloaded data sets: $TAPEGRAD_DATA, else ~/.cache/tapegrad."""
    return os.environ.get("TAPEGRAD_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "tapegrad")


def mnist_folder():
    """Where MNIST is cached: $TAPEGRAD_DATA/mnist, else ~/.cache/tapegrad/mnist."""
    return os.path.join(data_folder(), "mnist")


def fashion_mnist_folder():
    """Where a downloaded Fashion-MNIST is cached: $TAPEGRAD_DATA/fashion-mnist, else
    ~/.cache/tapegrad/fashion-mnist."""
    return os.path.join(data_folder(), "fashion-mnist")


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
    else:  # NCHW: one channel, as conv2d wants
        xtrain = xtrain.reshape((len(xtrain), 1) + xtrain.shape[1:])
        xtest = xtest.reshape((len(xtest), 1) + xtest.shape[1:])
    if not final:  # the last 5000 training images serve as validation; the test set stays hidden
        if len(xtrain) <= 5000:
            raise ValueError(f"{name}: {folder} has {len(xtrain)} training images; splitting off 5000 for "
                             "validation needs more (or use final=True)")
        return (xtrain[:-5000], ytrain[:-5000]), (xtrain[-5000:], ytrain[-5000:]), 10
    return (xtrain, ytrain), (xtest, ytest), 10


def _cached(folder, files, mirrors, title, how_to):
    """Download into folder each file of files that it lacks."""
    os.makedirs(folder, exist_ok=True)
    for name, checksum in files.items():
        if _find(folder, name) is None:
            _download(name, folder, checksum, mirrors, title, how_to)


def load_mnist(final=False, flatten=True, path=None):
    """MNIST as in vugrad: ``(xtrain, ytrain), (xval, yval), 10`` with uint8 pixels (0-255).

    With ``final=False`` the validation set is the last 5000 training images; with ``final=True`` it
    is the test set. ``flatten`` gives images as rows of 784 values, else as NCHW images (n, 1, 28, 28)
for conv2d; labels are int64.
    Reads the IDX files (gzipped or not) from ``path`` when given; otherwise from the cache folder
    (``mnist_folder()``: $TAPEGRAD_DATA/mnist or ~/.cache/tapegrad/mnist), downloading them there
    once, with md5 checksums verified and a second mirror tried when the first fails. Offline, the
    RuntimeError says where to put the files.
    """
    if path is not None:
        return _load_idx_set(path, final, flatten, "load_mnist")
    folder = mnist_folder()
    how_to = (f"Put the four IDX files ({', '.join(MNIST_FILES)}) in {folder} (set TAPEGRAD_DATA to use "
              "another cache folder), or pass load_mnist(path=...) a folder that holds them. Offline, "
              "Fashion-MNIST works the same way: apt-get install dataset-fashion-mnist, then load_fashion_mnist().")
    _cached(folder, MNIST_FILES, MNIST_MIRRORS, "MNIST", how_to)
    return _load_idx_set(folder, final, flatten, "load_mnist")


def load_fashion_mnist(final=False, flatten=True, path=None):
    """Fashion-MNIST, in the same form as ``load_mnist`` (10 classes of clothing, 28 x 28 uint8):
    rows of 784 pixels, or with ``flatten=False`` NCHW images (n, 1, 28, 28).

    Reads the IDX files from ``path`` when given; else from Debian's package dataset-fashion-mnist
    (``/usr/share/datasets/fashion-mnist``, offline) when it is installed; else from the cache folder
    (``fashion_mnist_folder()``), downloading them there once with checksums verified.
    """
    if path is not None:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"load_fashion_mnist: no folder {path}; install Fashion-MNIST with "
                                    "`apt-get install dataset-fashion-mnist` (then call load_fashion_mnist() "
                                    "without path) or pass path= a folder of the four IDX files")
        return _load_idx_set(path, final, flatten, "load_fashion_mnist")
    if os.path.isdir(FASHION_MNIST_DIR):
        return _load_idx_set(FASHION_MNIST_DIR, final, flatten, "load_fashion_mnist")
    folder = fashion_mnist_folder()
    how_to = (f"Offline, install it with `apt-get install dataset-fashion-mnist` (it goes to {FASHION_MNIST_DIR}), "
              f"or put the four IDX files ({', '.join(FASHION_MNIST_FILES)}) in {folder} (set TAPEGRAD_DATA to "
              "use another cache folder), or pass load_fashion_mnist(path=...) a folder that holds them.")
    _cached(folder, FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS, "Fashion-MNIST", how_to)
    return _load_idx_set(folder, final, flatten, "load_fashion_mnist")


# ---- CIFAR-10 (the binary version: records of bytes, never pickles) ----

CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on the data set's page
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST = "test_batch.bin"
CIFAR10_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_RECORD = 1 + 3 * 32 * 32  # a label byte, then 1024 red, 1024 green and 1024 blue pixel bytes


def cifar10_folder():
    """Where CIFAR-10 is cached: $TAPEGRAD_DATA/cifar10, else ~/.cache/tapegrad/cifar10."""
    return os.path.join(data_folder(), "cifar10")


def _cifar10_files(folder):
    """The six batch files in folder or in its cifar-10-batches-bin (the archive's folder), or None."""
    for where in (folder, os.path.join(folder, "cifar-10-batches-bin")):
        paths = [os.path.join(where, name) for name in CIFAR10_TRAIN + (CIFAR10_TEST,)]
        if all(os.path.isfile(p) for p in paths):
            return paths
    return None


def _extract_cifar10(archive, folder):
    """The six batch files of the archive into folder, each written under a temporary name first.
    Only those members are read: no other path of the archive reaches the disk."""
    import tarfile

    wanted = set(CIFAR10_TRAIN + (CIFAR10_TEST,))
    found = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if not member.isfile() or name not in wanted or name in found:
                    continue
                tmp = os.path.join(folder, name + ".part")
                with tar.extractfile(member) as src, open(tmp, "wb") as dst:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        dst.write(chunk)
                os.replace(tmp, os.path.join(folder, name))
                found.add(name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise ValueError(f"load_cifar10: {archive} is not a readable tar.gz archive ({e})") from None
    if found != wanted:
        raise ValueError(f"load_cifar10: {archive} lacks {', '.join(sorted(wanted - found))}")


def _read_cifar10_batch(path):
    """(images (n, 3, 32, 32) float32 in [0, 1], labels (n,) int64) of one batch file."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % CIFAR10_RECORD:
        raise ValueError(f"load_cifar10: {path} holds {data.size} bytes, not a whole number of "
                         f"{CIFAR10_RECORD}-byte records")
    records = data.reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"load_cifar10: {path} has label {labels.max()}; CIFAR-10's labels are 0-9")
    images = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    return images, labels


def load_cifar10(final=False, path=None):
    """CIFAR-10 as NCHW images: ``(xtrain, ytrain), (xval, yval), 10``, the images float32 of shape
    (n, 3, 32, 32) with pixels in [0, 1] (byte / 255), the labels int64 in 0-9 (names in
    ``CIFAR10_CLASSES``).

    As ``load_mnist``: with ``final=False`` the validation set is the last 5000 of the 50000 training
    images; with ``final=True`` it is the 10000 test images. Reads the binary version (records of a
    label byte and 3072 pixel bytes; never the pickled Python version) from ``path`` when given: a
    folder with the six .bin files (or their cifar-10-batches-bin folder) or with
    cifar-10-binary.tar.gz. Otherwise from the cache folder (``cifar10_folder()``), downloading the
    archive there once (162 MB, md5 checked) and extracting its six batch files. Offline, the
    RuntimeError says where to put the files.
    """
    if path is not None:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"load_cifar10: no folder {path}")
        paths = _cifar10_files(path)
        if paths is None:
            archive = os.path.join(path, CIFAR10_ARCHIVE)
            if not os.path.isfile(archive):
                raise FileNotFoundError(f"load_cifar10: {path} holds neither the six batch files "
                                        f"({', '.join(CIFAR10_TRAIN)}, {CIFAR10_TEST}) nor {CIFAR10_ARCHIVE}")
            _extract_cifar10(archive, path)
            paths = _cifar10_files(path)
    else:
        folder = cifar10_folder()
        paths = _cifar10_files(folder)
        if paths is None:
            how_to = (f"Put {CIFAR10_ARCHIVE} (the binary version from https://www.cs.toronto.edu/~kriz/cifar.html) "
                      f"or its six .bin files in {folder} (set TAPEGRAD_DATA to use another cache folder), or pass "
                      "load_cifar10(path=...) a folder that holds them. Offline, Fashion-MNIST works: apt-get "
                      "install dataset-fashion-mnist, then load_fashion_mnist(flatten=False).")
            _cached(folder, {CIFAR10_ARCHIVE: CIFAR10_MD5}, CIFAR10_MIRRORS, "CIFAR-10", how_to)
            archive = os.path.join(folder, CIFAR10_ARCHIVE)
            _extract_cifar10(archive, folder)
            os.remove(archive)  # the batch files hold all of it
            paths = _cifar10_files(folder)
    train = [_read_cifar10_batch(p) for p in paths[:5]]
    xtrain, ytrain = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    if final:
        return (xtrain, ytrain), _read_cifar10_batch(paths[5]), 10
    if len(xtrain) <= 5000:
        raise ValueError(f"load_cifar10: the training batches hold {len(xtrain)} images; splitting off 5000 for "
                         "validation needs more (or use final=True)")
    return (xtrain[:-5000], ytrain[:-5000]), (xtrain[-5000:], ytrain[-5000:]), 10


# ---- mini-batches ----

def _check_batching(arrays, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    arrays = [a if hasattr(a, "shape") and hasattr(a, "__getitem__") else np.asarray(a) for a in arrays]
    for i, a in enumerate(arrays):
        if np.ndim(a) == 0:
            raise ValueError(f"batches: array {i} is a scalar; each array needs a first axis of instances")
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise ValueError("batches: the arrays hold different numbers of instances: "
                         + ", ".join(str(len(a)) for a in arrays))
    return arrays


def _rng(seed):
    """A generator for shuffling: seed's own, one seeded with it, or (seed=None) tapegrad's."""
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        return seed
    if seed is None:
        # the one generator initialisers and dropout draw from: numpy's global one until
        # vg.manual_seed, so both np.random.seed and vg.manual_seed make a run reproducible
        return init.generator()
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise TypeError(f"batches: seed must be None, an integer or a numpy Generator, got {seed!r} ({e})") from None


def batches(x, y=None, batch_size=128, shuffle=False, drop_last=False, seed=None):
    """Yield mini-batches ``(xb, yb)`` of arrays x (n, ...) and y (n, ...); just ``xb`` when y is None.

    Batches hold ``batch_size`` instances in order, the last one fewer unless ``drop_last`` drops it.
    With ``shuffle`` each call walks through a new random permutation, so one pass sees every
    instance once; the permutation comes from ``seed`` (an int or a numpy Generator) or, with
    seed=None, from the generator of ``vg.init`` at the time of the call: numpy's global one until
    ``vg.manual_seed`` (so np.random.seed makes it reproducible), tapegrad's own after it.
    The batches are copies when shuffled and views otherwise.
    """
    arrays = _check_batching([x] if y is None else [x, y], batch_size)
    n = len(arrays[0])
    order = _rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            parts = [a[start:start + batch_size] for a in arrays]
        else:
            index = order[start:start + batch_size]
            parts = [a[index] for a in arrays]
        yield parts[0] if y is None else tuple(parts)


class DataLoader:
    """Re-iterable mini-batches: each ``for xb, yb in loader`` is one epoch of ``batches(...)``.

    With ``shuffle`` and an integer ``seed``, the loader keeps one generator, so epochs differ from
    each other and the whole sequence is reproducible. Without a seed each epoch draws its order
    from ``vg.init``'s generator when it starts (see ``batches``), so ``vg.manual_seed(s)`` or
    ``np.random.seed(s)`` before training makes the sequence reproducible. ``len(loader)`` is the
    number of batches.
    """

    def __init__(self, x, y=None, batch_size=128, shuffle=False, drop_last=False, seed=None):
        arrays = _check_batching([x] if y is None else [x, y], batch_size)
        self.x, self.y = arrays[0], (arrays[1] if y is not None else None)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.rng = None if seed is None else _rng(seed)  # None: looked up at each epoch

    def __iter__(self):
        return batches(self.x, self.y, self.batch_size, self.shuffle, self.drop_last, self.rng)

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
