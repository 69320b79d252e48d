"""tapegrad.checkpoint: save/load round trips of modules, optimisers and schedules, the file format
(a plain npz, written atomically), refusal of broken, foreign or hostile files (zip bombs, lying
headers, deep indexes, FIFOs) without ever unpickling or allocating what they declare, what save
refuses, and load_state_dict's checks."""

import io
import json
import os
import re
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import optim


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    """manual_seed sets process-wide state: every test starts and ends without it."""
    vg.init._generator = None
    yield
    vg.init._generator = None


def model_with_batchnorm(seed):
    vg.manual_seed(seed)
    # no bias before the batch norm: its gradient would be rounding noise, which Adam scales up to steps of lr
    return vg.Sequential(vg.Linear(3, 8, bias=False), vg.BatchNorm1d(8), vg.nn.ReLU(), vg.Linear(8, 2))


def outputs(model, x):
    with vg.no_grad():
        return model(vg.TensorNode(x, requires_grad=False)).value.copy()


def assert_same_state(a, b):
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---- round trips ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_saved_module_loads_into_a_fresh_model_with_identical_outputs(tmp_path, dtype):
    vg.manual_seed(0)
    model = vg.MLP([3, 5, 4, 2], activation="tanh", residual=True, dtype=dtype)
    for layer in model.layers:
        layer.b.value[...] = np.random.default_rng(1).standard_normal(layer.b.shape)
    vg.save(model, tmp_path / "model.npz")
    state = vg.load(tmp_path / "model.npz")
    assert sorted(state) == sorted(name for name, _ in model.named_parameters())
    assert all(state[name].dtype == dtype for name in state)

    vg.manual_seed(1)
    fresh = vg.MLP([3, 5, 4, 2], activation="tanh", residual=True, dtype=dtype)
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(dtype)
    assert not np.array_equal(outputs(fresh, x), outputs(model, x))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(outputs(fresh, x), outputs(model, x))


def test_batchnorm_running_statistics_are_saved_and_restored(tmp_path):
    model = model_with_batchnorm(0)
    rng = np.random.default_rng(0)
    for _ in range(3):
        model(vg.TensorNode(rng.standard_normal((10, 3)) * 2 + 1, requires_grad=False))
    vg.save(model, tmp_path / "bn.npz")
    state = vg.load(tmp_path / "bn.npz")
    np.testing.assert_array_equal(state["layers.1.running_mean"], model[1].running_mean)
    np.testing.assert_array_equal(state["layers.1.running_var"], model[1].running_var)

    fresh = model_with_batchnorm(1)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh[1].running_mean, model[1].running_mean)
    np.testing.assert_array_equal(fresh[1].running_var, model[1].running_var)
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(outputs(fresh.eval(), x), outputs(model.eval(), x))


def test_arrays_numbers_strings_and_nested_structures_round_trip(tmp_path):
    obj = {
        "epoch": 3, "note": "x", "flag": True, "nothing": None, "rate": 0.5, "count": np.int64(7),
        "history": [1.0, 2.5, {"inner": np.arange(3)}],
        "arrays": {"f32": np.ones((2, 3), np.float32), "i64": np.arange(4), "mask": np.array([True, False]),
                   "scalar": np.array(2.5)},
        "empty": {},
    }
    vg.save(obj, tmp_path / "misc.npz")
    back = vg.load(tmp_path / "misc.npz")
    assert set(back) == set(obj)
    assert back["epoch"] == 3 and back["note"] == "x" and back["flag"] is True and back["nothing"] is None
    assert back["rate"] == 0.5 and back["count"] == 7 and back["empty"] == {}
    assert back["history"][:2] == [1.0, 2.5]
    np.testing.assert_array_equal(back["history"][2]["inner"], np.arange(3))
    for name, array in obj["arrays"].items():
        assert back["arrays"][name].dtype == array.dtype and back["arrays"][name].shape == array.shape
        np.testing.assert_array_equal(back["arrays"][name], array)


def train(model, opt, schedule, xs, ys):
    for x, y in zip(xs, ys):
        loss = vg.cross_entropy(model(vg.TensorNode(x, requires_grad=False)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()


OPTIMISERS = [
    ("sgd-nesterov", lambda params: optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("adam", lambda params: optim.Adam(params, lr=0.01)),
    ("adamw", lambda params: optim.AdamW(params, lr=0.01, weight_decay=0.1)),
    ("rmsprop-momentum", lambda params: optim.RMSprop(params, lr=0.01, momentum=0.5)),
]
SCHEDULES = [
    ("step_lr", lambda opt: optim.StepLR(opt, step_size=2, gamma=0.5)),
    ("cosine", lambda opt: optim.CosineAnnealingLR(opt, T_max=5, eta_min=1e-4)),
]


@pytest.mark.parametrize("make_schedule", [row[1] for row in SCHEDULES], ids=[row[0] for row in SCHEDULES])
@pytest.mark.parametrize("make_optimiser", [row[1] for row in OPTIMISERS], ids=[row[0] for row in OPTIMISERS])
def test_a_training_run_resumed_from_a_checkpoint_ends_where_the_uninterrupted_run_does(
        tmp_path, make_optimiser, make_schedule):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((16, 3)) for _ in range(6)]
    ys = [rng.integers(0, 2, 16) for _ in range(6)]

    straight = model_with_batchnorm(0)
    opt = make_optimiser(straight.parameters())
    train(straight, opt, make_schedule(opt), xs, ys)

    first = model_with_batchnorm(0)
    opt = make_optimiser(first.parameters())
    schedule = make_schedule(opt)
    train(first, opt, schedule, xs[:3], ys[:3])
    vg.save({"model": first, "optimizer": opt, "schedule": schedule, "epoch": 3, "note": "x"}, tmp_path / "run.npz")

    state = vg.load(tmp_path / "run.npz")
    assert state["epoch"] == 3 and state["note"] == "x"
    assert state["optimizer"]["type"] == type(opt).__name__ and state["schedule"]["epoch"] == 3
    resumed = model_with_batchnorm(5)
    opt = make_optimiser(resumed.parameters())
    schedule = make_schedule(opt)
    resumed.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    train(resumed, opt, schedule, xs[3:], ys[3:])

    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        # not bitwise: the engine's vectorised kernels round differently with the buffers' alignment
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14, err_msg=name)


# ---- the file ----

def test_the_file_is_a_plain_npz_that_numpy_opens_without_pickle(tmp_path):
    model = model_with_batchnorm(0)
    vg.save({"model": model, "epoch": 1}, tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as data:
        members = {name: data[name] for name in data.files}
    assert all(a.dtype != object for a in members.values())
    for name, value in model.state_dict().items():
        assert any(a.shape == value.shape and np.array_equal(a, value) for a in members.values()), name


def test_save_writes_exactly_the_path_given_and_replaces_an_existing_file(tmp_path):
    path = tmp_path / "run.ckpt"
    vg.save({"x": np.zeros(3)}, path)
    vg.save({"x": np.ones(4)}, str(path))
    assert os.listdir(tmp_path) == ["run.ckpt"]
    np.testing.assert_array_equal(vg.load(path)["x"], np.ones(4))


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    vg.save({"x": np.zeros(3)}, path)

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        vg.save({"x": np.ones(3)}, path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["run.npz"]
    np.testing.assert_array_equal(vg.load(path)["x"], np.zeros(3))


def test_loading_a_missing_file_raises_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        vg.load(tmp_path / "nothing.npz")


# ---- broken and foreign files ----

def valid(path):
    vg.save({"w": np.arange(200.0), "epoch": 2}, path)
    return path.read_bytes()


def write_index(path, index, **arrays):
    np.savez(path, __tapegrad__=np.array(json.dumps(index)), **arrays)


def truncated_in_half(path):
    path.write_bytes(valid(path)[: len(valid(path)) // 2])


def truncated_to_ten_bytes(path):
    path.write_bytes(valid(path)[:10])


def empty(path):
    path.write_bytes(b"")


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def zip_of_a_text_file(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")


def npz_without_an_index(path):
    with open(path, "wb") as f:
        np.savez(f, w=np.ones(3))


def npy_file(path):
    with open(path, "wb") as f:
        np.save(f, np.ones(3))


def index_that_is_not_json(path):
    np.savez(path, __tapegrad__=np.array("{not json"))


def index_of_another_format(path):
    write_index(path, {"format": "something-else", "version": 1, "tree": {"value": 1}})


def index_naming_a_missing_array(path):
    write_index(path, {"format": "tapegrad-checkpoint", "version": 1,
                       "tree": {"dict": {"w": {"array": "w"}, "b": {"array": "b"}}}},
                **{"a/w": np.ones(3)})


def index_without_a_tree(path):
    write_index(path, {"format": "tapegrad-checkpoint", "version": 1})


def index_with_an_unknown_kind_of_entry(path):
    write_index(path, {"format": "tapegrad-checkpoint", "version": 1, "tree": {"dict": {"w": {"bogus": 1}}}})


def index_whose_dict_is_a_list(path):
    write_index(path, {"format": "tapegrad-checkpoint", "version": 1, "tree": {"dict": [{"value": 1}]}})


def flipped_byte_inside_an_array(path):
    data = bytearray(valid(path))
    at = data.find(np.arange(200.0)[100:101].tobytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


BROKEN = [truncated_in_half, truncated_to_ten_bytes, empty, random_bytes, zip_of_a_text_file,
          npz_without_an_index, npy_file, index_that_is_not_json, index_of_another_format,
          index_naming_a_missing_array, index_without_a_tree, index_with_an_unknown_kind_of_entry,
          index_whose_dict_is_a_list, flipped_byte_inside_an_array]


@pytest.mark.parametrize("make", BROKEN, ids=[f.__name__ for f in BROKEN])
def test_loading_a_broken_or_foreign_file_raises_value_error_naming_it(tmp_path, make):
    path = tmp_path / "broken.npz"
    make(path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        vg.load(path)


class CreatesFile:
    """Unpickling this object creates the file at ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_as_an_array(path, marker):
    write_index(path, {"format": "tapegrad-checkpoint", "version": 1, "tree": {"dict": {"x": {"array": "x"}}}},
                **{"a/x": np.array([CreatesFile(marker)], dtype=object)})


def pickle_as_the_index(path, marker):
    np.savez(path, __tapegrad__=np.array([CreatesFile(marker)], dtype=object))


@pytest.mark.parametrize("make", [pickle_as_an_array, pickle_as_the_index], ids=["array", "index"])
def test_load_refuses_pickled_objects_without_running_them(tmp_path, make):
    control, control_marker = tmp_path / "control.npz", tmp_path / "control-ran"
    make(control, control_marker)
    with np.load(control, allow_pickle=True) as data:  # the payload is live: unpickling runs it
        [data[name] for name in data.files]
    assert control_marker.exists()

    path, marker = tmp_path / "evil.npz", tmp_path / "evil-ran"
    make(path, marker)
    with pytest.raises(ValueError, match="not a readable tapegrad checkpoint"):
        vg.load(path)
    assert not marker.exists()


# ---- what save refuses ----

@pytest.mark.parametrize("obj", [
    lambda x: x,
    {"model": {"forward": lambda x: x}},
    object(),
    {"weights": np.array([1, "a"], dtype=object)},
    {"ids": {1, 2}},
], ids=["lambda", "nested-lambda", "object", "object-array", "set"])
def test_save_rejects_what_it_cannot_store_as_arrays_or_json_and_writes_nothing(tmp_path, obj):
    with pytest.raises(TypeError, match="save:"):
        vg.save(obj, tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("obj", [{"a/b": 1}, {"model": {"layer/w": np.ones(2)}}], ids=["top", "nested"])
def test_save_rejects_keys_containing_a_slash(tmp_path, obj):
    with pytest.raises(ValueError, match="contains '/'"):
        vg.save(obj, tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


# ---- load_state_dict ----

def saved_state(tmp_path, model):
    vg.save(model, tmp_path / "model.npz")
    return vg.load(tmp_path / "model.npz")


def edit_missing(state):
    del state["layers.3.b"]
    return "missing: layers.3.b"


def edit_unexpected(state):
    state["layers.9.w"] = np.ones((2, 2))
    return "unexpected: layers.9.w"


def edit_shape(state):
    state["layers.3.w"] = np.ones((8, 3))
    return "layers.3.w has shape (8, 3) in the state but (2, 8) in the model"


def edit_buffer(state):
    del state["layers.1.running_var"]
    state["layers.1.running_mean"] = np.zeros(8)
    return "missing: layers.1.running_var; layers.1.running_mean has shape (8,)"


EDITS = [edit_missing, edit_unexpected, edit_shape, edit_buffer]


@pytest.mark.parametrize("edit", EDITS, ids=[f.__name__ for f in EDITS])
def test_load_state_dict_names_the_bad_entries_and_leaves_the_model_unchanged(tmp_path, edit):
    model = model_with_batchnorm(0)
    state = saved_state(tmp_path, model_with_batchnorm(1))
    message = edit(state)
    before = model.state_dict()
    versions = [p._version for p in model.parameters()]
    with pytest.raises(ValueError, match=re.escape(message)):
        model.load_state_dict(state)
    assert_same_state(model.state_dict(), before)
    assert [p._version for p in model.parameters()] == versions


def test_load_state_dict_reports_every_problem_at_once(tmp_path):
    model = model_with_batchnorm(0)
    state = saved_state(tmp_path, model_with_batchnorm(1))
    messages = [edit(state) for edit in (edit_missing, edit_unexpected, edit_shape)]
    before = model.state_dict()
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    assert all(m in str(error.value) for m in messages)
    assert_same_state(model.state_dict(), before)


def test_load_state_dict_bumps_the_versions_of_the_parameters_it_sets(tmp_path):
    model = model_with_batchnorm(0)
    state = saved_state(tmp_path, model_with_batchnorm(1))
    versions = [p._version for p in model.parameters()]
    model.load_state_dict(state)
    assert all(p._version > v for p, v in zip(model.parameters(), versions))
    assert_same_state(model.state_dict(), state)


# ---- hostile files: refused promptly, before anything large is allocated (issue 13 items 8, 10) ----

def index_json(tree):
    return json.dumps({"format": "tapegrad-checkpoint", "version": 1, "tree": tree})


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header(shape, descr="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def zip_members(path, members, method=zipfile.ZIP_STORED):
    """A zip of raw members {name: bytes}; names that end in .npy hold .npy bytes."""
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)


def naming_w(tree=None):
    return {"__tapegrad__.npy": npy_bytes(np.array(index_json(tree or {"dict": {"w": {"array": "w"}}})))}


ZEROS = 8 << 20  # 8 MiB of zeros deflate to 8 KiB: far more than MAX_INFLATION allows


def deflated_bomb_named_by_the_index(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_header((ZEROS // 8,)) + bytes(ZEROS)}, zipfile.ZIP_DEFLATED)


def header_declaring_1e12_elements(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_header((10**12,)) + bytes(80)})


def header_declaring_a_negative_shape(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_header((-1, -10)) + bytes(80)})


def header_declaring_fewer_bytes_than_the_member_holds(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_header((3,)) + bytes(80)})


def header_of_npy_format_3(path):
    data = bytearray(npy_bytes(np.ones(3)))
    data[6] = 3
    zip_members(path, {**naming_w(), "a/w.npy": bytes(data)})


def member_without_npy_magic(path):
    zip_members(path, {**naming_w(), "a/w.npy": b"raw bytes, no header"})


def member_named_without_npy(path):
    zip_members(path, {**naming_w(), "a/w": npy_bytes(np.ones(3))})


def member_of_another_compression_method(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_bytes(np.ones(3))}, zipfile.ZIP_BZIP2)


def patched_directory_sizes(path, name, compressed, uncompressed):
    """Rewrite the sizes the zip directory declares for member ``name`` (a small, non-zip64 member)."""
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02")
    while data[entry + 46:entry + 46 + len(name)] != name.encode():
        entry = data.rfind(b"PK\x01\x02", 0, entry)
    data[entry + 20:entry + 28] = compressed.to_bytes(4, "little") + uncompressed.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def stored_member_declaring_more_than_the_file(path):
    size = 2**31 - 1
    zip_members(path, {**naming_w(), "a/w.npy": npy_header(((size - 128) // 8,)) + bytes(80)})
    patched_directory_sizes(path, "a/w.npy", size, size)


def stored_member_whose_sizes_disagree(path):
    zip_members(path, {**naming_w(), "a/w.npy": npy_bytes(np.ones(10))})
    patched_directory_sizes(path, "a/w.npy", 208, 2**30)


def index_nested_5000_deep(path):
    tree = '{"list": [' * 5000 + '{"value": 1}' + "]}" * 5000
    text = '{"format": "tapegrad-checkpoint", "version": 1, "tree": ' + tree + "}"
    zip_members(path, {"__tapegrad__.npy": npy_bytes(np.array(text))})


def index_nested_just_past_the_limit(path):
    tree = {"value": 1}
    for _ in range(vg.checkpoint.MAX_DEPTH + 1):
        tree = {"dict": {"k": tree}}
    zip_members(path, naming_w(tree))


def index_that_is_an_array_of_numbers(path):
    zip_members(path, {"__tapegrad__.npy": npy_bytes(np.ones(3))})


def index_holding_a_list_as_a_value(path):
    zip_members(path, naming_w({"dict": {"w": {"value": [1, 2]}}}))


def index_of_a_newer_version(path):
    zip_members(path, {"__tapegrad__.npy": npy_bytes(np.array(json.dumps(
        {"format": "tapegrad-checkpoint", "version": 2, "tree": {"value": 1}})))})


def two_members_of_one_name(path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        zip_members(path, naming_w())
        with zipfile.ZipFile(path, "a") as z:
            z.writestr("a/w.npy", npy_bytes(np.ones(3)))
            z.writestr("a/w.npy", npy_bytes(np.zeros(3)))


HOSTILE = [
    (deflated_bomb_named_by_the_index, r"would inflate \d+ bytes to 8388736 \(more than 64x: a zip bomb"),
    (header_declaring_1e12_elements,
     r"declares shape \(1000000000000,\) of float64 \(8000000000000 bytes\) in a member of 80"),
    (header_declaring_a_negative_shape, r"declares the shape \(-1, -10\)"),
    (header_declaring_fewer_bytes_than_the_member_holds,
     r"declares shape \(3,\) of float64 \(24 bytes\) in a member of 80"),
    (header_of_npy_format_3, r"is .npy format 3.0, which load does not read"),
    (member_without_npy_magic, r"'a/w.npy' is not an .npy array"),
    (member_named_without_npy, r"the array 'w' its index names is missing: no member 'a/w.npy'"),
    (member_of_another_compression_method, r"uses zip compression method 12"),
    (stored_member_declaring_more_than_the_file, r"declares 2147483647 bytes in a file of \d+"),
    (stored_member_whose_sizes_disagree, r"is stored uncompressed but declares 1073741824 bytes in 208"),
    (index_nested_5000_deep, r"an index nested more than 100 levels deep"),
    (index_nested_just_past_the_limit, r"an index nested more than 100 levels deep"),
    (index_that_is_an_array_of_numbers, r"an index of dtype float64 and shape \(3,\), not a string"),
    (index_holding_a_list_as_a_value, r"a malformed index"),
    (index_of_a_newer_version, r"format version 2; this tapegrad reads version 1"),
    (two_members_of_one_name, r"two zip members of the same name"),
]


@pytest.mark.parametrize("make, message", HOSTILE, ids=[row[0].__name__ for row in HOSTILE])
def test_loading_a_hostile_file_raises_value_error_before_allocating_what_it_declares(tmp_path, make, message):
    path = tmp_path / "hostile.npz"
    make(path)
    tracemalloc.start()  # numpy's buffers are traced too
    try:
        with pytest.raises(ValueError, match=re.escape(f"load: {path} is not a readable tapegrad checkpoint")) as info:
            vg.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert re.search(message, str(info.value)), str(info.value)
    assert peak < 2 << 20, f"load allocated {peak} bytes before refusing the file"


def test_load_reads_only_the_members_the_index_names(tmp_path):
    path = tmp_path / "extra.npz"
    vg.save({"w": np.arange(3.0)}, path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:  # a bomb nobody names, and raw bytes
        z.writestr("a/bomb.npy", npy_header((ZEROS // 8,)) + bytes(ZEROS))
        z.writestr("notes.txt", b"not an array")
    tracemalloc.start()
    try:
        state = vg.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert list(state) == ["w"]
    np.testing.assert_array_equal(state["w"], np.arange(3.0))
    assert peak < 1 << 20


def test_a_file_with_more_members_than_the_cap_is_refused_before_zipfile_lists_them(tmp_path, monkeypatch):
    path = tmp_path / "many.npz"
    zip_members(path, {**naming_w(), **{f"a/x{i}.npy": npy_bytes(np.zeros(1)) for i in range(100)}})
    monkeypatch.setattr(vg.checkpoint, "MAX_MEMBERS", 100)

    def listing(*args, **kwargs):
        raise AssertionError("zipfile listed the members of a file the end record already rules out")

    monkeypatch.setattr(vg.checkpoint.zipfile, "ZipFile", listing)
    with pytest.raises(ValueError, match="101 zip members; a checkpoint holds at most 100"):
        vg.load(path)


def test_a_zip_directory_larger_than_the_cap_is_refused_before_it_is_listed(tmp_path, monkeypatch):
    path = tmp_path / "names.npz"
    zip_members(path, {**naming_w(), "a/" + "x" * 5000 + ".npy": npy_bytes(np.zeros(1))})
    monkeypatch.setattr(vg.checkpoint, "MAX_DIRECTORY_BYTES", 4096)
    with pytest.raises(ValueError, match=r"a zip directory of \d+ bytes; a checkpoint allows at most 4096"):
        vg.load(path)


def test_an_end_record_that_understates_the_member_count_is_caught_after_listing(tmp_path, monkeypatch):
    path = tmp_path / "lying.npz"
    zip_members(path, {**naming_w(), **{f"a/x{i}.npy": npy_bytes(np.zeros(1)) for i in range(100)}})
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = (5).to_bytes(2, "little") * 2  # members on this disk, members in all
    path.write_bytes(bytes(data))
    monkeypatch.setattr(vg.checkpoint, "MAX_MEMBERS", 100)
    with pytest.raises(ValueError, match="101 zip members; a checkpoint holds at most 100"):
        vg.load(path)


def test_an_index_may_name_one_array_many_times_and_it_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "shared.npz"
    zip_members(path, {**naming_w({"list": [{"array": "w"}] * 1000}), "a/w.npy": npy_bytes(np.arange(4.0))})
    reads = []
    original = vg.checkpoint._read_array
    monkeypatch.setattr(vg.checkpoint, "_read_array",
                        lambda zf, info: reads.append(info.filename) or original(zf, info))
    back = vg.load(path)
    assert len(back) == 1000 and all(a is back[0] for a in back)
    assert sorted(reads) == ["__tapegrad__.npy", "a/w.npy"]


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, ">f8", np.int64, np.bool_, np.uint8, np.complex128])
def test_arrays_of_every_layout_load_as_numpy_loads_them(tmp_path, dtype, order):
    array = np.asarray(np.arange(24).reshape(2, 3, 4) % 3, dtype=dtype, order=order)
    path = tmp_path / "layout.npz"
    vg.save({"x": array, "empty": np.zeros((0, 3), dtype), "scalar": np.array(1, dtype)}, path)
    back = vg.load(path)
    with np.load(path) as reference:
        for key, name in [("x", "a/x"), ("empty", "a/empty"), ("scalar", "a/scalar")]:
            expected = reference[name]
            assert back[key].dtype == expected.dtype and back[key].shape == expected.shape
            assert back[key].flags.f_contiguous == expected.flags.f_contiguous
            np.testing.assert_array_equal(back[key], expected)


def test_a_checkpoint_compressed_by_numpy_still_loads(tmp_path):
    path = tmp_path / "compressed.npz"
    weights = np.random.default_rng(0).standard_normal((50, 20))
    np.savez_compressed(path, __tapegrad__=np.array(index_json({"dict": {"w": {"array": "w"}}})), **{"a/w": weights})
    np.testing.assert_array_equal(vg.load(path)["w"], weights)


# ---- paths that are not regular files, and file objects ----

def test_loading_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            vg.load(fifo)
        except ValueError as e:
            outcome.append(str(e))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():  # blocked in open(): a writer end releases it, so the test run can finish
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join()
        pytest.fail("load blocked on a FIFO")
    assert outcome == [f"load: {fifo} is a FIFO (named pipe), not a regular file"]


@pytest.mark.parametrize("make, kind", [
    (lambda tmp_path: tmp_path, "a directory"),
    (lambda tmp_path: "/dev/null", "a character device"),
], ids=["directory", "device"])
def test_loading_a_path_that_is_not_a_regular_file_is_a_value_error(tmp_path, make, kind):
    path = make(tmp_path)
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(ValueError, match=re.escape(f"load: {path} is {kind}, not a regular file")):
        vg.load(path)


def test_checkpoints_round_trip_through_file_objects(tmp_path):
    buffer = io.BytesIO()
    vg.save({"w": np.arange(5.0), "epoch": 4}, buffer)
    buffer.seek(0)
    back = vg.load(buffer)
    assert back["epoch"] == 4
    np.testing.assert_array_equal(back["w"], np.arange(5.0))
    path = tmp_path / "run.npz"
    path.write_bytes(buffer.getvalue())
    with open(path, "rb") as f:
        np.testing.assert_array_equal(vg.load(f)["w"], np.arange(5.0))
        assert not f.closed  # the caller's file stays the caller's


class Unseekable(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, b):
        return 0


def test_a_file_object_open_in_text_mode_is_a_type_error(tmp_path):
    vg.save({"w": np.ones(2)}, tmp_path / "run.npz")
    with open(tmp_path / "run.npz", encoding="latin-1") as f:
        with pytest.raises(TypeError, match="open in text mode; open the checkpoint with mode 'rb'"):
            vg.load(f)


def test_a_file_object_that_is_a_fifo_or_cannot_seek_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Unseekable is a file object that cannot seek"):
        vg.load(Unseekable())
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with os.fdopen(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
        with pytest.raises(ValueError, match=r"is a FIFO \(named pipe\), not a regular file"):
            vg.load(f)


# ---- what save refuses so that load never has to (issue 13 item 14) ----

@pytest.mark.parametrize("obj, message", [
    ({1: np.ones(2), "1": np.zeros(3)}, "keys 1 and '1' at the top level are both stored as '1'"),
    ({"model": {True: 1, "True": 2}}, "keys True and 'True' at 'model' are both stored as 'True'"),
    ({"opt": [{"state": {0: np.ones(1), "0": np.ones(1)}}]}, "keys 0 and '0' at 'opt/0/state'"),
], ids=["top", "nested", "in-a-list"])
def test_save_refuses_keys_that_collide_as_strings_naming_both(tmp_path, obj, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        vg.save(obj, tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


def test_an_empty_key_never_shares_an_array_path_with_another_key(tmp_path):
    vg.save({"": {"w": np.ones(2)}, "w": np.zeros(3)}, tmp_path / "run.npz")
    back = vg.load(tmp_path / "run.npz")
    np.testing.assert_array_equal(back[""]["w"], np.ones(2))
    np.testing.assert_array_equal(back["w"], np.zeros(3))


def nested(levels):
    obj = np.ones(2)
    for _ in range(levels):
        obj = {"k": obj}
    return obj


def test_structures_nested_up_to_the_limit_round_trip(tmp_path):
    vg.save(nested(vg.checkpoint.MAX_DEPTH), tmp_path / "deep.npz")
    back = vg.load(tmp_path / "deep.npz")
    for _ in range(vg.checkpoint.MAX_DEPTH):
        back = back["k"]
    np.testing.assert_array_equal(back, np.ones(2))


def cyclic():
    d = {}
    d["self"] = [d]
    return d


@pytest.mark.parametrize("make", [lambda: nested(vg.checkpoint.MAX_DEPTH + 1), cyclic], ids=["deep", "cycle"])
def test_save_refuses_structures_nested_past_the_limit_and_writes_nothing(tmp_path, make):
    with pytest.raises(ValueError, match=r"nested more than 100 levels deep \(a cycle\?\)"):
        vg.save(make(), tmp_path / "bad.npz")
    assert os.listdir(tmp_path) == []


def test_save_refuses_more_arrays_than_load_accepts(tmp_path, monkeypatch):
    monkeypatch.setattr(vg.checkpoint, "MAX_MEMBERS", 10)
    vg.save({f"x{i}": np.ones(1) for i in range(9)}, tmp_path / "fits.npz")  # with the index: 10 members
    assert len(vg.load(tmp_path / "fits.npz")) == 9
    with pytest.raises(ValueError, match="save: 10 arrays; a checkpoint holds at most 9"):
        vg.save({f"x{i}": np.ones(1) for i in range(10)}, tmp_path / "bad.npz")
    assert not (tmp_path / "bad.npz").exists()
