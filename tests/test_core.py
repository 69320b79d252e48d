"""The vugrad surface: TensorNode/OpNode graphs, backward, operators, Python ops, grad mode, deep graphs."""

import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as vg
from helpers import ReLU, Scale, engine_grads, numeric_grads


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- graph exploration ----

def test_adding_two_nodes_records_an_add_opnode_linking_inputs_and_output():
    a, b = vg.TensorNode(randn(2, 3, seed=1)), vg.TensorNode(randn(2, 3, seed=2))
    c = a + b
    np.testing.assert_array_equal(c.value, a.value + b.value)
    assert isinstance(c.source, vg.OpNode)
    assert c.source.op is vg.Add
    assert c.source.name == "add"
    assert c.source.inputs[0] is a and c.source.inputs[1] is b
    assert len(c.source.outputs) == 1 and c.source.outputs[0] is c
    assert a.source is None and b.source is None


def test_grads_are_zeros_of_the_value_shape_before_backward():
    a = vg.TensorNode(randn(2, 3))
    c = a * 2.0
    for node in (a, c):
        assert node.grad.shape == node.value.shape
        assert node.grad.dtype == node.value.dtype
        assert not node.grad.any()


def test_native_opnode_context_holds_the_arrays_its_backward_uses():
    x = vg.TensorNode(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]))
    m = vg.RowMax.do_forward(x)
    context = m.source.context
    np.testing.assert_array_equal(context["inputs"][0], x.value)
    np.testing.assert_array_equal(context["outputs"][0], [5.0, 7.0])


def test_leaf_reports_its_shape_size_length_name_and_item():
    x = vg.TensorNode(np.zeros((4, 2)), name="weights")
    assert x.shape == (4, 2) and x.ndim == 2 and x.dtype == np.float64
    assert x.size() == (4, 2) and x.size(0) == 4 and x.size(-1) == 2
    assert len(x) == 4
    assert x.name == "weights" and "weights" in repr(x)
    assert x.requires_grad
    assert vg.TensorNode(np.array([[2.5]])).item() == 2.5
    assert vg.TensorNode(3.0).shape == ()


def test_item_gives_the_python_number_of_the_dtype_and_refuses_more_than_one_element():
    for value, kind in ((np.array([[2.5]], dtype=np.float32), float), (np.array([-3]), int), (np.array(True), bool)):
        got = vg.tensor(value).item()
        assert type(got) is kind and got == value.item()
    with pytest.raises(ValueError, match=r"item\(\): a tensor of shape \(3,\) has 3 elements, not one"):
        vg.TensorNode(np.ones(3)).item()
    with pytest.raises(ValueError, match=r"shape \(0, 2\) has 0 elements"):
        vg.TensorNode(np.ones((0, 2))).item()


@pytest.mark.parametrize("value", [np.arange(3), np.array([True, False]), [1, 2, 3], 7], ids=["int", "bool", "list", "number"])
def test_integer_and_boolean_values_become_float64(value):
    node = vg.TensorNode(value)
    assert node.dtype == np.float64
    np.testing.assert_array_equal(node.value, np.asarray(value, dtype=np.float64))


def test_float32_values_stay_float32():
    assert vg.TensorNode(np.ones(3, dtype=np.float32)).dtype == np.float32


def test_contiguous_float_array_is_shared_with_the_node_not_copied():
    array = np.zeros((2, 3))
    node = vg.TensorNode(array)
    array[0, 0] = 5.0
    assert node.value[0, 0] == 5.0
    assert np.shares_memory(node.value, array)


def test_non_contiguous_array_is_copied_into_the_node():
    array = np.arange(6.0).reshape(2, 3).T
    node = vg.TensorNode(array)
    np.testing.assert_array_equal(node.value, array)
    assert not np.shares_memory(node.value, array)


def test_leaf_cannot_be_given_a_source():
    op_output = vg.TensorNode(np.ones(2)) * 2.0
    with pytest.raises(ValueError, match="source is set by ops"):
        vg.TensorNode(np.ones(2), source=op_output.source)


def test_constants_made_from_numbers_and_arrays_do_not_require_grad():
    x = vg.TensorNode(np.ones(2))
    for constant in ((x + 1.0).source.inputs[1], (np.ones(2) * x).source.inputs[0]):
        assert not constant.requires_grad
    loss = vg.Sum.do_forward(x * np.array([2.0, 3.0]))
    loss.backward()
    assert not loss.source.inputs[0].source.inputs[1].grad.any()


def test_ops_on_nodes_that_require_no_grad_record_nothing():
    x = vg.TensorNode(np.ones(2), requires_grad=False)
    assert (x * 2.0).source is None
    assert vg.Sigmoid.do_forward(x).source is None


# ---- backward, accumulation, zero_grad, clear ----

def test_node_used_twice_gets_the_sum_of_both_paths():
    a = vg.TensorNode(np.array([1.0, -2.0, 3.0]))
    vg.Sum.do_forward(a * a + a).backward()
    np.testing.assert_allclose(a.grad, 2 * a.value + 1)


def test_node_feeding_two_branches_gets_the_sum_of_both_branches():
    a, b = vg.TensorNode(randn(2, 2, seed=1)), vg.TensorNode(randn(2, 2, seed=2))
    loss = vg.Sum.do_forward(a @ b) + vg.Sum.do_forward(vg.Exp.do_forward(a))
    loss.backward()
    np.testing.assert_allclose(a.grad, np.ones((2, 2)) @ b.value.T + np.exp(a.value), rtol=1e-12)


def test_backward_twice_with_retain_graph_accumulates_into_the_leaf_grad():
    x = vg.TensorNode(np.array([1.0, 2.0, 3.0]))
    w = vg.TensorNode(np.array([2.0, 2.0, 2.0]))
    loss = vg.Sum.do_forward(x * w)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0, 4.0])


def test_backward_twice_through_a_freed_graph_raises_a_clear_error():
    x = vg.TensorNode(np.array([1.0, 2.0, 3.0]))
    loss = vg.Sum.do_forward(x * 2.0)
    loss.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_zero_grad_resets_every_grad_below_so_the_next_pass_starts_fresh():
    x, w = vg.TensorNode(randn(3, seed=1)), vg.TensorNode(randn(3, seed=2))
    hidden = x * w
    hidden.retain_grad()
    loss = vg.Sum.do_forward(hidden)
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    loss.zero_grad()
    for node in (x, w, hidden):
        assert not node.grad.any()
    loss.backward()
    np.testing.assert_allclose(x.grad, w.value)
    np.testing.assert_allclose(w.grad, x.value)
    np.testing.assert_array_equal(hidden.grad, np.ones(3))


def test_clear_disconnects_the_graph_and_keeps_values_and_grads():
    a, b = vg.TensorNode(randn(2, 2, seed=1)), vg.TensorNode(randn(2, 2, seed=2))
    hidden = a @ b
    loss = vg.Sum.do_forward(vg.Sigmoid.do_forward(hidden))
    loss.backward()
    grad = a.grad.copy()
    value = loss.item()
    loss.clear()
    assert loss.source is None and hidden.source is None
    assert loss.item() == value
    np.testing.assert_array_equal(a.grad, grad)


def test_backward_from_a_node_with_several_elements_raises_value_error():
    y = vg.TensorNode(np.ones((2, 2))) * 2.0
    with pytest.raises(ValueError, match=r"backward\(\) can only start from a scalar node; this node has shape \(2, 2\)"):
        y.backward()


def test_backward_from_a_one_element_matrix_sets_its_grad_to_ones():
    x = vg.TensorNode(np.array([[3.0]]))
    y = x * x
    y.retain_grad()
    y.backward()
    np.testing.assert_array_equal(y.grad, [[1.0]])
    np.testing.assert_array_equal(x.grad, [[6.0]])


def test_grad_can_be_set_with_the_right_shape_only():
    x = vg.TensorNode(np.zeros((2, 3), dtype=np.float32))
    x.grad = np.ones((2, 3))
    assert x.grad.dtype == np.float32 and x.grad.sum() == 6
    with pytest.raises(ValueError, match=r"TensorNode.grad: gradient of shape \(3,\) does not match"):
        x.grad = np.ones(3)
    x.grad = None
    assert not x.grad.any()


# ---- operators ----

X = np.array([0.5, 1.5, -2.0, 3.0])
OPERATOR_CASES = [
    # expression, op class at the top of the graph, value, d sum(value) / dx
    ("x * -1.0", lambda x: x * -1.0, vg.Multiply, -X, -np.ones(4)),
    ("-1.0 * x", lambda x: -1.0 * x, vg.Multiply, -X, -np.ones(4)),
    ("x + 3", lambda x: x + 3, vg.Add, X + 3, np.ones(4)),
    ("3 + x", lambda x: 3 + x, vg.Add, X + 3, np.ones(4)),
    ("2.0 - x", lambda x: 2.0 - x, vg.Sub, 2.0 - X, -np.ones(4)),
    ("x - 2.0", lambda x: x - 2.0, vg.Sub, X - 2.0, np.ones(4)),
    ("1 / x", lambda x: 1 / x, vg.Divide, 1 / X, -1 / X**2),
    ("x / 4.0", lambda x: x / 4.0, vg.Divide, X / 4.0, np.full(4, 0.25)),
    ("x ** 2", lambda x: x**2, vg.Power, X**2, 2 * X),
    ("2.0 ** x", lambda x: 2.0**x, vg.Power, 2.0**X, 2.0**X * np.log(2.0)),
    ("-x", lambda x: -x, vg.Negative, -X, -np.ones(4)),
]


@pytest.mark.parametrize("expression, op, value, grad", [pytest.param(*c[1:], id=c[0]) for c in OPERATOR_CASES])
def test_operator_with_a_python_number_computes_value_and_grad(expression, op, value, grad):
    x = vg.TensorNode(X.copy())
    y = expression(x)
    assert y.source.op is op
    np.testing.assert_allclose(y.value, value, rtol=1e-14)
    vg.Sum.do_forward(y).backward()
    np.testing.assert_allclose(x.grad, grad, rtol=1e-12)


def test_numpy_array_on_the_left_defers_to_the_node_operators():
    array = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = vg.TensorNode(np.array([[0.5, -1.0], [2.0, 0.25]]))
    for result, expected in [(array + x, array + x.value), (array - x, array - x.value), (array * x, array * x.value),
                             (array / x, array / x.value), (array ** x, array ** x.value),
                             (array @ x, array @ x.value)]:
        assert isinstance(result, vg.TensorNode)
        np.testing.assert_allclose(result.value, expected, rtol=1e-14)
    y = array @ x
    vg.Sum.do_forward(y).backward()
    np.testing.assert_allclose(x.grad, array.T @ np.ones((2, 2)))


class Weight(vg.TensorNode):
    """A Python subclass, as course code writes (a named parameter, say)."""


def test_a_subclass_of_tensornode_is_a_node_wherever_the_engine_takes_one():
    w, x = Weight(randn(2, 2)), vg.TensorNode(randn(2, 2, seed=1))
    for out, value in [(w + x, w.value + x.value), (x - w, x.value - w.value), (2.0 * w, 2.0 * w.value),
                       (w @ x, w.value @ x.value), (vg.sigmoid(w), 1 / (1 + np.exp(-w.value)))]:
        np.testing.assert_allclose(out.value, value, rtol=1e-12, atol=1e-15)
        assert out.source.inputs[0] is w or out.source.inputs[-1] is w  # the subclass object itself, not a copy
    (w * x).sum().backward(gradient=Weight(np.array(2.0)))  # a gradient given as a node
    np.testing.assert_allclose(w.grad, 2 * x.value, rtol=1e-15)
    with pytest.raises(TypeError, match="value must be an array, not a TensorNode"):
        vg.TensorNode(w)


def test_matmul_method_and_operator_agree():
    a, b = vg.TensorNode(randn(2, 3, seed=1)), vg.TensorNode(randn(3, 4, seed=2))
    np.testing.assert_array_equal(a.matmul(b).value, (a @ b).value)
    assert a.matmul(b).source.op is vg.MatrixMultiply


@pytest.mark.parametrize("expression", [lambda x: x * 0.5, lambda x: 0.5 * x, lambda x: x**2, lambda x: 1 / x,
                                        lambda x: 2.0 - x, lambda x: x + 1],
                         ids=["x*0.5", "0.5*x", "x**2", "1/x", "2.0-x", "x+1"])
def test_python_numbers_keep_float32_nodes_float32(expression):
    x = vg.TensorNode(np.array([1.0, 2.0], dtype=np.float32))
    y = expression(x)
    assert y.dtype == np.float32
    vg.Sum.do_forward(y).backward()
    assert x.grad.dtype == np.float32


def test_float32_and_float64_promote_to_float64_and_grads_keep_each_input_dtype():
    a = vg.TensorNode(np.array([1.0, 2.0], dtype=np.float32))
    b = vg.TensorNode(np.array([3.0, 4.0], dtype=np.float64))
    for y in (a + b, b - a, b / a, a ** b):
        assert y.dtype == np.float64
    y = a * b
    vg.Sum.do_forward(y).backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad, [3.0, 4.0])
    np.testing.assert_allclose(b.grad, [1.0, 2.0])
    assert (a * np.ones(2)).dtype == np.float64


# ---- values and the SGD update ----

def test_sgd_update_in_place_changes_what_the_engine_computes_next():
    w = vg.TensorNode(np.array([1.0, -2.0]))
    x = np.array([3.0, 4.0])
    loss = vg.Sum.do_forward(w * x)
    loss.backward()
    w.value -= 0.1 * w.grad
    np.testing.assert_allclose(w.value, [0.7, -2.4])
    np.testing.assert_allclose(vg.Sum.do_forward(w * x).item(), 0.7 * 3 - 2.4 * 4)


def test_sgd_training_loop_follows_the_numpy_trajectory():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    w0 = rng.standard_normal((3, 1))
    w = vg.TensorNode(w0.copy())
    w_np, lr = w0.copy(), 0.05
    for _ in range(5):
        residual = x @ w - y
        loss = vg.Sum.do_forward(residual * residual)
        loss.backward()
        w.value -= lr * w.grad
        loss.zero_grad()
        loss.clear()
        w_np -= lr * 2 * x.T @ (x @ w_np - y)
    np.testing.assert_allclose(w.value, w_np, rtol=1e-12)


def test_assigning_a_new_value_replaces_the_array_and_resets_the_grad():
    w = vg.TensorNode(np.ones(2))
    vg.Sum.do_forward(w * 3.0).backward()
    w.value = np.array([5.0, 6.0, 7.0])
    assert w.shape == (3,)
    assert not w.grad.any() and w.grad.shape == (3,)
    np.testing.assert_array_equal((w * 2.0).value, [10.0, 12.0, 14.0])


# ---- Python ops ----

class SplitScale(vg.Op):
    """Two outputs: (x * 2, x * 3)."""

    @staticmethod
    def forward(context, x):
        return x * 2.0, x * 3.0

    @staticmethod
    def backward(context, g2, g3):
        return 2.0 * g2 + 3.0 * g3


class FirstOnly(vg.Op):
    """a + 0 * b, whose backward gives no gradient (None) for b."""

    @staticmethod
    def forward(context, a, b):
        return a + 0.0 * b

    @staticmethod
    def backward(context, go):
        return go, None


class WrongCount(vg.Op):
    @staticmethod
    def forward(context, a, b):
        return a + b

    @staticmethod
    def backward(context, go):
        return go


class WrongShape(vg.Op):
    @staticmethod
    def forward(context, x):
        return x.sum(axis=1)

    @staticmethod
    def backward(context, go):
        return go


def test_python_relu_runs_forward_and_backward_on_the_tape():
    x = vg.TensorNode(np.array([[-1.0, 2.0], [3.0, -4.0]]))
    y = ReLU.do_forward(x)
    np.testing.assert_array_equal(y.value, [[0.0, 2.0], [3.0, 0.0]])
    assert y.source.op is ReLU and y.source.inputs[0] is x
    np.testing.assert_array_equal(y.source.context["mask"], [[False, True], [True, False]])
    vg.Sum.do_forward(y * np.array([[10.0, 20.0], [30.0, 40.0]])).backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 20.0], [30.0, 0.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_python_relu_between_native_ops_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    upstream = rng.standard_normal((3, 2))

    def fn(nodes):
        x, w = nodes
        return vg.Sum.do_forward(vg.Sigmoid.do_forward(ReLU.do_forward(x @ w) + 0.5) * upstream)

    grads, _ = engine_grads(fn, arrays)
    for g, n in zip(grads, numeric_grads(fn, arrays)):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-8)


def test_python_op_with_two_outputs_returns_a_list_and_gets_both_grads():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    outputs = SplitScale.do_forward(x)
    assert isinstance(outputs, list) and len(outputs) == 2
    doubled, tripled = outputs
    np.testing.assert_array_equal(doubled.value, [2.0, 4.0])
    np.testing.assert_array_equal(tripled.value, [3.0, 6.0])
    assert doubled.source is tripled.source and doubled.source.outputs[1] is tripled
    vg.Sum.do_forward(doubled * 5.0 + tripled).backward()
    np.testing.assert_array_equal(x.grad, [13.0, 13.0])


def test_unused_output_of_a_python_op_contributes_a_zero_grad():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    doubled, _ = SplitScale.do_forward(x)
    vg.Sum.do_forward(doubled).backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_keyword_arguments_reach_forward_as_constants():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = Scale.do_forward(x, factor=3.0)
    assert len(y.source.inputs) == 1 and y.source.inputs[0] is x
    np.testing.assert_array_equal(y.value, [3.0, 6.0])
    vg.Sum.do_forward(y).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_python_op_backward_may_return_none_for_an_input():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    vg.Sum.do_forward(FirstOnly.do_forward(a, b)).backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.0, 0.0])


def test_python_op_returning_too_few_grads_raises_value_error_naming_it():
    a, b = vg.TensorNode(np.ones(2)), vg.TensorNode(np.ones(2))
    loss = vg.Sum.do_forward(WrongCount.do_forward(a, b))
    with pytest.raises(ValueError, match=r"backward of WrongCount returned 1 gradient\(s\) for 2 input\(s\)"):
        loss.backward()


def test_python_op_returning_a_grad_of_the_wrong_shape_raises_value_error_naming_it():
    x = vg.TensorNode(np.ones((2, 3)))
    loss = vg.Sum.do_forward(WrongShape.do_forward(x))
    with pytest.raises(ValueError, match=r"backward of WrongShape returned a gradient of shape \(2,\) for input 0 of shape \(2, 3\)"):
        loss.backward()


def test_python_op_rejects_inputs_that_are_not_nodes():
    with pytest.raises(TypeError, match="ReLU: all inputs must be TensorNodes"):
        ReLU.do_forward(np.ones(2))


def test_python_op_output_does_not_alias_its_input():
    class Identity(vg.Op):
        @staticmethod
        def forward(context, x):
            return x

        @staticmethod
        def backward(context, go):
            return go

    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = Identity.do_forward(x)
    x.value[0] = 9.0
    assert y.value[0] == 1.0


# ---- native ops on raw arrays ----

RAW_CASES = [
    # op, inputs, constants, expected output, upstream gradient, expected input gradients
    ("sigmoid", vg.Sigmoid, [np.array([0.0, np.log(3.0)])], {}, np.array([0.5, 0.75]),
     [np.array([1.0, 2.0])], [np.array([0.25, 2 * 0.75 * 0.25])]),
    ("add-broadcast", vg.Add, [np.ones((2, 1)), np.arange(3.0)], {}, np.array([[1.0, 2.0, 3.0]] * 2),
     [np.ones((2, 3))], [np.full((2, 1), 3.0), np.full(3, 2.0)]),
    ("matmul", vg.MatrixMultiply, [np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]])], {}, np.array([[11.0]]),
     [np.array([[2.0]])], [np.array([[6.0, 8.0]]), np.array([[2.0], [4.0]])]),
    ("select", vg.Select, [np.array([[1.0, 2.0], [3.0, 4.0]])], {"indices": np.array([1, 0])}, np.array([2.0, 3.0]),
     [np.array([5.0, 6.0])], [np.array([[0.0, 5.0], [6.0, 0.0]])]),
    ("expand", vg.Expand, [np.array([[1.0], [2.0]])], {"dim": 1, "repeats": 2}, np.array([[1.0, 1.0], [2.0, 2.0]]),
     [np.array([[1.0, 2.0], [3.0, 4.0]])], [np.array([[3.0], [7.0]])]),
]


@pytest.mark.parametrize("op, inputs, constants, output, upstream, grads",
                         [pytest.param(*c[1:], id=c[0]) for c in RAW_CASES])
def test_native_op_forward_and_backward_work_on_raw_arrays(op, inputs, constants, output, upstream, grads):
    context = {}
    out = op.forward(context, *inputs, **constants)
    np.testing.assert_allclose(out, output, rtol=1e-14)
    result = op.backward(context, *upstream)
    result = result if isinstance(result, tuple) else (result,)
    assert len(result) == len(grads)
    for r, g in zip(result, grads):
        np.testing.assert_allclose(r, g, rtol=1e-14)


# ---- grad mode ----

def test_no_grad_records_nothing_and_restores_grad_mode():
    x = vg.TensorNode(np.ones(2))
    with vg.no_grad():
        assert not vg.is_grad_enabled()
        y = vg.Sigmoid.do_forward(x * 2.0)
        z = ReLU.do_forward(x)
    assert y.source is None and z.source is None
    assert vg.is_grad_enabled()
    assert (x * 2.0).source is not None


def test_no_grad_restores_grad_mode_after_an_exception_and_nests():
    with pytest.raises(RuntimeError):
        with vg.no_grad():
            with vg.no_grad():
                pass
            assert not vg.is_grad_enabled()
            raise RuntimeError("boom")
    assert vg.is_grad_enabled()


def test_no_grad_works_as_a_decorator():
    @vg.no_grad()
    def double(node):
        return node * 2.0

    assert double(vg.TensorNode(np.ones(2))).source is None
    assert vg.is_grad_enabled()


# ---- deep graphs: everything iterative ----

CHAIN = 100_000


def test_backward_through_a_100k_op_chain_gives_the_analytic_grad():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = x
    for _ in range(CHAIN):
        y = y * 1.0001
    vg.Sum.do_forward(y).backward()
    np.testing.assert_allclose(y.value, x.value * 1.0001**CHAIN, rtol=1e-9)
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**CHAIN), rtol=1e-9)


def test_backward_through_a_deep_diamond_graph_visits_shared_nodes_once():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = x
    for _ in range(30_000):
        y = y * 0.5 + y * 0.5
    vg.Sum.do_forward(y).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_clear_disconnects_a_100k_op_chain():
    x = vg.TensorNode(np.array([1.0]))
    y = x + 1.0
    middle = None
    for i in range(CHAIN):
        y = y + 1.0
        if i == CHAIN // 2:
            middle = y
    loss = vg.Sum.do_forward(y)
    loss.clear()
    assert loss.source is None and y.source is None and middle.source is None
    assert loss.item() == CHAIN + 2


DELETE_CHAIN = textwrap.dedent("""
    import gc, numpy as np, tapegrad as vg
    for chain, n in (("mul", {n}), ("python", {n}), ("diamond", {n} // 3)):
        x = vg.TensorNode(np.array([1.0, 2.0]))
        y = x
        for _ in range(n):
            if chain == "mul":
                y = y * 1.0001
            elif chain == "python":
                y = Twice.do_forward(y) * 0.5
            else:
                y = y * 0.5 + y * 0.5
        loss = vg.Sum.do_forward(y)
        loss.backward()
        del loss, y
        gc.collect()
        assert x.grad.shape == (2,)
    print("ok")
""")

TWICE = textwrap.dedent("""
    import numpy as np, tapegrad as vg
    class Twice(vg.Op):
        @staticmethod
        def forward(context, x):
            return x * 2.0
        @staticmethod
        def backward(context, go):
            return go * 2.0
""")


def test_deleting_a_100k_op_chain_does_not_crash():
    # In a subprocess: a recursive teardown would overflow the C stack and kill the interpreter.
    code = TWICE + DELETE_CHAIN.format(n=CHAIN)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


class _Rotate(vg.Op):
    """Four inputs, four outputs: each output is the next input times its position, so every
    gradient lands on a different input than its output's (a swapped list would show)."""

    @staticmethod
    def forward(context, *xs):
        return tuple(xs[(k + 1) % len(xs)] * (k + 1) for k in range(len(xs)))

    @staticmethod
    def backward(context, *gs):
        n = len(gs)
        return tuple(gs[(k - 1) % n] * k if k else gs[n - 1] * n for k in range(n))


def test_ops_with_more_inputs_and_outputs_than_the_engine_keeps_inline():
    """An op node keeps up to 3 input nodes, 3 tensors each way and 2 output links in itself
    (cpp/small_vector.h); longer lists move to the heap and must behave the same."""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, k + 1)) for k in range(7)]
    nodes = [vg.TensorNode(a) for a in arrays]
    cat = vg.concatenate(nodes, axis=1)
    np.testing.assert_array_equal(cat.value, np.concatenate(arrays, axis=1))
    assert [n is m for n, m in zip(cat.source.inputs, nodes)] == [True] * 7
    weights = rng.standard_normal(cat.value.shape)
    (cat * vg.TensorNode(weights, requires_grad=False)).sum().backward()
    offsets = np.cumsum([0] + [a.shape[1] for a in arrays])
    for k, n in enumerate(nodes):
        np.testing.assert_array_equal(n.grad, weights[:, offsets[k]:offsets[k + 1]])

    xs = [vg.TensorNode(rng.standard_normal(3)) for _ in range(4)]
    outs = _Rotate.do_forward(*xs)
    assert len(outs) == 4 and len(outs[0].source.outputs) == 4
    for k, o in enumerate(outs):
        np.testing.assert_array_equal(o.value, xs[(k + 1) % 4].value * (k + 1))
    total = outs[0].sum()
    for k in range(1, 4):
        total = total + outs[k].sum() * float(k + 1)
    total.backward()
    for j in range(4):  # input j feeds output j - 1 (mod 4), scaled by its position j (4 for j = 0)
        scale = 4 if j == 0 else j
        np.testing.assert_allclose(xs[j].grad, np.full(3, float(scale * scale)))


def test_operators_are_c_functions_that_raise_python_exceptions():
    # fast_calls.cpp: the binary operators are method descriptors, without pybind11's dispatcher;
    # every C++ exception still arrives as the Python exception pybind11 would raise.
    a, b = vg.TensorNode(np.ones((2, 2))), vg.TensorNode(np.ones((3, 3)))
    assert type(vg.TensorNode.__add__).__name__ == "method_descriptor"
    assert "add" in vg.TensorNode.__radd__.__doc__ and "(other, self)" in vg.TensorNode.__radd__.__doc__
    assert str(inspect.signature(vg.TensorNode.__sub__)) == "(self, other, /)"
    assert np.array_equal((2 - a).value, np.ones((2, 2))) and np.array_equal((-a).value, -np.ones((2, 2)))
    assert a.__add__(a).value.sum() == 8.0
    with pytest.raises(ValueError, match=r"add: shapes \(2, 2\) and \(3, 3\)"):
        a + b  # std::invalid_argument
    with pytest.raises(vg._core.DTypeError, match="add: unsupported dtype"):
        a + "x"  # the module's own registered exception
    with pytest.raises(TypeError, match=r"__add__ expected 1 argument \(other\), got 2"):
        a.__add__(a, a)
    with pytest.raises(TypeError, match="doesn't apply to a 'int' object"):
        vg.TensorNode.__add__(3, a)
    with pytest.raises(ValueError, match="matmul"):
        a @ vg.TensorNode(np.ones(3))

    class Unset(vg.TensorNode):
        def __init__(self):  # never calls TensorNode.__init__: no node behind it
            pass

    with pytest.raises(TypeError):
        Unset() + a
    with pytest.raises(TypeError):
        -Unset()
    # One-input operators are functional's UnaryFunction objects; the maker checks what it is given.
    assert vg.TensorNode.__neg__ is vg.negative and vg.TensorNode.__abs__ is vg.abs
    index = vg.ops.Sigmoid._index
    keep = vg._core.unary_function(index, lambda x: x)  # a converter that lets a non-node through
    assert np.allclose(keep(a).value, 1 / (1 + np.exp(-1.0)))
    with pytest.raises(TypeError, match="sigmoid: all inputs must be TensorNodes; input 0 is float"):
        keep(1.5)
    with pytest.raises(TypeError, match="unary_function: convert must be callable"):
        vg._core.unary_function(index, None)
    with pytest.raises(TypeError):
        vg._core.unary_function("sigmoid", lambda x: x)
    with pytest.raises(IndexError):
        vg._core.unary_function(10 ** 6, lambda x: x)
    # A Python exception raised inside (the integer operators' Python function) comes out as itself.
    with pytest.raises(TypeError):
        vg.tensor([1, 2]) + object()
    # Errors on many threads at once each keep their own exception.
    import threading
    messages = []

    def fail():
        for _ in range(200):
            try:
                a + b
            except ValueError as e:
                messages.append(str(e))

    threads = [threading.Thread(target=fail) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(messages) == 800 and all("cannot be broadcast" in m for m in messages)


def test_tensornode_constructor_takes_its_arguments_by_position_and_keyword():
    # fast_calls.cpp parses the constructor's arguments itself (pybind11's keyword path took 1 us).
    x = np.arange(6.0).reshape(2, 3)
    for n in (vg.TensorNode(x, None, "w", False), vg.TensorNode(value=x, name="w", requires_grad=False),
              vg.TensorNode(x, **{"".join(["requires", "_grad"]): False, "name": "w"})):  # a keyword not interned
        assert n.name == "w" and n.requires_grad is False and np.shares_memory(n.value, x) and n.is_leaf
    assert vg.TensorNode(x).requires_grad and vg.TensorNode(x, requires_grad=np.bool_(True)).requires_grad
    assert not vg.TensorNode(x, requires_grad=0).requires_grad
    with pytest.raises(TypeError, match="requires_grad must be a bool, got str"):
        vg.TensorNode(x, requires_grad="no")
    with pytest.raises(TypeError, match="missing required argument 'value'"):
        vg.TensorNode(requires_grad=False)
    with pytest.raises(TypeError, match="'grad' is an invalid keyword argument for TensorNode"):
        vg.TensorNode(x, grad=True)
    with pytest.raises(TypeError, match=r"given by name \('value'\) and position \(1\)"):
        vg.TensorNode(x, value=x)
    with pytest.raises(TypeError, match=r"at most 4 arguments \(5 given\)"):
        vg.TensorNode(x, None, None, True, 1)
    with pytest.raises(ValueError, match="source is set by ops"):
        vg.TensorNode(x, source=1)
    with pytest.raises(TypeError, match="value must be an array, not a TensorNode"):
        vg.TensorNode(vg.TensorNode(x))
    n = vg.TensorNode(x)
    n.__init__(np.zeros(3))  # a second __init__ is ignored, as pybind11's constructors ignore it
    assert n.shape == (2, 3)

    class Sub(vg.TensorNode):
        def __init__(self, v):
            super().__init__(v, requires_grad=False)

    s = Sub(x)
    assert isinstance(s, vg.TensorNode) and not s.requires_grad and (s + 1).value.sum() == x.sum() + 6


def test_one_input_functions_are_c_callables_that_behave_as_python_functions():
    # fast_calls.cpp's UnaryFunction: vg.sigmoid and the other one-input functions of the op table.
    import copy
    import pickle
    x = np.array([[-1.0, 0.5], [2.0, 0.0]])
    a = vg.TensorNode(x)
    f = vg.sigmoid
    assert isinstance(f, vg._core.UnaryFunction) and repr(f) == "<tapegrad function sigmoid>"
    assert (f.__name__, f.__qualname__, f.__module__) == ("sigmoid", "sigmoid", "tapegrad.functional")
    assert f.__doc__.startswith("sigmoid(x) = 1 / (1 + exp(-x))") and str(inspect.signature(f)) == "(x)"
    assert inspect.isroutine(f)
    expect = 1 / (1 + np.exp(-x))
    for r in (f(a), f(x=a), a.sigmoid(), vg.TensorNode.sigmoid(a)):
        assert np.allclose(r.value, expect) and r.source is not None
    c = f(x)  # an array is a constant: no gradient
    assert np.allclose(c.value, expect) and not c.requires_grad
    assert np.allclose(vg.exp(2.0).value, np.exp(2.0)) and vg.relu(-1).value == 0.0
    r = f(a)
    r.sum().backward()
    assert np.allclose(a.grad, expect * (1 - expect))
    assert pickle.loads(pickle.dumps(f)) is f and copy.deepcopy(f) is f and copy.copy(f) is f
    with pytest.raises(TypeError, match=r"sigmoid\(\) takes exactly one argument, x \(got 2 positional"):
        f(a, a)
    with pytest.raises(TypeError, match=r"got 0 positional and 1 keyword"):
        f(y=a)
    with pytest.raises(TypeError, match="sigmoid: unsupported dtype"):
        f("x")

    class Sub(vg.TensorNode):
        pass

    s = Sub(x)  # not exactly a TensorNode: through the converter, which keeps it as it is
    assert np.allclose(vg.tanh(s).value, np.tanh(x)) and vg.tanh(s).source.inputs[0] is s
