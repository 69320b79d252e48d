"""The numpy-style surface: TensorNode methods and attributes, operators with Python numbers and numpy
arrays on either side, dtype promotion, and property tests of broadcasting, indexing and reductions
against numpy.

Gradients are those of a loss ``sum(out * G)`` with a random upstream G.
"""

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as vg
from helpers import engine_grads, numeric_grads
from reference import (BINARY, REDUCTIONS, away_from_zero, distinct, log_softmax, logsumexp, positive, real, restored,
                       scattered, sigmoid, softmax, sum_to_shape)

SEEDS = st.integers(0, 2**32 - 1)


def weighted_sum(out, upstream):
    """sum(out * G), the scalar whose gradient is checked."""
    return vg.Sum.do_forward(out * upstream)


# ---- methods and attributes mirror numpy ----

METHODS = [
    # id, the method call on a node, the same call on a numpy array (or its numpy equivalent), domain
    ("sum-axis1", lambda x: x.sum(axis=1), lambda a: a.sum(axis=1), real),
    ("sum-all", lambda x: x.sum(), lambda a: a.sum(), real),
    ("sum-no-axes", lambda x: x.sum(axis=()), lambda a: a.sum(axis=()), real),
    ("mean-all", lambda x: x.mean(), lambda a: a.mean(), real),
    ("mean-axes-keepdims", lambda x: x.mean(axis=(0, 2), keepdims=True), lambda a: a.mean(axis=(0, 2), keepdims=True),
     real),
    ("max-axis0-keepdims", lambda x: x.max(axis=0, keepdims=True), lambda a: a.max(axis=0, keepdims=True), distinct),
    ("max-all", lambda x: x.max(), lambda a: a.max(), distinct),
    ("min-last-axis", lambda x: x.min(axis=-1), lambda a: a.min(axis=-1), distinct),
    ("var-ddof1", lambda x: x.var(axis=1, ddof=1), lambda a: a.var(axis=1, ddof=1), real),
    ("logsumexp-axis0", lambda x: x.logsumexp(axis=0), lambda a: logsumexp(a, axis=0), real),
    ("reshape-ints", lambda x: x.reshape(2, 6), lambda a: a.reshape(2, 6), real),
    ("reshape-tuple", lambda x: x.reshape((2, 6)), lambda a: a.reshape((2, 6)), real),
    ("reshape-inferred", lambda x: x.reshape(-1, 4), lambda a: a.reshape(-1, 4), real),
    ("reshape-list", lambda x: x.reshape([3, -1]), lambda a: a.reshape([3, -1]), real),
    ("flatten", lambda x: x.flatten(), lambda a: a.flatten(), real),
    ("T", lambda x: x.T, lambda a: a.T, real),
    ("transpose-default", lambda x: x.transpose(), lambda a: a.transpose(), real),
    ("transpose-ints", lambda x: x.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2), real),
    ("transpose-tuple", lambda x: x.transpose((2, 0, 1)), lambda a: a.transpose((2, 0, 1)), real),
    ("squeeze", lambda x: x[:1].squeeze(), lambda a: a[:1].squeeze(), real),
    ("squeeze-axis", lambda x: x[:, :1].squeeze(1), lambda a: a[:, :1].squeeze(1), real),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda a: np.expand_dims(a, 1), real),
    ("broadcast_to", lambda x: x.broadcast_to((3, 2, 3, 2)), lambda a: np.broadcast_to(a, (3, 2, 3, 2)), real),
    ("expand", lambda x: x.expand(2, 2, 3, 2), lambda a: np.broadcast_to(a, (2, 2, 3, 2)), real),
    ("exp", lambda x: x.exp(), np.exp, real),
    ("log", lambda x: x.log(), np.log, positive),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, positive),
    ("abs-method", lambda x: x.abs(), np.abs, away_from_zero),
    ("abs-builtin", lambda x: abs(x), np.abs, away_from_zero),
    ("negative", lambda x: -x, np.negative, real),
    ("square", lambda x: x.square(), np.square, real),
    ("sigmoid", lambda x: x.sigmoid(), sigmoid, real),
    ("tanh", lambda x: x.tanh(), np.tanh, real),
    ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0.0), away_from_zero),
    ("softplus", lambda x: x.softplus(), lambda a: np.logaddexp(0.0, a), real),
    ("clip", lambda x: x.clip(-0.5, 0.5), lambda a: a.clip(-0.5, 0.5), away_from_zero),
    ("clip-upper-only", lambda x: x.clip(None, 1.0), lambda a: a.clip(None, 1.0), away_from_zero),
    ("softmax", lambda x: x.softmax(axis=0), lambda a: softmax(a, axis=0), real),
    ("log_softmax", lambda x: x.log_softmax(), log_softmax, real),
    ("getitem-int", lambda x: x[1], lambda a: a[1], real),
    ("getitem-slices", lambda x: x[:, 1:, ::-1], lambda a: a[:, 1:, ::-1], real),
    ("getitem-ellipsis-newaxis", lambda x: x[..., None, 0], lambda a: a[..., None, 0], real),
    ("getitem-list", lambda x: x[[1, 1, 0]], lambda a: a[[1, 1, 0]], real),
    ("getitem-mask", lambda x: x[x > 0], lambda a: a[a > 0], real),
    ("getitem-last-element", lambda x: x[-1, -1, -1], lambda a: a[-1, -1, -1], real),
]
METHOD_SHAPE = (2, 3, 2)


@pytest.mark.parametrize("method, reference, domain", [pytest.param(*row[1:], id=row[0]) for row in METHODS])
@pytest.mark.parametrize("seed", [0, 1])
def test_node_method_matches_numpy_and_its_gradient_matches_finite_differences(method, reference, domain, seed):
    rng = np.random.default_rng(seed)
    x = domain(rng, METHOD_SHAPE)
    out = method(vg.TensorNode(x.copy()))
    expected = reference(x.copy())
    assert isinstance(out, vg.TensorNode)
    assert out.shape == np.shape(expected) and out.dtype == np.float64
    np.testing.assert_allclose(out.value, expected, rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    fn = lambda nodes: weighted_sum(method(nodes[0]), upstream)  # noqa: E731
    (grad,), _ = engine_grads(fn, [x])
    (numeric,) = numeric_grads(fn, [x])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_node_attributes_mirror_numpy():
    a = np.zeros((4, 2, 3))
    x = vg.TensorNode(a)
    assert x.shape == a.shape and isinstance(x.shape, tuple)
    assert x.ndim == a.ndim
    assert x.dtype == a.dtype
    assert len(x) == len(a)
    assert x.T.shape == a.T.shape
    assert vg.TensorNode(np.zeros(3, dtype=np.float32)).dtype == np.float32


def test_len_of_a_scalar_node_is_a_type_error_as_in_numpy():
    with pytest.raises(TypeError):
        len(vg.TensorNode(np.array(1.0)))


# ---- Python numbers and numpy arrays on either side ----

ARRAY = np.array([[0.5, -1.5, 2.0], [1.0, 0.75, -0.5]])
POSITIVE_ARRAY = np.array([[0.5, 1.5, 2.0], [1.0, 0.75, 0.25]])
MATRIX = np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]])

MIXED = [
    # id, expression in a node x of shape (2, 3), the same expression in numpy, domain of x
    ("number-times-node", lambda x: 2.0 * x, lambda a: 2.0 * a, away_from_zero),
    ("node-times-number", lambda x: x * 2.0, lambda a: a * 2.0, away_from_zero),
    ("int-minus-node", lambda x: 1 - x, lambda a: 1 - a, away_from_zero),
    ("node-minus-int", lambda x: x - 1, lambda a: a - 1, away_from_zero),
    ("number-over-node", lambda x: 1.5 / x, lambda a: 1.5 / a, away_from_zero),
    ("node-over-number", lambda x: x / 4.0, lambda a: a / 4.0, away_from_zero),
    ("number-plus-node", lambda x: 0.5 + x, lambda a: 0.5 + a, away_from_zero),
    ("number-to-the-node", lambda x: 2.0 ** x, lambda a: 2.0 ** a, away_from_zero),
    ("node-squared", lambda x: x ** 2, lambda a: a ** 2, away_from_zero),
    ("node-to-a-fractional-power", lambda x: x ** 0.5, lambda a: a ** 0.5, positive),
    ("array-plus-node", lambda x: ARRAY + x, lambda a: ARRAY + a, away_from_zero),
    ("node-plus-array", lambda x: x + ARRAY, lambda a: a + ARRAY, away_from_zero),
    ("array-minus-node", lambda x: ARRAY - x, lambda a: ARRAY - a, away_from_zero),
    ("array-times-node", lambda x: ARRAY * x, lambda a: ARRAY * a, away_from_zero),
    ("array-over-node", lambda x: ARRAY / x, lambda a: ARRAY / a, away_from_zero),
    ("array-to-the-node", lambda x: POSITIVE_ARRAY ** x, lambda a: POSITIVE_ARRAY ** a, away_from_zero),
    ("row-array-plus-node", lambda x: ARRAY[0] + x, lambda a: ARRAY[0] + a, away_from_zero),
    ("node-matmul-array", lambda x: x @ MATRIX, lambda a: a @ MATRIX, away_from_zero),
    ("array-matmul-node", lambda x: MATRIX @ x, lambda a: MATRIX @ a, away_from_zero),
    ("maximum-number-node", lambda x: vg.maximum(0.0, x), lambda a: np.maximum(0.0, a), away_from_zero),
    ("minimum-node-array", lambda x: vg.minimum(x, ARRAY + 0.25), lambda a: np.minimum(a, ARRAY + 0.25),
     away_from_zero),
    ("add-array-node", lambda x: vg.add(ARRAY, x), lambda a: np.add(ARRAY, a), away_from_zero),
    ("subtract-int-node", lambda x: vg.subtract(3, x), lambda a: np.subtract(3, a), away_from_zero),
    ("multiply-node-number", lambda x: vg.multiply(x, -2.0), lambda a: np.multiply(a, -2.0), away_from_zero),
    ("divide-array-node", lambda x: vg.divide(ARRAY, x), lambda a: np.divide(ARRAY, a), away_from_zero),
    ("power-node-int", lambda x: vg.power(x, 3), lambda a: np.power(a, 3), away_from_zero),
    ("matmul-node-array", lambda x: vg.matmul(x, MATRIX), lambda a: np.matmul(a, MATRIX), away_from_zero),
]
MIXED_PARAMS = [pytest.param(*row[1:], id=row[0]) for row in MIXED]


@pytest.mark.parametrize("expression, reference, domain", MIXED_PARAMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numbers_and_arrays_on_either_side_of_a_node_give_numpys_result_and_dtype(expression, reference, domain,
                                                                                   dtype):
    x = domain(np.random.default_rng(3), (2, 3)).astype(dtype)
    out = expression(vg.TensorNode(x.copy()))
    expected = reference(x)  # numpy 2: a Python number takes the array's dtype, a float64 array promotes
    assert isinstance(out, vg.TensorNode)
    assert out.shape == expected.shape
    assert out.dtype == expected.dtype
    tolerance = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(out.value, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("expression, reference, domain", MIXED_PARAMS)
def test_numbers_and_arrays_are_constants_and_the_node_gets_the_gradient(expression, reference, domain):
    rng = np.random.default_rng(4)
    x = domain(rng, (2, 3))
    upstream = rng.standard_normal(reference(x).shape)
    fn = lambda nodes: weighted_sum(expression(nodes[0]), upstream)  # noqa: E731
    (grad,), _ = engine_grads(fn, [x])
    (numeric,) = numeric_grads(fn, [x])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_node_divided_by_node_gives_both_gradients():
    rng = np.random.default_rng(5)
    x, y = real(rng, (2, 3)), away_from_zero(rng, (3,))
    nx, ny = vg.TensorNode(x.copy()), vg.TensorNode(y.copy())
    out = nx / ny
    np.testing.assert_allclose(out.value, x / y, rtol=1e-15)
    weighted_sum(out, np.ones((2, 3))).backward()
    np.testing.assert_allclose(nx.grad, np.broadcast_to(1 / y, (2, 3)), rtol=1e-14)
    np.testing.assert_allclose(ny.grad, (-x / y**2).sum(axis=0), rtol=1e-14)


COMPARE = [
    # id, expression with x on either side of a comparison operator, numpy reference
    ("number-less-than-node", lambda x: 0.0 < x, lambda a: 0.0 < a),
    ("node-less-equal-int", lambda x: x <= 1, lambda a: a <= 1),
    ("node-equal-number", lambda x: x == 0.5, lambda a: a == 0.5),
    ("number-not-equal-node", lambda x: 0.5 != x, lambda a: 0.5 != a),
    ("array-greater-than-node", lambda x: ARRAY > x, lambda a: ARRAY > a),
    ("node-greater-equal-array", lambda x: x >= ARRAY, lambda a: a >= ARRAY),
    ("array-equal-node", lambda x: ARRAY == x, lambda a: ARRAY == a),
    ("row-less-than-node", lambda x: ARRAY[1] < x, lambda a: ARRAY[1] < a),
]


@pytest.mark.parametrize("expression, reference", [pytest.param(*row[1:], id=row[0]) for row in COMPARE])
def test_comparisons_with_numbers_and_arrays_on_either_side_follow_numpy(expression, reference):
    x = np.array([[0.5, -1.5, 3.0], [1.0, 0.75, -0.5]])
    out = expression(vg.TensorNode(x.copy()))
    assert isinstance(out, vg.TensorNode) and out.dtype == np.float64
    assert out.source is None and not out.requires_grad
    np.testing.assert_array_equal(out.value, reference(x).astype(np.float64))


def test_comparison_of_float32_nodes_gives_float32_ones_and_zeros():
    x = vg.TensorNode(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    out = x > 1.5
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.value, np.array([0.0, 1.0, 1.0], dtype=np.float32))


@pytest.mark.parametrize("compare", [lambda x, a: x < a, lambda x, a: a > x, lambda x, a: vg.less(x, a)],
                         ids=["node-less-than-array", "array-greater-than-node", "less-node-array"])
def test_comparing_a_float32_node_with_a_float64_array_compares_in_float64_like_numpy(compare):
    x = np.array([1.0, 2.0], dtype=np.float32)
    a = np.array([1.0 + 1e-8, 2.0])  # equal to x once rounded to float32
    out = compare(vg.TensorNode(x), a)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.value, [1.0, 0.0])


# ---- dtypes ----

@pytest.mark.parametrize("apply, reference", [
    (operator.add, np.add), (operator.sub, np.subtract), (operator.mul, np.multiply), (operator.truediv, np.divide),
    (operator.pow, np.power), (operator.matmul, np.matmul), (vg.maximum, np.maximum), (vg.minimum, np.minimum),
], ids=["add", "sub", "mul", "div", "pow", "matmul", "maximum", "minimum"])
@pytest.mark.parametrize("order", ["float32-first", "float64-first"])
def test_float32_with_float64_gives_float64_and_each_gradient_keeps_its_inputs_dtype(apply, reference, order):
    a32 = vg.TensorNode(np.array([[0.5, 1.5], [2.0, 1.0]], dtype=np.float32))
    b64 = vg.TensorNode(np.array([[1.25, 0.75], [0.5, 2.5]]))
    a, b = (a32, b64) if order == "float32-first" else (b64, a32)
    out = apply(a, b)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.value, reference(a.value, b.value), rtol=1e-15)
    vg.Sum.do_forward(out).backward()
    assert a32.grad.dtype == np.float32 and b64.grad.dtype == np.float64
    assert a32.grad.any() and b64.grad.any()


@pytest.mark.parametrize("value", [np.arange(4), np.arange(4, dtype=np.int32), np.array([True, False, True]),
                                   [1, 2, 3], 3],
                         ids=["int64", "int32", "bool", "list-of-ints", "int"])
def test_integer_and_boolean_values_become_float64(value):
    node = vg.TensorNode(value)
    assert node.dtype == np.float64
    np.testing.assert_array_equal(node.value, np.asarray(value, dtype=np.float64))


def test_integer_arrays_given_to_functions_become_float64_constants():
    out = vg.exp(np.arange(3))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.value, np.exp(np.arange(3.0)), rtol=1e-15)
    x = vg.TensorNode(np.ones(3, dtype=np.float32))
    assert (x + np.arange(3)).dtype == np.float64  # numpy: float32 + int64 -> float64


@pytest.mark.parametrize("number", [2, 2.5, True], ids=["int", "float", "bool"])
def test_a_python_number_takes_the_dtype_of_a_float32_node(number):
    x = vg.TensorNode(np.array([1.0, 2.0], dtype=np.float32))
    for out in (x * number, number * x, x - number, number - x, x ** 2, vg.maximum(x, 1.5)):
        assert out.dtype == np.float32


def test_a_numpy_float64_scalar_promotes_a_float32_node_as_in_numpy_2():
    x = vg.TensorNode(np.array([1.0, 2.0], dtype=np.float32))
    expected = (np.ones(2, np.float32) * np.float64(2.5)).dtype
    for out in (x * np.float64(2.5), np.float64(2.5) * x, vg.multiply(x, np.float64(2.5))):
        assert out.dtype == expected == np.float64


# ---- properties: broadcasting of every binary function ----

BINARY_BY_NAME = {function.__name__: row for row in BINARY for function in [row[1]]}
OPERATOR_OF = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul, "divide": operator.truediv,
               "power": operator.pow}


@pytest.mark.parametrize("name", sorted(BINARY_BY_NAME))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
       seed=SEEDS)
def test_binary_function_broadcasts_like_numpy_and_sums_grads_back_to_input_shapes(name, shapes, seed):
    op, function, reference, backward, (domain_a, domain_b) = BINARY_BY_NAME[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a, b, upstream = domain_a(rng, sa), domain_b(rng, sb), real(rng, out_shape)
    na, nb = vg.TensorNode(a.copy()), vg.TensorNode(b.copy())
    out = function(na, nb)
    assert out.source.op is op
    assert out.shape == out_shape
    np.testing.assert_allclose(out.value, reference(a, b), rtol=1e-14, atol=0)
    weighted_sum(out, upstream).backward()
    full_a, full_b = (np.broadcast_to(g, out_shape) for g in backward(upstream, a, b))
    assert na.grad.shape == sa and nb.grad.shape == sb
    np.testing.assert_allclose(na.grad, sum_to_shape(full_a, sa), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nb.grad, sum_to_shape(full_b, sb), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(OPERATOR_OF))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seed=SEEDS)
def test_binary_function_and_its_operator_agree_from_either_side(name, shapes, seed):
    _, function, reference, _, (domain_a, domain_b) = BINARY_BY_NAME[name]
    (sa, sb) = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a, b = domain_a(rng, sa), domain_b(rng, sb)
    expected = reference(a, b)
    for out in (function(vg.TensorNode(a), b), function(a, vg.TensorNode(b)),
                OPERATOR_OF[name](vg.TensorNode(a), vg.TensorNode(b))):
        np.testing.assert_allclose(out.value, expected, rtol=1e-14, atol=0)


COMPARISONS = {
    "equal": (vg.equal, np.equal), "not_equal": (vg.not_equal, np.not_equal), "less": (vg.less, np.less),
    "less_equal": (vg.less_equal, np.less_equal), "greater": (vg.greater, np.greater),
    "greater_equal": (vg.greater_equal, np.greater_equal),
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=3),
       seed=SEEDS)
def test_comparison_broadcasts_like_numpy(name, shapes, seed):
    function, reference = COMPARISONS[name]
    rng = np.random.default_rng(seed)
    a, b = (rng.integers(-1, 2, s).astype(np.float64) for s in shapes.input_shapes)
    out = function(vg.TensorNode(a), vg.TensorNode(b))
    assert out.shape == shapes.result_shape
    np.testing.assert_array_equal(out.value, reference(a, b).astype(np.float64))


# ---- properties: indexing ----

def check_indexing(x, key, seed):
    """x[key] on a node matches numpy, and its gradient is G scattered back with np.add.at."""
    expected = x[key]
    node = vg.TensorNode(x.copy())
    out = node[key]
    assert out.shape == np.shape(expected)
    np.testing.assert_array_equal(out.value, expected)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    weighted_sum(out, upstream).backward()
    np.testing.assert_allclose(node.grad, scattered(upstream, x, key), rtol=1e-14, atol=0)


@st.composite
def arrays_and_basic_keys(draw, min_side=0):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=min_side, max_side=5))
    key = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) + 0.5
    return x, key


@given(arrays_and_basic_keys(), SEEDS)
def test_basic_indexing_matches_numpy_and_its_grad_lands_on_the_viewed_elements(array_and_key, seed):
    check_indexing(*array_and_key, seed)


@st.composite
def strided_slices(draw):
    """Slices with random start, stop (either may be negative or beyond the axis) and step (incl. negative)."""
    bound = st.one_of(st.none(), st.integers(-7, 7))
    step = st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0))
    return slice(draw(bound), draw(bound), draw(step))


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
       slices=st.lists(strided_slices(), min_size=1, max_size=3), data=st.data(), seed=SEEDS)
def test_slicing_with_random_bounds_and_steps_matches_numpy(shape, slices, data, seed):
    key = tuple(slices[:len(shape)])
    if data.draw(st.booleans(), label="ellipsis first"):
        key = (Ellipsis,) + key
    if data.draw(st.booleans(), label="newaxis"):
        position = data.draw(st.integers(0, len(key)), label="newaxis position")
        key = key[:position] + (None,) + key[position:]
    x = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    check_indexing(x, key, seed)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_integer_array_indices_with_repeats_accumulate_the_grad_like_np_add_at(shape, data, seed):
    key = data.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                     max_side=6)), label="key")
    x = np.random.default_rng(seed).standard_normal(shape)
    check_indexing(x, key, seed)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_an_index_array_on_one_axis_with_forced_repeats_accumulates_the_grad(shape, data, seed):
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    size = shape[axis]
    picks = data.draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=6), label="picks")
    picks = np.array(picks + picks[:1])  # the first position at least twice
    key = (slice(None),) * axis + (picks,)
    x = np.random.default_rng(seed).standard_normal(shape)
    check_indexing(x, key, seed)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), data=st.data(), seed=SEEDS)
def test_boolean_masks_over_leading_axes_select_like_numpy(shape, data, seed):
    leading = data.draw(st.integers(1, len(shape)), label="mask dimensions")
    mask = data.draw(hnp.arrays(np.bool_, shape[:leading]), label="mask")
    x = np.random.default_rng(seed).standard_normal(shape)
    check_indexing(x, mask, seed)


@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_a_mask_after_a_slice_selects_like_numpy(shape, data, seed):
    mask = data.draw(hnp.arrays(np.bool_, shape[1:]), label="mask")
    x = np.random.default_rng(seed).standard_normal(shape)
    check_indexing(x, (slice(None, None, -1), mask), seed)


def test_a_node_used_as_a_mask_selects_where_it_is_non_zero():
    x = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    node = vg.TensorNode(x.copy())
    out = node[node > 0]
    np.testing.assert_array_equal(out.value, [1.0, 3.0, 5.0])
    vg.Sum.do_forward(out).backward()
    np.testing.assert_array_equal(node.grad, x > 0)


# ---- properties: reductions over random axis subsets ----

REDUCTIONS_BY_NAME = {function.__name__: row for row in REDUCTIONS for function in [row[1]]}


@st.composite
def axes_of(draw, ndim):
    """None, an int or a tuple of distinct axes, each written as a non-negative or a negative number."""
    if draw(st.booleans(), label="all axes"):
        return None
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True), label="axes")
    axes = [a - ndim if draw(st.booleans()) else a for a in axes]
    return axes[0] if len(axes) == 1 and draw(st.booleans(), label="as int") else tuple(axes)


@pytest.mark.parametrize("name", sorted(REDUCTIONS_BY_NAME))
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), data=st.data(), seed=SEEDS)
def test_reduction_over_random_axes_matches_numpy_with_and_without_keepdims(name, shape, data, seed):
    op, function, reference, backward, domain = REDUCTIONS_BY_NAME[name]
    axis = data.draw(axes_of(len(shape)))
    keepdims = data.draw(st.booleans(), label="keepdims")
    rng = np.random.default_rng(seed)
    x = domain(rng, shape)
    expected = reference(x, axis=axis, keepdims=keepdims)
    node = vg.TensorNode(x.copy())
    out = function(node, axis=axis, keepdims=keepdims)
    assert out.source.op is op
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.value, expected, rtol=1e-12, atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    weighted_sum(out, upstream).backward()
    expected_grad = np.broadcast_to(backward(restored(upstream, shape, axis, keepdims), x, axis), shape)
    np.testing.assert_allclose(node.grad, expected_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REDUCTIONS_BY_NAME))
def test_reducing_over_no_axes_reduces_each_element_alone_as_numpy_does(name):
    _, function, reference, _, domain = REDUCTIONS_BY_NAME[name]
    x = domain(np.random.default_rng(0), (2, 3))
    out = function(vg.TensorNode(x.copy()), axis=())
    np.testing.assert_allclose(out.value, reference(x, axis=()), rtol=1e-15, atol=0)  # var: zeros, others: x
