"""The op table: every engine op against a numpy reference, its hand-written gradient and finite differences.

One row per op (binary ops once per broadcast pattern, the others once per shape). Each row gives the
inputs' shapes and domains, the op's constants, a numpy forward and a numpy backward. The backward
reference receives the upstream gradient G of a loss ``sum(out * G)`` with a fixed random G, so every
gradient is non-trivial.
"""

import operator
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as vg
from helpers import engine_grads, numeric_grads, sum_to_shape

SEEDS = [0, 1, 2]


# ---- input domains: (rng, shape) -> float64 array ----

def real(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away_from_zero(rng, shape):
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def exponent(rng, shape):
    return rng.uniform(-2.0, 2.0, shape)


def distinct(rng, shape):
    """Values at least 0.2 apart, so a maximum is unique and stays put under finite differences."""
    n = int(np.prod(shape, dtype=np.int64))
    return rng.permutation(n).reshape(shape) * 0.3 + rng.uniform(0.0, 0.1, shape) - 0.15 * n


# ---- numpy references ----

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def scatter_rows(shape, columns, g):
    """A zero matrix of `shape` with g[i] at (i, columns[i])."""
    r = np.zeros(shape)
    r[np.arange(shape[0]), columns] = g
    return r


@dataclass(frozen=True)
class Case:
    id: str
    op: type
    shapes: Tuple[tuple, ...]
    forward: Callable  # (*arrays, **constants) -> array
    backward: Callable  # (G, *arrays, **constants) -> one gradient per input
    domains: Tuple[Callable, ...] = ()  # one per input; standard normal when empty
    constants: Callable = field(default=lambda rng, shapes: {})  # (rng, shapes) -> keyword arguments

    def draw(self, seed):
        rng = np.random.default_rng(seed)
        domains = self.domains or (real,) * len(self.shapes)
        arrays = [np.asarray(d(rng, s), dtype=np.float64) for d, s in zip(domains, self.shapes)]
        kwargs = self.constants(rng, self.shapes)
        out_shape = np.shape(self.forward(*arrays, **kwargs))
        upstream = np.asarray(rng.standard_normal(out_shape))
        return arrays, kwargs, upstream


BROADCAST_PATTERNS = [
    ((3, 4), (3, 4)),
    ((3, 4), ()),
    ((), (3, 4)),
    ((3, 1), (1, 4)),
    ((3, 4), (4,)),
    ((2, 3, 4), (3, 1)),
]

BINARY = [
    # op, numpy forward, numpy backward (before reduction to the input shapes), domains
    (vg.Add, np.add, lambda G, a, b: (G, G), (real, real)),
    (vg.Sub, np.subtract, lambda G, a, b: (G, -G), (real, real)),
    (vg.Multiply, np.multiply, lambda G, a, b: (G * b, G * a), (real, real)),
    (vg.Divide, np.divide, lambda G, a, b: (G / b, -G * a / b**2), (real, away_from_zero)),
    (vg.Power, np.power, lambda G, a, b: (G * b * a ** (b - 1), G * a**b * np.log(a)), (positive, exponent)),
]


def binary_case(op, fwd, bwd, domains, shapes):
    def backward(G, a, b):
        ga, gb = bwd(G, a, b)
        return sum_to_shape(ga, a.shape), sum_to_shape(gb, b.shape)

    return Case(f"{op.__name__}-{shapes[0]}x{shapes[1]}", op, shapes, fwd, backward, domains)


UNARY_SHAPES = [(3, 4), (5,), (2, 3, 2)]
MATRIX_SHAPES = [(3, 4), (1, 5), (4, 1)]

CASES = [binary_case(op, f, b, d, shapes) for op, f, b, d in BINARY for shapes in BROADCAST_PATTERNS]
CASES += [
    case
    for shape in UNARY_SHAPES
    for case in (
        Case(f"Negative-{shape}", vg.Negative, (shape,), np.negative, lambda G, x: (-G,)),
        Case(f"Log-{shape}", vg.Log, (shape,), np.log, lambda G, x: (G / x,), (positive,)),
        Case(f"Exp-{shape}", vg.Exp, (shape,), np.exp, lambda G, x: (G * np.exp(x),)),
        Case(f"Sigmoid-{shape}", vg.Sigmoid, (shape,), sigmoid,
             lambda G, x: (G * sigmoid(x) * (1 - sigmoid(x)),)),
        Case(f"Id-{shape}", vg.Id, (shape,), lambda x: x.copy(), lambda G, x: (G,)),
        Case(f"Sum-{shape}", vg.Sum, (shape,), np.sum, lambda G, x: (np.full(x.shape, G),)),
    )
]


def matmul_grads(G, a, b):
    """numpy matmul's gradients: 1-d operands as a row (left) or a column (right), batch axes reduced."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    G2 = G[..., None] if b.ndim == 1 else G
    G2 = G2[..., None, :] if a.ndim == 1 else G2
    ga = sum_to_shape(G2 @ np.swapaxes(b2, -1, -2), a2.shape)
    gb = sum_to_shape(np.swapaxes(a2, -1, -2) @ G2, b2.shape)
    return ga.reshape(a.shape), gb.reshape(b.shape)


CASES += [
    Case(f"MatrixMultiply-{a}x{b}", vg.MatrixMultiply, (a, b), np.matmul, matmul_grads)
    for a, b in [((3, 4), (4, 2)), ((1, 5), (5, 1)), ((4, 1), (1, 3)),
                 # numpy's matmul beyond matrices: vectors and broadcast batches
                 ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)),
                 ((3,), (2, 3, 4))]
]
CASES += [
    Case(f"BatchMM-{w}x{x}", vg.BatchMM, (w, x), lambda w, x: x @ w.T, lambda G, w, x: (G.T @ x, G @ w))
    for w, x in [((2, 3), (4, 3)), ((1, 5), (6, 5)), ((3, 1), (2, 1))]
]
CASES += [
    case
    for shape in MATRIX_SHAPES
    for case in (
        Case(f"RowSum-{shape}", vg.RowSum, (shape,), lambda x: x.sum(axis=1),
             lambda G, x: (np.broadcast_to(G[:, None], x.shape),)),
        Case(f"RowMax-{shape}", vg.RowMax, (shape,), lambda x: x.max(axis=1),
             lambda G, x: (scatter_rows(x.shape, x.argmax(axis=1), G),), (distinct,)),
        Case(f"Normalize-{shape}", vg.Normalize, (shape,), lambda x: x / x.sum(axis=1, keepdims=True),
             lambda G, x: (G / x.sum(1, keepdims=True) - (G * x).sum(1, keepdims=True) / x.sum(1, keepdims=True) ** 2,),
             (positive,)),
    )
]
CASES += [
    Case(f"Expand-{shape}-dim{dim}x{repeats}", vg.Expand, (shape,),
         lambda x, dim, repeats: np.repeat(x, repeats, axis=dim),
         lambda G, x, dim, repeats: (G.sum(axis=dim, keepdims=True),),
         constants=lambda rng, shapes, dim=dim, repeats=repeats: {"dim": dim, "repeats": repeats})
    for shape, dim, repeats in [((3, 1), 1, 4), ((1, 4), 0, 3), ((2, 1, 3), -2, 2)]
]
CASES += [
    Case(f"Select-{shape}{'-negative' if negative else ''}", vg.Select, (shape,),
         lambda x, indices: x[np.arange(len(x)), indices],
         lambda G, x, indices: (scatter_rows(x.shape, indices, G),),
         constants=lambda rng, shapes, negative=negative: {
             "indices": rng.integers(-shapes[0][1] if negative else 0, shapes[0][1], shapes[0][0])})
    for shape, negative in [((3, 4), False), ((5, 3), True), ((1, 6), False)]
]
CASES += [
    Case(f"Squeeze-{shape}-dim{dim}", vg.Squeeze, (shape,), lambda x, dim: np.squeeze(x, axis=dim),
         lambda G, x, dim: (G.reshape(x.shape),), constants=lambda rng, shapes, dim=dim: {"dim": dim})
    for shape, dim in [((1, 4), 0), ((3, 1), 1), ((2, 1, 3), -2)]
]
CASES += [
    Case(f"Unsqueeze-{shape}-dim{dim}", vg.Unsqueeze, (shape,), lambda x, dim: np.expand_dims(x, dim),
         lambda G, x, dim: (G.reshape(x.shape),), constants=lambda rng, shapes, dim=dim: {"dim": dim})
    for shape, dim in [((3, 4), 0), ((3, 4), 2), ((5,), -1)]
]

ALL_OPS = [vg.Add, vg.Sub, vg.Multiply, vg.Divide, vg.Power, vg.Negative, vg.Log, vg.Exp, vg.Sigmoid, vg.Id,
           vg.MatrixMultiply, vg.BatchMM, vg.Sum, vg.RowSum, vg.RowMax, vg.Normalize, vg.Expand, vg.Select,
           vg.Squeeze, vg.Unsqueeze]

CASE_PARAMS = [pytest.param(case, seed, id=f"{case.id}-seed{seed}") for case in CASES for seed in SEEDS]


def loss_of(case, kwargs, upstream):
    """sum(op(*inputs) * G) as a function of the input nodes."""
    def fn(nodes):
        out = case.op.do_forward(*nodes, **kwargs)
        return vg.Sum.do_forward(out * upstream)
    return fn


def test_op_table_has_a_row_for_every_op():
    assert {case.op for case in CASES} == set(ALL_OPS)


@pytest.mark.parametrize("case, seed", CASE_PARAMS)
def test_op_forward_matches_numpy_reference(case, seed):
    arrays, kwargs, _ = case.draw(seed)
    expected = case.forward(*arrays, **kwargs)
    out = case.op.do_forward(*[vg.TensorNode(a.copy()) for a in arrays], **kwargs)
    assert out.dtype == np.float64
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.value, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case, seed", CASE_PARAMS)
def test_op_gradient_matches_numpy_reference(case, seed):
    arrays, kwargs, upstream = case.draw(seed)
    grads, _ = engine_grads(loss_of(case, kwargs, upstream), arrays)
    expected = case.backward(upstream, *arrays, **kwargs)
    assert len(grads) == len(expected) == len(arrays)
    for g, e, a in zip(grads, expected, arrays):
        assert g.shape == a.shape
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case, seed", CASE_PARAMS)
def test_op_gradient_matches_central_finite_differences(case, seed):
    arrays, kwargs, upstream = case.draw(seed)
    fn = loss_of(case, kwargs, upstream)
    grads, _ = engine_grads(fn, arrays)
    for g, n in zip(grads, numeric_grads(fn, arrays)):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case, seed", CASE_PARAMS)
def test_op_forward_in_float32_matches_numpy_and_stays_float32(case, seed):
    arrays, kwargs, upstream = case.draw(seed)
    arrays32 = [a.astype(np.float32) for a in arrays]
    expected = case.forward(*[a.astype(np.float64) for a in arrays32], **kwargs)
    nodes = [vg.TensorNode(a.copy()) for a in arrays32]
    out = case.op.do_forward(*nodes, **kwargs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.value, expected, rtol=1e-5, atol=1e-5)
    vg.Sum.do_forward(out * upstream.astype(np.float32)).backward()
    for n, e in zip(nodes, case.backward(upstream, *[a.astype(np.float64) for a in arrays32], **kwargs)):
        assert n.grad.dtype == np.float32
        np.testing.assert_allclose(n.grad, e, rtol=1e-4, atol=1e-4)


# ---- properties: broadcasting and indexing ----

BROADCASTING = {
    # op, numpy forward, full-shape gradients of sum(out * G) (the second operand stays away from 0)
    "add": (vg.Add, np.add, lambda G, a, b: (G, G)),
    "sub": (vg.Sub, np.subtract, lambda G, a, b: (G, -G)),
    "mul": (vg.Multiply, np.multiply, lambda G, a, b: (G * b, G * a)),
    "div": (vg.Divide, np.divide, lambda G, a, b: (G / b, -G * a / b**2)),
}


@pytest.mark.parametrize("name", sorted(BROADCASTING))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4),
       seed=st.integers(0, 2**32 - 1))
def test_broadcasting_op_matches_numpy_and_reduces_grads_to_input_shapes(name, shapes, seed):
    op, fwd, bwd = BROADCASTING[name]
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    rng = np.random.default_rng(seed)
    a, b, upstream = real(rng, sa), away_from_zero(rng, sb), real(rng, out_shape)
    na, nb = vg.TensorNode(a.copy()), vg.TensorNode(b.copy())
    out = op.do_forward(na, nb)
    assert out.shape == out_shape
    np.testing.assert_allclose(out.value, fwd(a, b), rtol=1e-14, atol=0)
    vg.Sum.do_forward(out * upstream).backward()
    full_a, full_b = (np.broadcast_to(g, out_shape) for g in bwd(upstream, a, b))
    assert na.grad.shape == sa and nb.grad.shape == sb
    np.testing.assert_allclose(na.grad, sum_to_shape(full_a, sa), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nb.grad, sum_to_shape(full_b, sb), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(BROADCASTING))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2**32 - 1))
def test_broadcasting_operators_give_the_same_result_from_either_side(name, shapes, seed):
    op, fwd, _ = BROADCASTING[name]
    (sa, sb) = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a, b = real(rng, sa), away_from_zero(rng, sb)
    apply = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}[name]
    node_left = apply(vg.TensorNode(a.copy()), b)
    node_right = apply(a, vg.TensorNode(b.copy()))  # numpy defers to the node's reflected operator
    np.testing.assert_allclose(node_left.value, fwd(a, b), rtol=1e-14)
    np.testing.assert_allclose(node_right.value, fwd(a, b), rtol=1e-14)
    assert node_left.source.op is op and node_right.source.op is op


@st.composite
def matmul_operands(draw, min_side=1):
    """Shapes numpy's matmul accepts: vectors, matrices and stacks of them with broadcast batch axes."""
    batches = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    n, k, m = (draw(st.integers(min_side, 4)) for _ in range(3))
    a_vector, b_vector = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if a_vector else batches.input_shapes[0] + (n, k)
    sb = (k,) if b_vector else batches.input_shapes[1] + (k, m)
    return sa, sb


@given(matmul_operands(), st.integers(0, 2**32 - 1))
def test_matmul_follows_numpy_for_vectors_and_broadcast_batches(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    expected = np.matmul(a, b)
    na, nb = vg.TensorNode(a.copy()), vg.TensorNode(b.copy())
    out = na @ nb
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.value, expected, rtol=1e-12, atol=1e-12)
    upstream = np.asarray(rng.standard_normal(expected.shape))
    vg.Sum.do_forward(out * upstream).backward()
    ga, gb = matmul_grads(upstream, a, b)
    np.testing.assert_allclose(na.grad, ga, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nb.grad, gb, rtol=1e-12, atol=1e-12)


EMPTY_PRODUCT = textwrap.dedent("""
    import numpy as np, tapegrad as vg
    a, b = vg.TensorNode(np.ones({a})), vg.TensorNode(np.ones({b}))
    out = a @ b
    vg.Sum.do_forward(out).backward()
    print(out.shape, bool(out.value.any()), a.grad.shape, b.grad.shape)
""")


@pytest.mark.parametrize("sa, sb", [((2, 0), (0, 3)), ((0,), (0,)), ((2, 0), (0,)), ((0,), (0, 3)), ((2, 2, 0), (0, 3)),
                                    ((2, 2, 0), (2, 0, 3)), ((0, 3), (3, 2)), ((2, 3), (3, 0))],
                         ids=lambda s: str(s))
def test_matmul_with_empty_axes_gives_numpys_shape_and_zeros(sa, sb):
    # In a subprocess: a kernel that divides by an empty axis kills the interpreter (SIGFPE).
    code = EMPTY_PRODUCT.format(a=sa, b=sb)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"exit code {result.returncode}: {result.stderr[-1000:]}"
    expected = np.matmul(np.ones(sa), np.ones(sb))
    assert result.stdout.split("\n")[0] == f"{expected.shape} False {sa} {sb}"


@st.composite
def matrix_and_columns(draw):
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    columns = draw(st.lists(st.integers(-m, m - 1), min_size=n, max_size=n))
    return n, m, np.asarray(columns, dtype=np.int64), draw(st.integers(0, 2**32 - 1))


@given(matrix_and_columns())
def test_select_picks_one_column_per_row_and_its_grad_scatters_to_chosen_columns(args):
    n, m, columns, seed = args
    rng = np.random.default_rng(seed)
    x, upstream = rng.standard_normal((n, m)), rng.standard_normal(n)
    node = vg.TensorNode(x.copy())
    out = vg.Select.do_forward(node, indices=columns)
    np.testing.assert_array_equal(out.value, x[np.arange(n), columns])
    vg.Sum.do_forward(out * upstream).backward()
    expected = np.zeros((n, m))
    expected[np.arange(n), columns % m] = upstream
    np.testing.assert_array_equal(node.grad, expected)


@given(matrix_and_columns(), st.integers(0, 5), st.booleans())
def test_select_rejects_any_column_out_of_range(args, beyond, below):
    n, m, columns, _ = args
    row = n - 1
    columns[row] = -m - 1 - beyond if below else m + beyond
    with pytest.raises(IndexError, match=rf"select: index {columns[row]} in row {row} is out of range"):
        vg.Select.do_forward(vg.TensorNode(np.zeros((n, m))), indices=columns)


@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), data=st.data())
def test_expand_repeats_a_size_one_axis_and_sums_the_grad_back(shape, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    repeats = data.draw(st.integers(0, 4))
    shape = list(shape)
    shape[dim] = 1
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(shape)
    node = vg.TensorNode(x.copy())
    out = vg.Expand.do_forward(node, dim=dim, repeats=repeats)
    expected = np.repeat(x, repeats, axis=dim)
    np.testing.assert_array_equal(out.value, expected)
    upstream = rng.standard_normal(expected.shape)
    vg.Sum.do_forward(out * upstream).backward()
    np.testing.assert_allclose(node.grad, upstream.sum(axis=dim, keepdims=True), rtol=1e-12, atol=1e-12)


# ---- bad inputs: each class of error, with its type and a message naming the op ----

def node(*shape):
    return vg.TensorNode(np.ones(shape))


def raw_backward_with_wrong_shape():
    context = {}
    vg.Sigmoid.forward(context, np.zeros(3))
    vg.Sigmoid.backward(context, np.ones(4))


BAD_INPUTS = [
    ("add-shapes", lambda: node(2, 3) + node(4), ValueError,
     r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
    ("sub-shapes", lambda: node(2, 3) - node(3, 2), ValueError, r"sub: shapes \(2, 3\) and \(3, 2\) cannot be broadcast"),
    ("mul-shapes", lambda: vg.Multiply.do_forward(node(5), node(4)), ValueError, r"mul: shapes \(5,\) and \(4,\)"),
    ("div-shapes", lambda: node(2, 3) / node(2, 2), ValueError, r"div: shapes \(2, 3\) and \(2, 2\)"),
    ("pow-shapes", lambda: node(2, 3) ** node(2), ValueError, r"pow: shapes \(2, 3\) and \(2,\)"),
    ("matmul-align", lambda: node(2, 3) @ node(4, 2), ValueError,
     r"matmul: shapes \(2, 3\) and \(4, 2\) do not align \(3 != 4\)"),
    ("matmul-scalar", lambda: node(2, 3).matmul(vg.TensorNode(2.0)), ValueError,
     r"matmul: operands must have at least 1 dimension"),
    ("matmul-batch-shapes", lambda: node(2, 3, 4) @ node(3, 4, 2), ValueError, r"matmul: shapes \(2,\) and \(3,\) cannot be broadcast"),
    ("batch_mm-vector", lambda: vg.BatchMM.do_forward(node(2, 3), node(3)), ValueError, r"batch_mm: expected two matrices"),
    ("batch_mm-align", lambda: vg.BatchMM.do_forward(node(2, 3), node(4, 2)), ValueError,
     r"batch_mm: matrix of shape \(2, 3\) cannot apply to vectors of shape \(4, 2\)"),
    ("row_sum-vector", lambda: vg.RowSum.do_forward(node(3)), ValueError, r"row_sum: expected a matrix"),
    ("row_max-3d", lambda: vg.RowMax.do_forward(node(2, 2, 2)), ValueError, r"row_max: expected a matrix"),
    ("row_max-empty-rows", lambda: vg.RowMax.do_forward(node(2, 0)), ValueError, r"row_max: rows .* are empty"),
    ("normalize-vector", lambda: vg.Normalize.do_forward(node(3)), ValueError, r"normalize: expected a matrix"),
    ("expand-not-size-one", lambda: vg.Expand.do_forward(node(2, 3), dim=0, repeats=2), ValueError,
     r"expand: can only expand an axis of size 1"),
    ("expand-negative-repeats", lambda: vg.Expand.do_forward(node(1, 3), dim=0, repeats=-1), ValueError,
     r"expand: repeats must be >= 0"),
    ("expand-bad-axis", lambda: vg.Expand.do_forward(node(1, 3), dim=2, repeats=2), IndexError,
     r"expand: axis 2 is out of range"),
    ("select-index-too-large", lambda: vg.Select.do_forward(node(2, 3), indices=np.array([0, 3])), IndexError,
     r"select: index 3 in row 1 is out of range for 3 columns"),
    ("select-index-too-small", lambda: vg.Select.do_forward(node(2, 3), indices=np.array([-4, 0])), IndexError,
     r"select: index -4 in row 0 is out of range"),
    ("select-index-count", lambda: vg.Select.do_forward(node(2, 3), indices=np.array([0, 1, 2])), ValueError,
     r"select: expected one index per row"),
    ("select-float-indices", lambda: vg.Select.do_forward(node(2, 3), indices=np.array([0.0, 1.0])), IndexError,
     r"select: indices must be integers"),
    ("select-vector", lambda: vg.Select.do_forward(node(3), indices=np.array([0, 1, 2])), ValueError,
     r"select: expected a matrix"),
    ("select-no-indices", lambda: vg.Select.do_forward(node(2, 3)), TypeError, r"Select: .*indices"),
    ("squeeze-not-size-one", lambda: vg.Squeeze.do_forward(node(2, 3), dim=1), ValueError,
     r"squeeze: cannot squeeze axis 1"),
    ("squeeze-bad-axis", lambda: vg.Squeeze.do_forward(node(1, 3), dim=5), IndexError, r"squeeze: axis 5 is out of range"),
    ("unsqueeze-bad-axis", lambda: vg.Unsqueeze.do_forward(node(1, 3), dim=4), IndexError,
     r"unsqueeze: axis 4 is out of range"),
    ("add-arity", lambda: vg.Add.do_forward(node(2)), ValueError, r"add: expected 2 input(\(s\)|s), got 1"),
    ("add-array-input", lambda: vg.Add.do_forward(np.ones(2), node(2)), TypeError,
     r"add: all inputs must be TensorNodes; input 0 is ndarray"),
    ("sigmoid-number-input", lambda: vg.Sigmoid.do_forward(1.0), TypeError, r"sigmoid: all inputs must be TensorNodes"),
    ("add-string-operand", lambda: node(2) + "a", TypeError, r"add: unsupported dtype"),
    ("mul-object-operand", lambda: node(2) * object(), TypeError, r"mul: unsupported dtype object"),
    ("sub-string-array", lambda: np.array(["a", "b"]) - node(2), TypeError, r"sub: unsupported dtype"),
    ("tensornode-strings", lambda: vg.TensorNode(np.array(["a", "b"])), TypeError, r"TensorNode: unsupported dtype"),
    ("tensornode-objects", lambda: vg.TensorNode(np.array([object()])), TypeError,
     r"TensorNode: unsupported dtype object"),
    ("sigmoid-raw-backward-shape", raw_backward_with_wrong_shape, ValueError,
     r"sigmoid: gradient of shape \(4,\) does not match output of shape \(3,\)"),
]


@pytest.mark.parametrize("call, error, message", [pytest.param(*row[1:], id=row[0]) for row in BAD_INPUTS])
def test_bad_input_raises_error_naming_the_op(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---- special values and documented tie-breaking ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_nan_for_large_inputs(dtype):
    x = vg.TensorNode(np.array([-1000.0, 1000.0, 0.0], dtype=dtype))
    y = vg.Sigmoid.do_forward(x)
    vg.Sum.do_forward(y).backward()
    np.testing.assert_array_equal(y.value, np.array([0.0, 1.0, 0.5], dtype=dtype))
    np.testing.assert_array_equal(x.grad, np.array([0.0, 0.0, 0.25], dtype=dtype))


def test_log_gives_minus_inf_at_zero_and_nan_below_like_numpy():
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.log(np.array([0.0, -1.0, 1.0]))
    np.testing.assert_array_equal(vg.Log.do_forward(vg.TensorNode(np.array([0.0, -1.0, 1.0]))).value, expected)


def test_power_grads_are_zero_where_the_base_or_exponent_is_zero():
    a, b = vg.TensorNode(np.array([0.0, 2.0, 0.0])), vg.TensorNode(np.array([0.0, 0.0, 2.0]))
    y = a**b
    np.testing.assert_array_equal(y.value, [1.0, 1.0, 0.0])
    vg.Sum.do_forward(y).backward()
    np.testing.assert_array_equal(a.grad, [0.0, 0.0, 0.0])
    np.testing.assert_allclose(b.grad, [0.0, np.log(2.0), 0.0])


def test_row_max_grad_goes_to_the_first_of_tied_maxima():
    x = vg.TensorNode(np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 5.0], [0.0, -1.0, 0.0]]))
    m = vg.RowMax.do_forward(x)
    vg.Sum.do_forward(m * np.array([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(m.value, [3.0, 5.0, 0.0])
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [3.0, 0.0, 0.0]])


def test_row_max_propagates_nan_like_numpy():
    x = np.array([[1.0, np.nan, 5.0], [np.nan, 1.0, 2.0], [1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(vg.RowMax.do_forward(vg.TensorNode(x)).value, np.max(x, axis=1))


@pytest.mark.parametrize("indices", [[2, 0, 1], np.array([2, 0, 1], dtype=np.int32), np.array([2, 0, 1], dtype=np.uint8)],
                         ids=["list", "int32", "uint8"])
def test_select_accepts_any_integer_indices(indices):
    x = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(vg.Select.do_forward(vg.TensorNode(x), indices=indices).value, [2.0, 3.0, 7.0])


def test_select_rejects_boolean_indices_with_index_error_as_numpy_does_for_floats():
    with pytest.raises(IndexError, match="select: indices must be integers, got bool"):
        vg.Select.do_forward(vg.TensorNode(np.eye(3)), indices=np.array([True, False, True]))


@pytest.mark.parametrize("op, shape, out_shape", [(vg.Sum, (0, 3), ()), (vg.RowSum, (0, 3), (0,)),
                                                  (vg.RowMax, (0, 3), (0,)), (vg.Normalize, (0, 3), (0, 3))],
                         ids=["Sum", "RowSum", "RowMax", "Normalize"])
def test_reductions_accept_matrices_without_rows(op, shape, out_shape):
    x = vg.TensorNode(np.zeros(shape))
    out = op.do_forward(x)
    assert out.shape == out_shape
    vg.Sum.do_forward(out).backward()
    assert x.grad.shape == shape and not x.grad.any()


def test_view_ops_share_the_input_buffer():
    x = vg.TensorNode(np.arange(3.0))
    for view in (vg.Id.do_forward(x), vg.Unsqueeze.do_forward(x, dim=0)):
        assert np.shares_memory(view.value, x.value)
