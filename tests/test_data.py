"""Data loading: the synthetic task, IDX files, and MNIST / Fashion-MNIST from local folders (never the network)."""

import gzip
import hashlib
import os

import numpy as np
import pytest

import tapegrad as vg

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx_bytes(array):
    """The IDX encoding of an array: magic (0, 0, type code, ndim), big-endian sizes, big-endian data."""
    big = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, IDX_CODES[big.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + big.tobytes()


def write_idx(path, array):
    data = idx_bytes(array)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def mnist_like(n, seed):
    """n images (n, 28, 28) of uint8 whose pixels encode the image index, and labels 0..9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[:, 0, 1] = np.arange(n) // 256
    return images, rng.integers(0, 10, n).astype(np.uint8)


def write_mnist_folder(folder, ntrain, ntest, gz=True, seed=0):
    """The four MNIST files (gzipped or raw) in folder; returns the arrays written."""
    os.makedirs(folder, exist_ok=True)
    xtrain, ytrain = mnist_like(ntrain, seed)
    xtest, ytest = mnist_like(ntest, seed + 1)
    for name, array in [(TRAIN_IMAGES, xtrain), (TRAIN_LABELS, ytrain), (TEST_IMAGES, xtest), (TEST_LABELS, ytest)]:
        write_idx(os.path.join(folder, name if gz else name[:-3]), array)
    return xtrain, ytrain, xtest, ytest


# ---- load_synth ----

def test_load_synth_gives_the_requested_shapes_and_dtypes():
    (xtrain, ytrain), (xval, yval), classes = vg.load_synth(num_train=300, num_val=70, seed=1)
    assert classes == 2
    assert xtrain.shape == (300, 2) and xval.shape == (70, 2)
    assert ytrain.shape == (300,) and yval.shape == (70,)
    assert xtrain.dtype == np.float64 and ytrain.dtype == np.int64


def test_load_synth_defaults_to_60000_training_and_10000_validation_instances():
    (xtrain, _), (xval, _), _ = vg.load_synth(seed=0)
    assert len(xtrain) == 60_000 and len(xval) == 10_000


def test_load_synth_labels_are_binary_and_mark_points_outside_the_ellipse():
    (x, y), (xv, yv), _ = vg.load_synth(num_train=2000, num_val=500, seed=3)
    assert set(np.unique(y)) == {0, 1}
    quad = np.array([[1.0, 0.5], [1.0, 0.2]])
    for points, labels in ((x, y), (xv, yv)):
        np.testing.assert_array_equal(labels, (np.einsum("bf,fk,bk->b", points, quad, points) > 0.6).astype(np.int64))


def test_load_synth_is_reproducible_with_a_seed_and_differs_across_seeds():
    first, second, other = (vg.load_synth(num_train=50, num_val=10, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])
    assert not np.array_equal(first[0][0], other[0][0])


def test_load_synth_without_a_seed_draws_from_numpys_global_generator():
    np.random.seed(5)
    first = vg.load_synth(num_train=20, num_val=5)
    np.random.seed(5)
    second = vg.load_synth(num_train=20, num_val=5)
    np.testing.assert_array_equal(first[0][0], second[0][0])


# ---- read_idx ----

@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_round_trips_every_idx_type(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    result = vg.read_idx(write_idx(tmp_path / f"data.idx{suffix}", array))
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gzip"])
def test_read_idx_reads_uint8_images_and_labels(tmp_path, suffix):
    images, labels = mnist_like(7, seed=0)
    read_images = vg.read_idx(write_idx(tmp_path / f"images{suffix}", images))
    read_labels = vg.read_idx(write_idx(tmp_path / f"labels{suffix}", labels))
    assert read_images.shape == (7, 28, 28) and read_images.dtype == np.uint8
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


GOOD = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
MALFORMED = [
    ("empty", b"", "bad magic"),
    ("short-magic", b"\x00\x00", "bad magic"),
    ("nonzero-first-byte", b"\x01" + GOOD[1:], "bad magic"),
    ("nonzero-second-byte", b"\x00\x01" + GOOD[2:], "bad magic"),
    ("unknown-type-code", b"\x00\x00\x0a" + GOOD[3:], "bad magic"),
    ("truncated-header", GOOD[:9], "truncated IDX header"),
    ("short-payload", GOOD[:-1], "payload is 5 bytes, expected 6"),
    ("long-payload", GOOD + b"\x00", "payload is 7 bytes, expected 6"),
]


@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gzip"])
@pytest.mark.parametrize("data, message", [pytest.param(*m[1:], id=m[0]) for m in MALFORMED])
def test_read_idx_rejects_malformed_files_with_value_error(tmp_path, data, message, suffix):
    path = tmp_path / f"bad.idx{suffix}"
    if suffix:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        vg.read_idx(path)


@pytest.mark.parametrize("data", [GOOD, gzip.compress(GOOD)[:-6]], ids=["not-gzipped", "truncated-gzip-stream"])
def test_read_idx_rejects_a_broken_gzip_file_with_value_error(tmp_path, data):
    path = tmp_path / "broken.idx.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="broken.idx.gz"):
        vg.read_idx(path)


# ---- load_mnist and load_fashion_mnist from local folders ----

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_load_mnist_holds_out_the_last_5000_training_images_for_validation(tmp_path, gz):
    xtrain, ytrain, _, _ = write_mnist_folder(tmp_path, ntrain=5010, ntest=3, gz=gz)
    (xt, yt), (xv, yv), classes = vg.load_mnist(path=str(tmp_path))
    assert classes == 10
    assert xt.shape == (10, 784) and xv.shape == (5000, 784)
    assert yt.shape == (10,) and yv.shape == (5000,) and yt.dtype == np.int64
    np.testing.assert_array_equal(xt, xtrain[:10].reshape(10, 784))
    np.testing.assert_array_equal(xv, xtrain[10:].reshape(5000, 784))
    np.testing.assert_array_equal(yv, ytrain[10:])


def test_load_mnist_final_returns_the_test_set_and_gives_nchw_images_unflattened_on_request(tmp_path):
    xtrain, ytrain, xtest, ytest = write_mnist_folder(tmp_path, ntrain=12, ntest=4)
    (xt, yt), (xs, ys), _ = vg.load_mnist(final=True, flatten=False, path=str(tmp_path))
    assert xt.shape == (12, 1, 28, 28) and xs.shape == (4, 1, 28, 28) and xt.dtype == np.uint8  # NCHW
    np.testing.assert_array_equal(xt[:, 0], xtrain)
    np.testing.assert_array_equal(yt, ytrain)
    np.testing.assert_array_equal(xs[:, 0], xtest)
    np.testing.assert_array_equal(ys, ytest)


def test_load_mnist_flattens_images_to_rows_of_784_pixels(tmp_path):
    xtrain, _, xtest, _ = write_mnist_folder(tmp_path, ntrain=6, ntest=2)
    (xt, _), (xs, _), _ = vg.load_mnist(final=True, path=str(tmp_path))
    assert xt.shape == (6, 784) and xs.shape == (2, 784)
    np.testing.assert_array_equal(xs, xtest.reshape(2, 784))


def test_load_mnist_names_missing_files(tmp_path):
    write_mnist_folder(tmp_path, ntrain=3, ntest=2)
    os.remove(tmp_path / TEST_LABELS)
    with pytest.raises(FileNotFoundError, match=f"load_mnist: .* lacks {TEST_LABELS}"):
        vg.load_mnist(path=str(tmp_path))


def test_load_mnist_refuses_a_validation_split_larger_than_the_training_set(tmp_path):
    write_mnist_folder(tmp_path, 100, 10)
    with pytest.raises(ValueError, match="5000 for validation"):
        vg.load_mnist(path=str(tmp_path))
    (xtrain, _), (xtest, _), _ = vg.load_mnist(final=True, path=str(tmp_path))
    assert (len(xtrain), len(xtest)) == (100, 10)


def test_load_mnist_rejects_image_and_label_counts_that_differ(tmp_path):
    write_mnist_folder(tmp_path, ntrain=3, ntest=2)
    write_idx(tmp_path / TRAIN_LABELS, np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="image and label counts differ"):
        vg.load_mnist(final=True, path=str(tmp_path))


def test_load_fashion_mnist_reads_a_folder_of_idx_files(tmp_path):
    xtrain, ytrain, xtest, ytest = write_mnist_folder(tmp_path, ntrain=9, ntest=3, seed=4)
    (xt, yt), (xs, ys), classes = vg.load_fashion_mnist(final=True, path=str(tmp_path))
    assert classes == 10 and xt.shape == (9, 784) and xs.shape == (3, 784)
    np.testing.assert_array_equal(xt, xtrain.reshape(9, 784))
    np.testing.assert_array_equal(ys, ytest)


def test_load_fashion_mnist_explains_how_to_get_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        vg.load_fashion_mnist(path=str(tmp_path / "absent"))


# ---- load_mnist's cache and download, offline: file:// mirrors in tmp_path ----

def test_mnist_cache_folder_is_under_tapegrad_data_or_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "data"))
    assert vg.data.mnist_folder() == str(tmp_path / "data" / "mnist")
    monkeypatch.delenv("TAPEGRAD_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert vg.data.mnist_folder() == str(tmp_path / ".cache" / "tapegrad" / "mnist")


@pytest.fixture
def offline_mnist(tmp_path, monkeypatch):
    """TAPEGRAD_DATA in tmp_path and a single file:// mirror folder; returns (cache folder, mirror folder)."""
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "data"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setattr(vg.data, "MNIST_MIRRORS", (mirror.as_uri() + "/",))
    return tmp_path / "data" / "mnist", mirror


def test_load_mnist_reads_the_cache_under_tapegrad_data_without_downloading(offline_mnist):
    cache, mirror = offline_mnist  # the mirror is empty: any download attempt would fail
    xtrain, _, xtest, _ = write_mnist_folder(cache, ntrain=5, ntest=2)
    (xt, _), (xs, _), _ = vg.load_mnist(final=True)
    np.testing.assert_array_equal(xt, xtrain.reshape(5, 784))
    np.testing.assert_array_equal(xs, xtest.reshape(2, 784))


def test_load_mnist_downloads_files_whose_checksums_match_into_the_cache(offline_mnist, monkeypatch):
    cache, mirror = offline_mnist
    xtrain, _, _, ytest = write_mnist_folder(mirror, ntrain=4, ntest=3)
    for name in vg.data.MNIST_FILES:
        monkeypatch.setitem(vg.data.MNIST_FILES, name, hashlib.md5((mirror / name).read_bytes()).hexdigest())
    (xt, _), (_, ys), _ = vg.load_mnist(final=True)
    np.testing.assert_array_equal(xt, xtrain.reshape(4, 784))
    np.testing.assert_array_equal(ys, ytest)
    assert sorted(os.listdir(cache)) == sorted(vg.data.MNIST_FILES)


def test_load_mnist_refuses_downloads_with_wrong_checksums_and_says_how_to_get_the_data(offline_mnist):
    cache, mirror = offline_mnist
    write_mnist_folder(mirror, ntrain=4, ntest=3)  # valid IDX files, but not the real MNIST: md5 differs
    with pytest.raises(RuntimeError) as error:
        vg.load_mnist()
    message = str(error.value)
    assert "checksum mismatch" in message
    assert "Put the four IDX files" in message and str(cache) in message
    assert "load_mnist(path=...)" in message
    assert os.listdir(cache) == []  # nothing half-written or unverified is left in the cache


def test_load_mnist_reports_every_mirror_that_failed(offline_mnist, monkeypatch, tmp_path):
    cache, mirror = offline_mnist
    other = tmp_path / "other-mirror"
    other.mkdir()
    monkeypatch.setattr(vg.data, "MNIST_MIRRORS", (mirror.as_uri() + "/", other.as_uri() + "/"))
    with pytest.raises(RuntimeError, match="could not download MNIST") as error:
        vg.load_mnist()
    message = str(error.value)
    assert mirror.as_uri() in message and other.as_uri() in message
    assert os.listdir(cache) == []


def test_load_mnist_says_how_to_get_the_data_when_every_mirror_fails(offline_mnist):
    cache, mirror = offline_mnist  # an empty file:// mirror: what a machine without network sees
    with pytest.raises(RuntimeError) as error:
        vg.load_mnist()
    message = str(error.value)
    for hint in ("Put the four IDX files", str(cache), "TAPEGRAD_DATA", "load_mnist(path=...)",
                 "apt-get install dataset-fashion-mnist"):
        assert hint in message


def test_load_mnist_falls_back_to_the_second_mirror(offline_mnist, monkeypatch, tmp_path):
    cache, empty = offline_mnist
    second = tmp_path / "second-mirror"
    xtrain, _, _, _ = write_mnist_folder(second, ntrain=4, ntest=3)
    for name in vg.data.MNIST_FILES:
        monkeypatch.setitem(vg.data.MNIST_FILES, name, hashlib.md5((second / name).read_bytes()).hexdigest())
    monkeypatch.setattr(vg.data, "MNIST_MIRRORS", (empty.as_uri() + "/", second.as_uri() + "/"))
    (xt, _), _, _ = vg.load_mnist(final=True)
    np.testing.assert_array_equal(xt, xtrain.reshape(4, 784))


def test_load_mnist_downloads_only_the_files_the_cache_lacks(offline_mnist, monkeypatch):
    cache, mirror = offline_mnist
    write_mnist_folder(cache, ntrain=4, ntest=3)
    os.remove(cache / TEST_LABELS)
    labels = np.arange(3, dtype=np.uint8)
    write_idx(mirror / TEST_LABELS, labels)  # the mirror serves only the missing file
    monkeypatch.setitem(vg.data.MNIST_FILES, TEST_LABELS, hashlib.md5((mirror / TEST_LABELS).read_bytes()).hexdigest())
    _, (_, ys), _ = vg.load_mnist(final=True)
    np.testing.assert_array_equal(ys, labels)


# ---- Fashion-MNIST: Debian's folder first, else the cache (offline: file:// mirrors) ----

@pytest.fixture
def offline_fashion(tmp_path, monkeypatch):
    """No Debian folder, TAPEGRAD_DATA in tmp_path, one file:// mirror; returns (cache, mirror)."""
    monkeypatch.setattr(vg.data, "FASHION_MNIST_DIR", str(tmp_path / "no-debian-package"))
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "data"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setattr(vg.data, "FASHION_MNIST_MIRRORS", (mirror.as_uri() + "/",))
    return tmp_path / "data" / "fashion-mnist", mirror


def test_load_fashion_mnist_reads_the_debian_folder_when_it_is_installed(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    _, _, xtest, ytest = write_mnist_folder(debian, ntrain=5, ntest=2, seed=2)
    monkeypatch.setattr(vg.data, "FASHION_MNIST_DIR", str(debian))
    monkeypatch.setattr(vg.data, "FASHION_MNIST_MIRRORS", ())  # any download attempt would fail
    _, (xs, ys), classes = vg.load_fashion_mnist(final=True)
    assert classes == 10
    np.testing.assert_array_equal(xs, xtest.reshape(2, 784))
    np.testing.assert_array_equal(ys, ytest)


def test_load_fashion_mnist_downloads_into_the_cache_without_the_debian_package(offline_fashion, monkeypatch):
    cache, mirror = offline_fashion
    xtrain, ytrain, _, _ = write_mnist_folder(mirror, ntrain=6, ntest=2)
    for name in vg.data.FASHION_MNIST_FILES:
        monkeypatch.setitem(vg.data.FASHION_MNIST_FILES, name, hashlib.md5((mirror / name).read_bytes()).hexdigest())
    (xt, yt), _, _ = vg.load_fashion_mnist(final=True, flatten=False)
    np.testing.assert_array_equal(xt, xtrain[:, None])
    np.testing.assert_array_equal(yt, ytrain)
    assert sorted(os.listdir(cache)) == sorted(vg.data.FASHION_MNIST_FILES)
    assert vg.data.fashion_mnist_folder() == str(cache)


def test_load_fashion_mnist_refuses_a_wrong_checksum_and_says_how_to_get_the_data_offline(offline_fashion):
    cache, mirror = offline_fashion
    write_mnist_folder(mirror, ntrain=4, ntest=2)
    with pytest.raises(RuntimeError) as error:
        vg.load_fashion_mnist()
    message = str(error.value)
    assert "could not download Fashion-MNIST" in message and "checksum mismatch" in message
    assert "apt-get install dataset-fashion-mnist" in message and str(cache) in message
    assert os.listdir(cache) == []


def test_the_fashion_mnist_checksums_are_zalandos_published_ones():
    assert vg.data.FASHION_MNIST_FILES["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert vg.data.FASHION_MNIST_FILES["t10k-labels-idx1-ubyte.gz"] == "bb300cfdad3c16e7a12a480ee83cd310"
    assert sorted(vg.data.FASHION_MNIST_FILES) == sorted(vg.data.MNIST_FILES)


# ---- write_idx ----

@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_round_trips_through_read_idx(tmp_path, dtype, suffix):
    array = (np.random.default_rng(1).standard_normal((2, 3, 4)) * 40).astype(dtype)
    path = vg.write_idx(tmp_path / f"a.idx{suffix}", array)
    result = vg.read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.shape == (2, 3, 4)
    np.testing.assert_array_equal(result, array)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64, ">f8", ">i4"])
def test_write_idx_writes_the_idx_encoding_byte_for_byte(tmp_path, dtype):
    array = np.arange(12).reshape(3, 4).astype(dtype)
    vg.write_idx(tmp_path / "a.idx", array)
    assert (tmp_path / "a.idx").read_bytes() == idx_bytes(array)


def test_write_idx_gzips_when_the_name_ends_in_gz(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    vg.write_idx(tmp_path / "a.idx.gz", array)
    assert gzip.decompress((tmp_path / "a.idx.gz").read_bytes()) == idx_bytes(array)


def test_write_idx_rejects_a_dtype_idx_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        vg.write_idx(tmp_path / "a.idx", np.arange(3, dtype=np.int64))
    assert not (tmp_path / "a.idx").exists()


# ---- the five-point toy set ----

def test_load_five_points_is_the_labs_centre_point_against_its_four_neighbours():
    x, y = vg.load_five_points()
    np.testing.assert_array_equal(x, [[0, 0], [1, 0], [0, -1], [-1, 0], [0, 1]])
    np.testing.assert_array_equal(y, [1, 0, 0, 0, 0])
    assert x.dtype == np.float64 and y.dtype == np.int64


# ---- batches and DataLoader ----

def numbered(n, features=3):
    """x whose row i is all i, and y = 10 i, so every batch shows which instances it holds."""
    return np.repeat(np.arange(n, dtype=np.float64)[:, None], features, axis=1), np.arange(n) * 10


@pytest.mark.parametrize("n, size, drop_last, expected", [
    (10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]), (8, 4, False, [4, 4]), (8, 4, True, [4, 4]),
    (3, 5, False, [3]), (3, 5, True, []), (0, 2, False, []), (5, 1, False, [1] * 5)])
def test_batches_have_batch_size_instances_and_a_shorter_last_one_unless_dropped(n, size, drop_last, expected):
    x, y = numbered(n)
    sizes = [len(xb) for xb, _ in vg.batches(x, y, size, drop_last=drop_last)]
    assert sizes == expected


def test_batches_in_order_are_consecutive_slices_with_matching_labels():
    x, y = numbered(7)
    got = list(vg.batches(x, y, 3))
    np.testing.assert_array_equal(got[0][0][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(got[2][0][:, 0], [6])
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0] * 10, yb)


def test_shuffled_batches_see_every_instance_once_per_pass_with_labels_kept_alongside():
    x, y = numbered(103)
    seen = []
    for xb, yb in vg.batches(x, y, 10, shuffle=True, seed=3):
        np.testing.assert_array_equal(xb[:, 0] * 10, yb)
        seen.extend(xb[:, 0].astype(int))
    assert sorted(seen) == list(range(103))
    assert seen != list(range(103))


def test_shuffled_batches_are_reproducible_with_a_seed_and_differ_across_seeds():
    x, y = numbered(50)
    first, again, other = ([yb for _, yb in vg.batches(x, y, 8, shuffle=True, seed=s)] for s in (1, 1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_shuffled_batches_without_a_seed_follow_numpys_global_generator():
    x, y = numbered(30)
    np.random.seed(4)
    first = np.concatenate([yb for _, yb in vg.batches(x, y, 7, shuffle=True)])
    np.random.seed(4)
    second = np.concatenate([yb for _, yb in vg.batches(x, y, 7, shuffle=True)])
    np.testing.assert_array_equal(first, second)


def test_shuffled_batches_with_drop_last_leave_out_only_the_remainder():
    x, y = numbered(23)
    seen = np.concatenate([yb for _, yb in vg.batches(x, y, 5, shuffle=True, drop_last=True, seed=0)])
    assert len(seen) == 20 and len(set(seen)) == 20


def test_batches_of_x_alone_yield_arrays():
    x, _ = numbered(5)
    got = list(vg.batches(x, batch_size=2))
    assert [b.shape for b in got] == [(2, 3), (2, 3), (1, 3)]


@pytest.mark.parametrize("size", [0, -1, 2.5, "4", True, None])
def test_batches_reject_a_batch_size_that_is_not_a_positive_integer(size):
    x, y = numbered(4)
    with pytest.raises(ValueError, match="batch_size"):
        list(vg.batches(x, y, size))
    with pytest.raises(ValueError, match="batch_size"):
        vg.DataLoader(x, y, size)


def test_batches_reject_arrays_of_different_lengths():
    x, y = numbered(4)
    with pytest.raises(ValueError, match="different numbers of instances: 4, 3"):
        list(vg.batches(x, y[:3], 2))
    with pytest.raises(ValueError, match="different numbers"):
        vg.DataLoader(x, y[:3], 2)


def test_data_loader_gives_a_new_order_each_epoch_and_the_same_sequence_for_the_same_seed():
    x, y = numbered(40)
    epochs = [[np.concatenate([yb for _, yb in loader]) for _ in range(3)]
              for loader in (vg.DataLoader(x, y, 6, shuffle=True, seed=9) for _ in range(2))]
    for run in epochs:
        for order in run:
            assert sorted(order) == list(range(0, 400, 10))
        assert not np.array_equal(run[0], run[1])
    for a, b in zip(*epochs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n, size, drop_last, length", [(10, 4, False, 3), (10, 4, True, 2), (8, 4, False, 2),
                                                        (0, 3, False, 0)])
def test_data_loader_length_is_its_number_of_batches(n, size, drop_last, length):
    x, y = numbered(n)
    loader = vg.DataLoader(x, y, size, drop_last=drop_last)
    assert len(loader) == length == len(list(loader))


# ---- unseeded shuffles follow tapegrad's generator (issue 13 item 17) ----

@pytest.fixture
def fresh_generator():
    """manual_seed sets process-wide state: start and end with numpy's global generator."""
    vg.init._generator = None
    yield
    vg.init._generator = None


def epochs(loader, count=3):
    return [np.concatenate([yb for _, yb in loader]) for _ in range(count)]


def test_an_unseeded_shuffling_data_loader_gives_every_instance_once_per_epoch(fresh_generator):
    x, y = numbered(8, features=2)
    for order in epochs(vg.DataLoader(x, y, batch_size=4, shuffle=True)):
        assert sorted(order) == list(range(0, 80, 10))


def test_manual_seed_makes_unseeded_shuffles_reproducible(fresh_generator):
    x, y = numbered(40)
    runs = []
    for seed in (0, 0, 1):
        vg.manual_seed(seed)
        runs.append(epochs(vg.DataLoader(x, y, 6, shuffle=True))
                    + [np.concatenate([yb for _, yb in vg.batches(x, y, 6, shuffle=True)])])
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2]))
    assert not np.array_equal(runs[0][0], runs[0][1])  # a new order each epoch


def test_an_unseeded_loader_draws_each_epoch_so_a_later_manual_seed_applies(fresh_generator):
    x, y = numbered(30)
    loader = vg.DataLoader(x, y, 7, shuffle=True)
    vg.manual_seed(3)
    first = epochs(loader)
    vg.manual_seed(3)
    np.testing.assert_array_equal(np.concatenate(epochs(loader)), np.concatenate(first))


def test_an_unseeded_loader_follows_numpys_global_generator_until_manual_seed(fresh_generator):
    x, y = numbered(30)
    loader = vg.DataLoader(x, y, 7, shuffle=True)
    np.random.seed(4)
    first = epochs(loader)
    np.random.seed(4)
    np.testing.assert_array_equal(np.concatenate(epochs(loader)), np.concatenate(first))


@pytest.mark.parametrize("seed", ["x", 1.5, object()], ids=["str", "float", "object"])
def test_a_shuffle_seed_that_is_not_an_integer_or_generator_is_a_type_error(seed):
    x, y = numbered(4)
    with pytest.raises(TypeError, match="seed must be None, an integer or a numpy Generator"):
        list(vg.batches(x, y, 2, shuffle=True, seed=seed))
    with pytest.raises(TypeError, match="seed must be None"):
        vg.DataLoader(x, y, 2, shuffle=True, seed=seed)


# ---- CIFAR-10's binary version: batch files and archives written here ----

CIFAR_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def cifar_records(n, seed):
    """n records of CIFAR-10's binary format: (bytes, images (n, 3, 32, 32) uint8, labels (n,))."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    data = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return data.tobytes(), images, labels


def write_cifar_folder(folder, per_batch=3, test=2, seed=0):
    """The six batch files in folder; returns (train images, train labels, test images, test labels)."""
    os.makedirs(folder, exist_ok=True)
    train = []
    for k, name in enumerate(CIFAR_FILES):
        data, images, labels = cifar_records(test if name == "test_batch.bin" else per_batch, seed + k)
        (folder / name).write_bytes(data)
        train.append((images, labels))
    xs, ys = np.concatenate([x for x, _ in train[:5]]), np.concatenate([y for _, y in train[:5]])
    return xs, ys, train[5][0], train[5][1]


def write_cifar_archive(path, folder, extra=()):
    """cifar-10-binary.tar.gz at path from the batch files in folder, under cifar-10-batches-bin/,
    plus (name, bytes) members from `extra`."""
    import io
    import tarfile
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name in CIFAR_FILES:
            tar.add(folder / name, arcname=f"cifar-10-batches-bin/{name}")
        for name, data in extra:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_load_cifar10_reads_the_batch_files_as_nchw_float32_images_in_0_1(tmp_path):
    xtrain, ytrain, xtest, ytest = write_cifar_folder(tmp_path)
    (xt, yt), (xs, ys), classes = vg.load_cifar10(final=True, path=str(tmp_path))
    assert classes == 10 and xt.shape == (15, 3, 32, 32) and xs.shape == (2, 3, 32, 32)
    assert xt.dtype == np.float32 and yt.dtype == np.int64
    np.testing.assert_array_equal(xt, xtrain / np.float32(255))  # red plane first, rows in order
    np.testing.assert_array_equal(yt, ytrain)
    np.testing.assert_array_equal(xs * 255, xtest.astype(np.float32))
    np.testing.assert_array_equal(ys, ytest)
    assert len(vg.data.CIFAR10_CLASSES) == 10


def test_load_cifar10_without_final_holds_out_the_last_5000_training_images(tmp_path):
    xtrain, ytrain, _, _ = write_cifar_folder(tmp_path, per_batch=1001)
    (xt, yt), (xv, yv), _ = vg.load_cifar10(path=str(tmp_path))
    assert len(xt) == 5 and len(xv) == 5000
    np.testing.assert_array_equal(yv, ytrain[5:])
    np.testing.assert_array_equal(xt[-1] * 255, xtrain[4].astype(np.float32))


def test_load_cifar10_extracts_the_archive_of_a_folder_and_nothing_but_its_batch_files(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    _, ytrain, _, _ = write_cifar_folder(source)
    target.mkdir()
    write_cifar_archive(target / "cifar-10-binary.tar.gz", source,
                        extra=[("../outside.bin", b"x"), ("cifar-10-batches-bin/readme.html", b"<html>")])
    (_, yt), _, _ = vg.load_cifar10(final=True, path=str(target))
    np.testing.assert_array_equal(yt, ytrain)
    assert sorted(os.listdir(target)) == sorted(CIFAR_FILES + ["cifar-10-binary.tar.gz"])
    assert not (tmp_path / "outside.bin").exists()


@pytest.fixture
def offline_cifar(tmp_path, monkeypatch):
    """TAPEGRAD_DATA in tmp_path and one file:// mirror folder; returns (cache folder, mirror folder)."""
    monkeypatch.setenv("TAPEGRAD_DATA", str(tmp_path / "data"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setattr(vg.data, "CIFAR10_MIRRORS", (mirror.as_uri() + "/",))
    return tmp_path / "data" / "cifar10", mirror


def test_load_cifar10_downloads_the_archive_once_and_keeps_its_batch_files_in_the_cache(offline_cifar, tmp_path,
                                                                                        monkeypatch):
    cache, mirror = offline_cifar
    _, ytrain, _, _ = write_cifar_folder(tmp_path / "source")
    archive = write_cifar_archive(mirror / "cifar-10-binary.tar.gz", tmp_path / "source")
    monkeypatch.setattr(vg.data, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    (_, yt), _, _ = vg.load_cifar10(final=True)
    np.testing.assert_array_equal(yt, ytrain)
    assert sorted(os.listdir(cache)) == sorted(CIFAR_FILES) and vg.data.cifar10_folder() == str(cache)
    archive.unlink()  # a second load needs no network
    (_, again), _, _ = vg.load_cifar10(final=True)
    np.testing.assert_array_equal(again, ytrain)


def test_load_cifar10_refuses_an_archive_with_the_wrong_checksum_and_says_where_to_put_the_files(offline_cifar,
                                                                                                 tmp_path):
    cache, mirror = offline_cifar
    write_cifar_folder(tmp_path / "source")
    write_cifar_archive(mirror / "cifar-10-binary.tar.gz", tmp_path / "source")
    with pytest.raises(RuntimeError) as error:
        vg.load_cifar10()
    message = str(error.value)
    assert "checksum mismatch" in message and "c32a1d4ab5d03f1284b67883e8d87530" in message
    assert str(cache) in message and "load_cifar10(path=...)" in message and "dataset-fashion-mnist" in message
    assert not any(name.endswith(".bin") for name in os.listdir(cache))


def test_load_cifar10_offline_without_files_raises_the_offline_message(offline_cifar):
    with pytest.raises(RuntimeError, match="could not download CIFAR-10"):
        vg.load_cifar10()


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-5], "not a whole number of 3073-byte records"),
    (lambda data: bytes([11]) + data[1:], "has label 11"),
], ids=["truncated", "bad-label"])
def test_load_cifar10_refuses_a_damaged_batch_file(tmp_path, damage, message):
    write_cifar_folder(tmp_path)
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        vg.load_cifar10(final=True, path=str(tmp_path))


def test_load_cifar10_names_what_a_folder_lacks(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds neither the six batch files"):
        vg.load_cifar10(path=str(tmp_path))


def test_dataloader_shuffles_without_a_seed_from_numpys_global_generator(fresh_generator):
    x = np.arange(10)
    np.random.seed(4)
    first = np.concatenate([b for b in vg.DataLoader(x, batch_size=3, shuffle=True)])
    np.random.seed(4)
    again = np.concatenate([b for b in vg.DataLoader(x, batch_size=3, shuffle=True)])
    np.testing.assert_array_equal(first, again)
    assert sorted(first) == list(range(10))
