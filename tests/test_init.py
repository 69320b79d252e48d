"""tapegrad.init: shapes, dtypes and statistics of the initialisers, fans of 2-d and higher-d
weights, and reproducibility with vg.manual_seed or (as in vugrad) np.random.seed."""

import math

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import init


@pytest.fixture(autouse=True)
def numpy_generator_for_initialisers():
    """manual_seed sets process-wide state: every test starts and ends without it."""
    init._generator = None
    yield
    init._generator = None


def glorot_normal(fan_in, fan_out):
    return {"mean": 0.0, "std": math.sqrt(2 / (fan_in + fan_out))}


def glorot_uniform(fan_in, fan_out):
    a = math.sqrt(6 / (fan_in + fan_out))
    return {"mean": 0.0, "std": a / math.sqrt(3), "bounds": (-a, a)}


def he_normal(fan_in, fan_out):
    return {"mean": 0.0, "std": math.sqrt(2 / fan_in)}


def he_uniform(fan_in, fan_out):
    a = math.sqrt(6 / fan_in)
    return {"mean": 0.0, "std": a / math.sqrt(3), "bounds": (-a, a)}


RANDOM = [
    # name, initialiser, keyword arguments, expected statistics from (fan_in, fan_out)
    ("glorot_normal", init.glorot_normal, {}, glorot_normal),
    ("xavier_normal", init.xavier_normal, {}, glorot_normal),
    ("glorot_uniform", init.glorot_uniform, {}, glorot_uniform),
    ("xavier_uniform", init.xavier_uniform, {}, glorot_uniform),
    ("he_normal", init.he_normal, {}, he_normal),
    ("kaiming_normal", init.kaiming_normal, {}, he_normal),
    ("he_uniform", init.he_uniform, {}, he_uniform),
    ("kaiming_uniform", init.kaiming_uniform, {}, he_uniform),
    ("normal", init.normal, {"std": 0.5, "mean": 2.0}, lambda fi, fo: {"mean": 2.0, "std": 0.5}),
    ("uniform", init.uniform, {"a": -0.5, "b": 1.5},
     lambda fi, fo: {"mean": 0.5, "std": 2 / math.sqrt(12), "bounds": (-0.5, 1.5)}),
]
RANDOM_IDS = [row[0] for row in RANDOM]

# (out, in, receptive field ...): fan_in = in * receptive, fan_out = out * receptive
LARGE_SHAPES = [
    ((500, 400), 400, 500),
    ((400, 500), 500, 400),
    ((64, 32, 5, 5), 32 * 25, 64 * 25),
    ((48, 96, 7), 96 * 7, 48 * 7),
]


@pytest.mark.parametrize("shape, fan_in, fan_out", LARGE_SHAPES, ids=["2d", "2d-transposed", "4d", "3d"])
@pytest.mark.parametrize("fn, kwargs, stats", [row[1:] for row in RANDOM], ids=RANDOM_IDS)
def test_initialiser_statistics_follow_its_formula_with_fans_from_the_shape(fn, kwargs, stats, shape, fan_in, fan_out):
    np.random.seed(0)
    w = fn(shape, **kwargs)
    want = stats(fan_in, fan_out)
    assert abs(w.std() / want["std"] - 1) < 0.02
    assert abs(w.mean() - want["mean"]) < 0.02 * want["std"]
    if "bounds" in want:
        low, high = want["bounds"]
        span = high - low
        assert low <= w.min() < low + 0.01 * span and high - 0.01 * span < w.max() <= high


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4, 5), (7,)])
@pytest.mark.parametrize("name", sorted(init.INITIALISERS))
def test_initialiser_returns_the_requested_shape_and_dtype(name, shape, dtype):
    w = init.INITIALISERS[name](shape, dtype=dtype)
    assert isinstance(w, np.ndarray) and w.shape == shape and w.dtype == dtype
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zeros_and_ones_are_exactly_zeros_and_ones(dtype):
    np.testing.assert_array_equal(init.zeros((3, 5), dtype=dtype), np.zeros((3, 5)))
    np.testing.assert_array_equal(init.ones((2, 2, 2), dtype=dtype), np.ones((2, 2, 2)))


def test_normal_and_uniform_take_their_parameters_positionally_too():
    vg.manual_seed(0)
    by_position = init.normal((100,), 0.5, 2.0), init.uniform((100,), 1.0, 3.0)
    vg.manual_seed(0)
    by_name = init.normal((100,), std=0.5, mean=2.0), init.uniform((100,), a=1.0, b=3.0)
    for a, b in zip(by_position, by_name):
        np.testing.assert_array_equal(a, b)
    assert by_position[1].min() >= 1.0 and by_position[1].max() < 3.0


def test_uniform_rejects_a_lower_bound_above_the_upper():
    with pytest.raises(ValueError, match="lower bound 2.0 is above upper bound 1.0"):
        init.uniform((3,), a=2.0, b=1.0)


# ---- reproducibility ----

@pytest.mark.parametrize("fn, kwargs", [row[1:3] for row in RANDOM], ids=RANDOM_IDS)
def test_manual_seed_makes_draws_reproducible(fn, kwargs):
    vg.manual_seed(5)
    first = fn((30, 20), **kwargs)
    vg.manual_seed(5)
    again = fn((30, 20), **kwargs)
    vg.manual_seed(6)
    other = fn((30, 20), **kwargs)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_after_manual_seed_numpys_global_seed_does_not_change_draws():
    vg.manual_seed(5)
    np.random.seed(0)
    first = init.glorot_normal((10, 10))
    vg.manual_seed(5)
    np.random.seed(1)
    again = init.glorot_normal((10, 10))
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("fn, kwargs", [row[1:3] for row in RANDOM], ids=RANDOM_IDS)
def test_without_manual_seed_numpys_global_seed_makes_draws_reproducible(fn, kwargs):
    np.random.seed(5)
    first = fn((30, 20), **kwargs)
    np.random.seed(5)
    again = fn((30, 20), **kwargs)
    np.random.seed(6)
    other = fn((30, 20), **kwargs)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def state(module):
    return {name: p.value.copy() for name, p in module.named_parameters()}


@pytest.mark.parametrize("seed_with", [vg.manual_seed, np.random.seed], ids=["manual_seed", "np.random.seed"])
@pytest.mark.parametrize("build", [lambda: vg.Linear(5, 3, init="he_uniform"),
                                   lambda: vg.MLP([4, 8, 8, 2], init="glorot_uniform")], ids=["Linear", "MLP"])
def test_models_built_after_the_same_seed_have_the_same_weights(build, seed_with):
    seed_with(21)
    first = state(build())
    seed_with(21)
    again = state(build())
    seed_with(22)
    other = state(build())
    assert list(first) == list(again)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)
    assert not np.array_equal(first["w" if "w" in first else "layers.0.w"],
                              other["w" if "w" in other else "layers.0.w"])


# ---- init.get ----

@pytest.mark.parametrize("name", sorted(init.INITIALISERS))
def test_get_returns_the_initialiser_a_name_stands_for(name):
    assert init.get(name) is init.INITIALISERS[name]


def test_get_maps_aliases_to_the_same_function():
    assert init.get("xavier_normal") is init.glorot_normal and init.get("kaiming_uniform") is init.he_uniform


def test_get_passes_a_function_through():
    def custom(shape, dtype=np.float64):
        return np.full(shape, 0.1, dtype=dtype)

    assert init.get(custom) is custom


@pytest.mark.parametrize("name", ["glorot", "Xavier_normal", "", None, 3])
def test_get_rejects_an_unknown_name(name):
    with pytest.raises(ValueError, match="unknown initialiser"):
        init.get(name)
