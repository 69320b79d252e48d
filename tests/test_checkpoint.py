"""tapegrad.checkpoint: save/load round trips of modules, optimisers and schedules, the file format
(a plain npz, written atomically), refusal of broken or foreign files without ever unpickling, and
load_state_dict's checks."""

import json
import os
import re
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
