"""Autograd semantics: custom ops (vg.Op, vg.Function), gradcheck, grad mode, gradient storage,
freed graphs, in-place safety and version counters, memory over long training, and the course's
gradient-descent lab."""

import operator
import os
import re
import threading
import warnings

import numpy as np
import pytest

import tapegrad as vg
from helpers import Cube, ProductAndDifference, numeric_grads, skip_if_sanitized


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- custom ops written in Python (vg.Op) ----

class Affine(vg.Op):
    """scale * x + shift, with scale and shift as keyword constants."""

    @staticmethod
    def forward(context, x, scale, shift=0.0):
        context["scale"] = scale
        return scale * x + shift

    @staticmethod
    def backward(context, go):
        return go * context["scale"]


class GradOnlyForFirst(vg.Op):
    """a * b whose backward declines to give b a gradient (returns None for it)."""

    @staticmethod
    def forward(context, a, b):
        context["b"] = b
        return a * b

    @staticmethod
    def backward(context, go):
        return go * context["b"], None


class TooManyGrads(vg.Op):
    @staticmethod
    def forward(context, a, b):
        return a + b

    @staticmethod
    def backward(context, go):
        return go, go, go


class TooFewGrads(vg.Op):
    @staticmethod
    def forward(context, a, b):
        return a + b

    @staticmethod
    def backward(context, go):
        return (go,)


class RowSumWithFlatGrad(vg.Op):
    """Sums rows but hands back the row gradient unexpanded: the wrong shape."""

    @staticmethod
    def forward(context, x):
        return x.sum(axis=1)

    @staticmethod
    def backward(context, go):
        return go


class SavesItsOutput(vg.Op):
    """tanh that keeps its own output (which the engine adopts as the output node's buffer)."""

    @staticmethod
    def forward(context, x):
        context["y"] = np.tanh(x)
        return context["y"]

    @staticmethod
    def backward(context, go):
        return go * (1.0 - context["y"] ** 2)


class PythonMul(vg.Op):
    @staticmethod
    def forward(context, a, b):
        context["a"], context["b"] = a, b
        return a * b

    @staticmethod
    def backward(context, go):
        return go * context["b"], go * context["a"]


def test_python_op_records_its_class_inputs_and_context_on_the_tape():
    x = vg.TensorNode(np.array([1.0, -2.0]))
    y = Cube.do_forward(x)
    np.testing.assert_array_equal(y.value, [1.0, -8.0])
    assert y.source.op is Cube
    assert y.source.inputs[0] is x and y.source.outputs[0] is y
    np.testing.assert_array_equal(y.source.context["x"], [1.0, -2.0])


@pytest.mark.parametrize("seed", [0, 1])
def test_python_op_fed_by_and_feeding_native_ops_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))]
    upstream = rng.standard_normal((3, 2))

    def fn(nodes):
        x, w = nodes
        inner = Cube.do_forward(vg.tanh(x) @ w)                   # native -> Python
        return vg.Sum.do_forward(vg.Sigmoid.do_forward(inner) * upstream)  # Python -> native

    nodes = [vg.TensorNode(a.copy()) for a in arrays]
    fn(nodes).backward()
    for node, expected in zip(nodes, numeric_grads(fn, arrays)):
        np.testing.assert_allclose(node.grad, expected, rtol=1e-6, atol=1e-8)


def test_python_op_between_two_python_ops_and_a_native_op_gets_the_chain_rule_product():
    x = vg.TensorNode(np.array([0.5, -1.0, 2.0]))
    y = Cube.do_forward(Affine.do_forward(x * 2.0, scale=3.0))  # (6x)^3
    vg.Sum.do_forward(y).backward()
    np.testing.assert_allclose(x.grad, 3.0 * 6.0 ** 3 * x.value ** 2)


def test_python_op_with_two_inputs_and_two_outputs_returns_a_list_sharing_one_source():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 5.0]))
    outputs = ProductAndDifference.do_forward(a, b)
    assert isinstance(outputs, list) and len(outputs) == 2
    product, difference = outputs
    np.testing.assert_array_equal(product.value, [3.0, 10.0])
    np.testing.assert_array_equal(difference.value, [-2.0, -3.0])
    assert product.source is difference.source
    assert list(product.source.inputs) == [a, b]
    assert product.source.outputs == [product, difference]


def test_python_op_with_two_outputs_gets_both_upstream_grads_and_gives_both_inputs_theirs():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 5.0]))
    product, difference = ProductAndDifference.do_forward(a, b)
    context = product.source.context
    vg.Sum.do_forward(product * np.array([10.0, 20.0]) + difference * np.array([1.0, 2.0])).backward()
    np.testing.assert_array_equal(context["received"][0], [10.0, 20.0])
    np.testing.assert_array_equal(context["received"][1], [1.0, 2.0])
    np.testing.assert_array_equal(a.grad, [10.0 * 3.0 + 1.0, 20.0 * 5.0 + 2.0])
    np.testing.assert_array_equal(b.grad, [10.0 * 1.0 - 1.0, 20.0 * 2.0 - 2.0])


def test_python_op_output_unused_by_the_loss_reaches_backward_as_zeros_of_its_shape():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 5.0]))
    product, difference = ProductAndDifference.do_forward(a, b)
    context = product.source.context
    vg.Sum.do_forward(product).backward()
    unused = context["received"][1]
    assert unused.shape == (2,) and not unused.any()
    np.testing.assert_array_equal(a.grad, [3.0, 5.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


def test_python_op_output_that_no_longer_exists_reaches_backward_as_zeros_of_its_shape():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 5.0]))
    outputs = ProductAndDifference.do_forward(a, b)
    product = outputs[0]
    del outputs  # the difference node is gone; the op node only holds it weakly
    assert product.source.outputs[1] is None
    context = product.source.context
    vg.Sum.do_forward(product).backward()
    unused = context["received"][1]
    assert unused.shape == (2,) and not unused.any()
    np.testing.assert_array_equal(a.grad, [3.0, 5.0])


def test_keyword_constants_reach_forward_but_are_not_inputs_and_get_no_gradient():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = Affine.do_forward(x, scale=3.0, shift=np.array([10.0, 20.0]))
    np.testing.assert_array_equal(y.value, [13.0, 26.0])
    assert len(y.source.inputs) == 1 and y.source.inputs[0] is x
    vg.Sum.do_forward(y).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])


def test_python_op_backward_returning_none_leaves_that_input_and_everything_below_it_without_grad():
    a, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    b = w * 2.0
    vg.Sum.do_forward(GradOnlyForFirst.do_forward(a, b)).backward()
    np.testing.assert_array_equal(a.grad, [6.0, 8.0])
    np.testing.assert_array_equal(w.grad, [0.0, 0.0])


@pytest.mark.parametrize("op, count", [(TooManyGrads, 3), (TooFewGrads, 1)])
def test_python_op_returning_the_wrong_number_of_grads_raises_value_error_naming_the_op(op, count):
    a, b = vg.TensorNode(np.ones(2)), vg.TensorNode(np.ones(2))
    loss = vg.Sum.do_forward(op.do_forward(a, b))
    with pytest.raises(ValueError, match=rf"backward of {op.__name__} returned {count} gradient\(s\) for 2 input\(s\)"):
        loss.backward()


def test_python_op_returning_a_grad_of_the_wrong_shape_raises_value_error_naming_op_and_shapes():
    x = vg.TensorNode(np.ones((2, 3)))
    loss = vg.Sum.do_forward(RowSumWithFlatGrad.do_forward(x))
    with pytest.raises(ValueError, match=r"backward of RowSumWithFlatGrad returned a gradient of shape \(2,\) "
                                         r"for input 0 of shape \(2, 3\)"):
        loss.backward()


@pytest.mark.parametrize("constant, type_name", [(np.ones(2), "ndarray"), (2.0, "float"), ([1.0, 2.0], "list")])
def test_python_op_rejects_a_positional_input_that_is_not_a_node(constant, type_name):
    x = vg.TensorNode(np.ones(2))
    with pytest.raises(TypeError, match=rf"PythonMul: all inputs must be TensorNodes; input 1 is {type_name}"):
        PythonMul.do_forward(x, constant)


# ---- torch-style custom functions (vg.Function) ----

class ScaledProduct(vg.Function):
    """k * a * b for nodes a, b and a number k."""

    @staticmethod
    def forward(ctx, a, k, b):
        ctx.save_for_backward(a, b)
        ctx.k = k
        return k * a * b

    @staticmethod
    def backward(ctx, go):
        a, b = ctx.saved_tensors
        return go * ctx.k * b, None, go * ctx.k * a


class SumAndProduct(vg.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a + b, a * b

    @staticmethod
    def backward(ctx, g_sum, g_product):
        a, b = ctx.saved_tensors
        return g_sum + g_product * b, g_sum + g_product * a


class ForgetsTheConstant(vg.Function):
    """Its backward gives one gradient although forward took two arguments."""

    @staticmethod
    def forward(ctx, a, k):
        return a * k

    @staticmethod
    def backward(ctx, go):
        return go


class FunctionSavesItsOutput(vg.Function):
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, go):
        (y,) = ctx.saved_tensors
        return go * (1.0 - y ** 2)


def test_function_apply_records_the_function_class_as_the_op_with_node_arguments_as_inputs():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    c = ScaledProduct.apply(a, 2.0, b)
    np.testing.assert_array_equal(c.value, [6.0, 16.0])
    assert c.source.op is ScaledProduct
    assert list(c.source.inputs) == [a, b]


def test_function_context_gives_back_saved_arrays_and_tells_which_arguments_need_grad():
    a = vg.TensorNode(np.array([1.0, 2.0]))
    b = vg.TensorNode(np.array([3.0, 4.0]), requires_grad=False)
    c = ScaledProduct.apply(a, 2.0, b)
    ctx = c.source.context
    assert ctx.needs_input_grad == (True, False, False)
    saved_a, saved_b = ctx.saved_tensors
    np.testing.assert_array_equal(saved_a, [1.0, 2.0])
    np.testing.assert_array_equal(saved_b, [3.0, 4.0])
    assert ctx.k == 2.0
    both = ScaledProduct.apply(a, 2.0, vg.TensorNode(np.ones(2)))
    assert both.source.context.needs_input_grad == (True, False, True)


def test_function_backward_grads_reach_node_arguments_and_constants_pass_through():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    vg.Sum.do_forward(ScaledProduct.apply(a, 2.0, b)).backward()
    np.testing.assert_array_equal(a.grad, [6.0, 8.0])
    np.testing.assert_array_equal(b.grad, [2.0, 4.0])


def test_function_between_native_ops_passes_gradcheck():
    a, b = vg.TensorNode(randn(3, seed=1)), vg.TensorNode(randn(3, seed=2))
    report = vg.gradcheck(lambda a, b: vg.tanh(ScaledProduct.apply(vg.sigmoid(a), -1.5, b * b)), [a, b])
    assert report


def test_function_with_two_outputs_returns_a_list_and_combines_both_grads():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    outputs = SumAndProduct.apply(a, b)
    assert isinstance(outputs, list) and len(outputs) == 2
    total, product = outputs
    assert total.source is product.source and total.source.op is SumAndProduct
    np.testing.assert_array_equal(total.value, [4.0, 6.0])
    np.testing.assert_array_equal(product.value, [3.0, 8.0])
    vg.Sum.do_forward(total * 10.0 + product).backward()
    np.testing.assert_array_equal(a.grad, [13.0, 14.0])
    np.testing.assert_array_equal(b.grad, [11.0, 12.0])


def test_function_with_one_of_two_outputs_used_sees_zeros_for_the_other():
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    _, product = SumAndProduct.apply(a, b)
    vg.Sum.do_forward(product).backward()
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


def test_function_backward_with_one_grad_per_node_rather_than_per_argument_raises_value_error_naming_it():
    a = vg.TensorNode(np.array([1.0, 2.0]))
    loss = vg.Sum.do_forward(ForgetsTheConstant.apply(a, 2.0))
    with pytest.raises(ValueError, match=r"ForgetsTheConstant\.backward returned 1 gradient\(s\) "
                                         r"for the 2 argument\(s\) of forward"):
        loss.backward()


def test_function_applied_to_constants_only_records_nothing():
    c = ScaledProduct.apply(np.array([1.0, 2.0]), 2.0, np.array([3.0, 4.0]))
    np.testing.assert_array_equal(c.value, [6.0, 16.0])
    assert c.source is None and not c.requires_grad


# ---- gradcheck and numerical_grad ----

class TanhWithWrongBackward(vg.Op):
    """tanh whose backward forgets to square: g * (1 - y) instead of g * (1 - y^2)."""

    @staticmethod
    def forward(context, x):
        context["y"] = np.tanh(x)
        return context["y"]

    @staticmethod
    def backward(context, go):
        return go * (1.0 - context["y"])


ROW = r"^{name}\s+\d\.\d\de[-+]\d\d\s+\d\.\d\de[-+]\d\d\s+{verdict}$"


def test_gradcheck_passes_a_correct_function_with_a_truthy_report_tabulating_each_named_input():
    W1 = vg.TensorNode(randn(3, 2, seed=1), name="W1")
    b1 = vg.TensorNode(randn(2, seed=2), name="b1")
    x = vg.TensorNode(randn(4, 3, seed=3))
    report = vg.gradcheck(lambda W1, b1, x: vg.Sum.do_forward(vg.tanh(x @ W1 + b1)), [W1, b1, x])
    assert report and report.ok
    lines = str(report).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["input", "max", "abs", "error", "max", "rel", "error"]
    for name in ("W1", "b1", "input 2"):
        match = re.search(ROW.format(name=name, verdict="ok"), str(report), re.M)
        assert match, str(report)
    assert all(max_abs < 1e-8 for _, max_abs, _, _ in report.rows)


def test_gradcheck_names_rows_by_the_names_argument_over_node_names():
    x = vg.TensorNode(randn(3, seed=1), name="ignored")
    report = vg.gradcheck(lambda x: vg.Sum.do_forward(vg.exp(x)), [x], names=["weights"])
    assert re.search(ROW.format(name="weights", verdict="ok"), str(report), re.M), str(report)
    assert "ignored" not in str(report)


def test_gradcheck_raises_an_assertion_error_with_the_mismatch_table_for_a_wrong_backward():
    x = vg.TensorNode(randn(2, 3, seed=1), name="x")
    w = vg.TensorNode(randn(2, 3, seed=2), name="w")
    with pytest.raises(vg.GradcheckError) as info:
        vg.gradcheck(lambda x, w: vg.Sum.do_forward(TanhWithWrongBackward.do_forward(x) * w), [x, w])
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert re.search(ROW.format(name="x", verdict="MISMATCH"), message, re.M), message
    assert re.search(ROW.format(name="w", verdict="ok"), message, re.M), message


def test_gradcheck_without_raising_returns_a_falsy_report_with_both_gradients():
    x = vg.TensorNode(np.array([0.5, -1.0, 2.0]))
    report = vg.gradcheck(lambda x: vg.Sum.do_forward(TanhWithWrongBackward.do_forward(x)), [x],
                          raise_exception=False)
    assert not report and not report.ok
    assert "MISMATCH" in str(report)
    y = np.tanh(x.value)
    np.testing.assert_allclose(report.analytic[0], 1.0 - y)
    np.testing.assert_allclose(report.numerical[0], 1.0 - y ** 2, rtol=1e-7)


def test_gradcheck_handles_non_scalar_outputs_and_catches_a_wrong_backward_there_too():
    x = vg.TensorNode(randn(3, 4, seed=1))
    assert vg.gradcheck(lambda x: vg.tanh(x) * 2.0, [x])
    assert vg.gradcheck(lambda x: ProductAndDifference.do_forward(x, x * x)[1], [x])
    assert not vg.gradcheck(lambda x: TanhWithWrongBackward.do_forward(x) * 2.0, [x], raise_exception=False)


def test_gradcheck_accepts_plain_arrays_as_inputs():
    assert vg.gradcheck(lambda x: vg.Sum.do_forward(x * x), [np.array([1.0, 2.0])])


def test_gradcheck_rejects_a_float32_input_with_type_error():
    x = vg.TensorNode(np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="input 0 is float32; finite differences need float64"):
        vg.gradcheck(lambda x: vg.Sum.do_forward(x), [x])


def test_gradcheck_rejects_a_node_made_by_an_op_with_value_error():
    x = vg.TensorNode(np.ones(3)) * 2.0
    with pytest.raises(ValueError, match="input 0 was made by an op"):
        vg.gradcheck(lambda x: vg.Sum.do_forward(x), [x])


def test_gradcheck_rejects_a_leaf_that_does_not_require_grad_with_value_error():
    x = vg.TensorNode(np.ones(3), requires_grad=False)
    with pytest.raises(ValueError, match="does not require grad"):
        vg.gradcheck(lambda x: vg.Sum.do_forward(x), [x])


@pytest.mark.parametrize("fn, analytic", [
    (lambda x, w: vg.Sum.do_forward(x * x * w), lambda x, w: (2.0 * x * w, x * x)),
    (lambda x, w: vg.Sum.do_forward(vg.exp(x) + w ** 3), lambda x, w: (np.exp(x), 3.0 * w ** 2)),
    (lambda x, w: vg.Sum.do_forward(vg.tanh(x @ w)),
     lambda x, w: ((1 - np.tanh(x @ w) ** 2) @ w.T, x.T @ (1 - np.tanh(x @ w) ** 2))),
], ids=["x2w", "exp_plus_cube", "tanh_matmul"])
def test_numerical_grad_matches_closed_form_gradients(fn, analytic):
    x, w = randn(3, 3, seed=1), randn(3, 3, seed=2)
    numerical = vg.numerical_grad(fn, [vg.TensorNode(x.copy()), vg.TensorNode(w.copy())])
    for got, expected in zip(numerical, analytic(x, w)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_numerical_grad_leaves_the_input_values_as_they_were():
    x = vg.TensorNode(randn(2, 3, seed=1))
    before = x.value.copy()
    vg.numerical_grad(lambda x: vg.Sum.do_forward(vg.exp(x)), [x])
    np.testing.assert_array_equal(x.value, before)


def one_hidden_layer_tanh_network(hidden, seed):
    """Leaves W1 (h, 3), b1 (h,), W2 (1, h), b2 (1,) and the MSE loss function of them on fixed data."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    params = [vg.TensorNode(rng.standard_normal((hidden, 3)) / np.sqrt(3), name="W1"),
              vg.TensorNode(rng.standard_normal(hidden) * 0.1, name="b1"),
              vg.TensorNode(rng.standard_normal((1, hidden)) / np.sqrt(hidden), name="W2"),
              vg.TensorNode(rng.standard_normal(1) * 0.1, name="b2")]

    def loss(W1, b1, W2, b2):
        return vg.mse_loss(vg.tanh(X @ W1.T + b1) @ W2.T + b2, y)

    return params, loss


def analytic_and_finite_difference_errors(params, loss, eps):
    loss(*params).backward()
    analytic = [p.grad.copy() for p in params]
    for p in params:
        p.grad = None
    numerical = vg.numerical_grad(loss, params, eps)
    return [float(np.abs(a - n).max()) for a, n in zip(analytic, numerical)]


@pytest.mark.parametrize("hidden", [5, 10, 100])
def test_tanh_network_backprop_agrees_with_finite_differences_to_1e9_at_eps_1e5(hidden):
    params, loss = one_hidden_layer_tanh_network(hidden, seed=hidden)
    errors = analytic_and_finite_difference_errors(params, loss, eps=1e-5)
    assert max(errors) < 1e-9, dict(zip(["W1", "b1", "W2", "b2"], errors))
    report = vg.gradcheck(loss, params, eps=1e-5)
    assert [name for name, *_ in report.rows] == ["W1", "b1", "W2", "b2"]


@pytest.mark.parametrize("hidden", [5, 10, 100])
def test_tanh_network_finite_difference_error_shrinks_as_eps_squared(hidden):
    params, loss = one_hidden_layer_tanh_network(hidden, seed=hidden)
    coarse = max(analytic_and_finite_difference_errors(params, loss, eps=1e-2))
    fine = max(analytic_and_finite_difference_errors(params, loss, eps=1e-3))
    # eps / 10 divides an O(eps^2) error by 100 (an O(eps) one only by 10).
    assert 30.0 < coarse / fine < 300.0, (coarse, fine)


# ---- grad mode ----

def test_no_grad_records_nothing_for_native_python_and_function_ops():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    with vg.no_grad():
        assert not vg.is_grad_enabled()
        results = [x * w, vg.tanh(x), Cube.do_forward(x), ScaledProduct.apply(x, 2.0, w),
                   *ProductAndDifference.do_forward(x, w)]
    assert vg.is_grad_enabled()
    for y in results:
        assert y.source is None and not y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(results[0].value, [3.0, 8.0])


def test_no_grad_nests_and_restores_the_mode_of_the_enclosing_block():
    with vg.no_grad():
        with vg.no_grad():
            assert not vg.is_grad_enabled()
        assert not vg.is_grad_enabled()
        assert (vg.TensorNode(np.ones(2)) * 2.0).source is None
    assert vg.is_grad_enabled()
    assert (vg.TensorNode(np.ones(2)) * 2.0).source is not None


def test_no_grad_restores_grad_mode_when_its_block_raises():
    with pytest.raises(KeyError):
        with vg.no_grad():
            raise KeyError("inside")
    assert vg.is_grad_enabled()


def test_no_grad_as_a_decorator_turns_recording_off_inside_the_call_only():
    @vg.no_grad()
    def predict(x):
        """Forward without a tape."""
        assert not vg.is_grad_enabled()
        return vg.tanh(x) * 2.0

    x = vg.TensorNode(np.array([0.0, 1.0]))
    y = predict(x)
    assert y.source is None and not y.requires_grad
    np.testing.assert_allclose(y.value, 2.0 * np.tanh([0.0, 1.0]))
    assert vg.is_grad_enabled()
    assert predict.__name__ == "predict" and predict.__doc__ == "Forward without a tape."


def test_grad_mode_is_per_thread():
    seen = {}

    def worker():
        seen["enabled"] = vg.is_grad_enabled()
        seen["source"] = (vg.TensorNode(np.ones(2)) * 2.0).source

    with vg.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert not vg.is_grad_enabled()
    assert seen["enabled"] and seen["source"] is not None


def test_detach_shares_the_value_and_is_a_leaf_without_grad():
    x = vg.TensorNode(np.array([1.0, 2.0]), name="x")
    y = x * 3.0
    for node in (x, y):
        d = node.detach()
        assert np.shares_memory(d.value, node.value)
        assert d.source is None and d.is_leaf and not d.requires_grad
    assert x.detach().name == "x"


def test_gradient_does_not_flow_through_a_detached_copy():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    vg.Sum.do_forward(x * x.detach()).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])  # not 2x


def test_an_op_whose_inputs_do_not_require_grad_records_nothing():
    a = vg.TensorNode(np.array([1.0, 2.0]), requires_grad=False)
    b = vg.TensorNode(np.array([3.0, 4.0]), requires_grad=False)
    for y in (a * b, vg.tanh(a), Cube.do_forward(a), ScaledProduct.apply(a, 2.0, b)):
        assert y.source is None and not y.requires_grad


def test_only_the_leaves_that_require_grad_receive_a_gradient():
    w = vg.TensorNode(np.array([1.0, 2.0]))
    c = vg.TensorNode(np.array([3.0, 4.0]), requires_grad=False)
    y = w * c
    assert y.source is not None and y.requires_grad
    vg.Sum.do_forward(Cube.do_forward(y) + c).backward()
    np.testing.assert_array_equal(w.grad, 3.0 * (w.value * c.value) ** 2 * c.value)
    np.testing.assert_array_equal(c.grad, [0.0, 0.0])


# ---- gradient storage ----

def test_nodes_python_holds_keep_their_grad_after_backward_as_in_vugrad():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    hidden = x * 3.0
    loss = vg.Sum.do_forward(hidden * hidden)
    loss.backward()
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(hidden.grad, [6.0, 12.0])
        assert loss.grad == 1.0


def test_a_node_reached_only_through_the_graph_after_backward_has_no_grad_and_warns():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    loss = vg.Sum.do_forward(vg.square(x * 3.0))
    loss.backward()
    hidden = loss.source.inputs[0].source.inputs[0]  # nothing held it while backward ran
    with pytest.warns(UserWarning, match="retain_grad"):
        grad = hidden.grad
    np.testing.assert_array_equal(grad, [0.0, 0.0])
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])


def test_a_leaf_only_the_graph_holds_gets_no_gradient_computed():
    w = vg.TensorNode(np.ones((3, 2)))
    loss = vg.Sum.do_forward(vg.TensorNode(np.arange(6.0).reshape(2, 3)) @ w)
    loss.backward()
    batch = loss.source.inputs[0].source.inputs[0]
    assert batch.is_leaf and batch.requires_grad and not batch._has_grad  # the product g @ W.T was skipped
    np.testing.assert_array_equal(w.grad, [[3.0, 3.0], [5.0, 5.0], [7.0, 7.0]])


def test_retain_grad_before_backward_keeps_an_intermediate_grad_without_warning():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    hidden = x * 3.0
    hidden.retain_grad()
    vg.Sum.do_forward(hidden * hidden).backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(hidden.grad, [6.0, 12.0])
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])


def test_intermediate_grad_read_before_backward_is_zeros_without_warning_and_does_not_disturb_backward():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    hidden = x * 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(hidden.grad, [0.0, 0.0])
    vg.Sum.do_forward(hidden * hidden).backward()
    np.testing.assert_array_equal(x.grad, [18.0, 36.0])


def test_is_leaf_is_true_for_created_detached_and_untaped_nodes_only():
    x = vg.TensorNode(np.ones(2))
    y = x * 2.0
    with vg.no_grad():
        z = x * 2.0
    assert x.is_leaf and not y.is_leaf and z.is_leaf and y.detach().is_leaf
    assert vg.TensorNode(np.ones(2), requires_grad=False).is_leaf


# ---- freed graph, retain_graph, zero_grad, clear ----

def test_second_backward_through_a_freed_graph_raises_runtime_error_and_changes_no_grad():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    loss = vg.Sum.do_forward(vg.tanh(x * w))
    loss.backward()
    x_grad, w_grad = x.grad.copy(), w.grad.copy()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    np.testing.assert_array_equal(x.grad, x_grad)
    np.testing.assert_array_equal(w.grad, w_grad)


def test_backward_through_a_subgraph_freed_by_another_loss_raises_runtime_error():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    shared = x * x
    vg.Sum.do_forward(shared).backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        vg.Sum.do_forward(shared * 2.0).backward()


def test_retain_graph_keeps_the_graph_so_a_second_backward_accumulates_into_leaf_grads():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = Cube.do_forward(x)
    loss = vg.Sum.do_forward(y * 2.0)
    loss.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad, [6.0, 24.0])
    assert "x" in y.source.context
    loss.backward()
    np.testing.assert_array_equal(x.grad, [12.0, 48.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_zero_grad_zeros_every_grad_below_so_the_next_backward_starts_fresh():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    hidden = x * w
    hidden.retain_grad()
    loss = vg.Sum.do_forward(Cube.do_forward(hidden))
    loss.backward(retain_graph=True)
    first = [n.grad.copy() for n in (x, w, hidden)]
    loss.backward(retain_graph=True)
    loss.zero_grad()
    for node in (x, w, hidden):
        assert not node.grad.any()
    loss.backward()
    for node, expected in zip((x, w, hidden), first):
        np.testing.assert_array_equal(node.grad, expected)


def test_clear_sets_sources_below_to_none_and_keeps_values_and_leaf_grads():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    hidden = Cube.do_forward(x * 2.0)
    loss = vg.Sum.do_forward(hidden)
    loss.backward()
    grad = x.grad.copy()
    loss.clear()
    assert loss.source is None and hidden.source is None
    np.testing.assert_array_equal(hidden.value, [8.0, 64.0])
    np.testing.assert_array_equal(x.grad, grad)


# ---- in-place safety and version counters ----

def test_value_of_a_node_made_by_an_op_is_read_only():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    for y in (x * 2.0, Cube.do_forward(x), ScaledProduct.apply(x, 2.0, x)):
        with pytest.raises(ValueError, match="read-only"):
            y.value[0] = 5.0
    np.testing.assert_array_equal((x * 2.0).value, [2.0, 4.0])


def test_value_of_a_leaf_is_writable_in_place():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    x.value[0] = 5.0
    np.testing.assert_array_equal(x.value, [5.0, 2.0])


def test_sgd_update_through_value_changes_the_leaf_in_place_and_bumps_its_version():
    p = vg.TensorNode(np.array([1.0, 2.0]))
    buffer = p.value
    vg.Sum.do_forward(p * p).backward()
    version = p._version
    p.value -= 0.25 * p.grad
    assert p._version == version + 1
    assert np.shares_memory(p.value, buffer)
    np.testing.assert_array_equal(p.value, [0.5, 1.0])


INPLACE = [
    ("+=", operator.iadd, np.add),
    ("-=", operator.isub, np.subtract),
    ("*=", operator.imul, np.multiply),
    ("/=", operator.itruediv, np.divide),
]
INPLACE_IDS = [symbol for symbol, *_ in INPLACE]


@pytest.mark.parametrize("symbol, inplace, reference", INPLACE, ids=INPLACE_IDS)
def test_inplace_operator_on_a_leaf_without_grad_writes_into_its_buffer_and_bumps_its_version(symbol, inplace, reference):
    x = vg.TensorNode(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=False)
    buffer, version = x.value, x._version
    result = inplace(x, vg.TensorNode(np.array([2.0, 4.0]), requires_grad=False))
    assert result is x and x.is_leaf
    np.testing.assert_array_equal(x.value, reference([[1.0, 2.0], [3.0, 4.0]], [2.0, 4.0]))
    assert np.shares_memory(x.value, buffer)
    assert x._version == version + 1


@pytest.mark.parametrize("symbol, inplace, reference", INPLACE, ids=INPLACE_IDS)
def test_inplace_operator_on_a_leaf_requiring_grad_works_inside_no_grad(symbol, inplace, reference):
    w = vg.TensorNode(np.array([1.0, 2.0]))
    buffer, version = w.value, w._version
    with vg.no_grad():
        result = inplace(w, 2.0)
    assert result is w and w.requires_grad and w.source is None
    np.testing.assert_array_equal(w.value, reference([1.0, 2.0], 2.0))
    assert np.shares_memory(w.value, buffer) and w._version == version + 1


@pytest.mark.parametrize("symbol, inplace, reference", INPLACE, ids=INPLACE_IDS)
def test_inplace_operator_on_a_leaf_requiring_grad_outside_no_grad_raises_and_leaves_it_alone(symbol, inplace, reference):
    w = vg.TensorNode(np.array([1.0, 2.0]))
    version = w._version
    with pytest.raises(RuntimeError, match=re.escape(f"in-place {symbol} on a leaf node that requires grad")):
        inplace(w, 2.0)
    np.testing.assert_array_equal(w.value, [1.0, 2.0])
    assert w._version == version


@pytest.mark.parametrize("symbol, inplace, reference", INPLACE, ids=INPLACE_IDS)
def test_inplace_operator_on_a_node_made_by_an_op_makes_a_new_node_with_correct_grads(symbol, inplace, reference):
    a, b = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 5.0]))
    hidden = a * 2.0
    original = hidden
    hidden = inplace(hidden, b)
    assert hidden is not original and hidden.source.inputs[0] is original
    np.testing.assert_array_equal(original.value, [2.0, 4.0])
    np.testing.assert_allclose(hidden.value, reference([2.0, 4.0], [3.0, 5.0]))
    vg.Sum.do_forward(hidden).backward()
    expected = numeric_grads(lambda n: vg.Sum.do_forward(inplace(n[0] * 2.0, n[1])), [a.value, b.value])
    np.testing.assert_allclose(a.grad, expected[0], rtol=1e-6)
    np.testing.assert_allclose(b.grad, expected[1], rtol=1e-6)


def test_inplace_operator_whose_result_does_not_fit_the_leaf_raises_value_error():
    x = vg.TensorNode(np.ones(3), requires_grad=False)
    with pytest.raises(ValueError, match=r"result of shape \(2, 3\) does not fit a node of shape \(3,\)"):
        x += np.ones((2, 3))
    np.testing.assert_array_equal(x.value, np.ones(3))


def test_inplace_operator_with_an_operand_that_requires_grad_makes_a_graph_node_so_its_gradient_flows():
    x = vg.TensorNode(np.array([1.0, 2.0]), requires_grad=False)
    w = vg.TensorNode(np.array([3.0, 4.0]))
    original = x
    x += w
    assert x is not original and x.source is not None
    np.testing.assert_array_equal(original.value, [1.0, 2.0])
    vg.Sum.do_forward(x * x).backward()
    np.testing.assert_array_equal(w.grad, 2 * np.array([4.0, 6.0]))


def test_inplace_operator_keeps_a_float32_leaf_float32():
    x = vg.TensorNode(np.array([1.0, 2.0], dtype=np.float32), requires_grad=False)
    x += vg.TensorNode(np.array([0.5, 0.5]), requires_grad=False)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.value, np.array([1.5, 2.5], dtype=np.float32))


def test_backward_after_inplace_change_of_a_saved_input_under_no_grad_names_the_op_and_versions():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    loss = vg.Sum.do_forward(x * w)
    with vg.no_grad():
        w += 1.0
    with pytest.raises(RuntimeError, match=r"backward of multiply: its input 1 of shape \(2,\) was modified in place "
                                           r"after the forward \(version 0 then, 1 now\)"):
        loss.backward()


def test_backward_after_an_sgd_style_update_of_a_saved_input_names_the_op_and_versions():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    w.value -= 1.0
    loss = vg.Sum.do_forward(x * w)
    w.value -= 1.0
    with pytest.raises(RuntimeError, match=r"backward of multiply: .*version 1 then, 2 now"):
        loss.backward()


def test_backward_after_inplace_change_of_a_constant_the_op_saved_raises():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    c = vg.TensorNode(np.array([3.0, 4.0]), requires_grad=False)
    loss = vg.Sum.do_forward(x * c)
    c *= 2.0  # allowed: c needs no grad, but the product saved its old value
    with pytest.raises(RuntimeError, match="backward of multiply: its input 1"):
        loss.backward()


def test_backward_after_inplace_change_of_a_saved_output_through_a_detached_copy_names_the_op():
    x = vg.TensorNode(np.array([0.0, 1.0]))
    y = vg.exp(x)
    d = y.detach()
    d += 1.0
    with pytest.raises(RuntimeError, match=r"backward of exp: its output 0 .*version 0 then, 1 now"):
        vg.Sum.do_forward(y).backward()


def test_backward_after_inplace_change_of_a_python_op_input_names_the_python_op():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    loss = vg.Sum.do_forward(PythonMul.do_forward(x, w))
    with vg.no_grad():
        w -= 1.0
    with pytest.raises(RuntimeError, match=r"backward of PythonMul: its input 1 .*version 0 then, 1 now"):
        loss.backward()


@pytest.mark.parametrize("op", [SavesItsOutput.do_forward, FunctionSavesItsOutput.apply],
                         ids=["Op", "Function"])
def test_backward_after_inplace_change_of_a_python_op_output_it_saved_raises_instead_of_a_wrong_grad(op):
    # The context keeps the array the engine adopted as the output's buffer; writing through a
    # detached copy changes what backward reads, as for the native exp above.
    x = vg.TensorNode(np.array([0.5, 1.0]))
    y = op(x)
    d = y.detach()
    d += 1.0
    with pytest.raises(RuntimeError, match="modified in place"):
        vg.Sum.do_forward(y).backward()


def test_op_that_saves_nothing_does_not_complain_about_an_inplace_change_of_its_input():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    loss = vg.Sum.do_forward(x + w)
    with vg.no_grad():
        w += 1.0
    loss.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    np.testing.assert_array_equal(w.grad, [1.0, 1.0])


def test_inplace_change_after_backward_is_fine_and_the_next_step_uses_the_new_value():
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    vg.Sum.do_forward(x * w).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])
    with vg.no_grad():
        w += 1.0
    x.grad = None
    vg.Sum.do_forward(x * w).backward()
    np.testing.assert_array_equal(x.grad, [4.0, 5.0])


@pytest.mark.parametrize("op", [PythonMul.do_forward, operator.mul], ids=["python", "native"])
def test_assigning_a_new_array_to_a_saved_leaf_is_not_an_inplace_change(op):
    # The op kept the old array, so its gradient is that of the forward it ran.
    x, w = vg.TensorNode(np.array([1.0, 2.0])), vg.TensorNode(np.array([3.0, 4.0]))
    w.value -= 1.0
    loss = vg.Sum.do_forward(op(x, w))
    w.value = np.array([10.0, 10.0])
    loss.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


@pytest.mark.parametrize("make_view", [
    lambda b: vg.Squeeze.do_forward(b, dim=0),
    lambda b: vg.Unsqueeze.do_forward(b, dim=0),
    lambda b: b.reshape(3),
], ids=["squeeze", "unsqueeze", "reshape"])
def test_view_shares_the_version_counter_of_its_base(make_view):
    b = vg.TensorNode(np.array([[1.0, 2.0, 3.0]]))
    view = make_view(b)
    assert np.shares_memory(view.value, b.value)
    loss = vg.Sum.do_forward(view * view)
    with vg.no_grad():
        b += 1.0
    assert view._version == b._version == 1
    with pytest.raises(RuntimeError, match="backward of multiply: its input 0"):
        loss.backward()


def test_inplace_change_through_an_untaped_view_bumps_the_base_version():
    b = vg.TensorNode(np.array([[1.0, 2.0, 3.0]]))
    w = vg.TensorNode(np.array([[2.0, 2.0, 2.0]]))
    loss = vg.Sum.do_forward(b * w)
    with vg.no_grad():
        view = vg.Squeeze.do_forward(w, dim=0)
    assert view.is_leaf and not view.requires_grad
    view *= 2.0
    np.testing.assert_array_equal(w.value, [[4.0, 4.0, 4.0]])
    assert w._version == 1
    with pytest.raises(RuntimeError, match="backward of multiply: its input 1"):
        loss.backward()


# ---- memory ----

def resident_megabytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    pytest.skip("no VmRSS in /proc/self/status")


@pytest.mark.parametrize("reset", ["grad_none", "zero_grad"])
@skip_if_sanitized
def test_ten_thousand_training_steps_keep_process_memory_flat(reset):
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc/self/status")
    rng = np.random.default_rng(0)
    np.random.seed(0)  # vg.Linear draws its weights from numpy's global generator
    X = rng.standard_normal((32, 2))
    targets = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    first, second = vg.Linear(2, 16), vg.Linear(16, 2)
    params = first.parameters() + second.parameters()

    def step(lr=0.1):
        loss = vg.cross_entropy(second(vg.tanh(first(vg.TensorNode(X, requires_grad=False)))), targets)
        loss.backward()
        for p in params:
            p.value -= lr * p.grad
        if reset == "grad_none":
            for p in params:
                p.grad = None
        else:
            loss.zero_grad()
        return loss.item()

    initial = step()
    for _ in range(999):
        step()
    warm = resident_megabytes()
    for _ in range(9000):
        final = step()
    growth = resident_megabytes() - warm
    assert growth < 30.0, f"resident memory grew by {growth:.1f} MB over 9000 steps"
    assert final < 0.5 * initial  # the steps did train the network


def test_backward_releases_what_python_and_native_ops_saved_unless_retain_graph():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    python = Cube.do_forward(x)
    native = python * x
    assert "x" in python.source.context and len(native.source.context["inputs"]) == 2
    vg.Sum.do_forward(native).backward()
    assert python.source.context == {}
    assert native.source.context["inputs"] == [] and native.source.context["outputs"] == []


# ---- lab: gradient descent on f(x1, x2) = (x1 - 6)^2 + x2^2 - x1 x2 ----

class LabOp(vg.Op):
    @staticmethod
    def forward(context, x1, x2):
        context["x1"], context["x2"] = x1, x2
        return (x1 - 6.0) ** 2 + x2 ** 2 - x1 * x2

    @staticmethod
    def backward(context, go):
        x1, x2 = context["x1"], context["x2"]
        return go * (2.0 * (x1 - 6.0) - x2), go * (2.0 * x2 - x1)


class LabFunction(vg.Function):
    @staticmethod
    def forward(ctx, x1, x2):
        ctx.save_for_backward(x1, x2)
        return (x1 - 6.0) ** 2 + x2 ** 2 - x1 * x2

    @staticmethod
    def backward(ctx, go):
        x1, x2 = ctx.saved_tensors
        return go * (2.0 * (x1 - 6.0) - x2), go * (2.0 * x2 - x1)


LAB = [LabOp.do_forward, LabFunction.apply]
LAB_IDS = ["Op", "Function"]


@pytest.mark.parametrize("f", LAB, ids=LAB_IDS)
def test_lab_function_is_zero_with_gradient_minus_6_6_at_6_6(f):
    x1, x2 = vg.TensorNode(np.array(6.0)), vg.TensorNode(np.array(6.0))
    y = f(x1, x2)
    assert y.item() == 0.0
    y.backward()
    assert x1.grad == -6.0 and x2.grad == 6.0


@pytest.mark.parametrize("f", LAB, ids=LAB_IDS)
def test_lab_function_backward_passes_gradcheck(f):
    assert vg.gradcheck(f, [np.array(2.5), np.array(-1.5)])


@pytest.mark.parametrize("f", LAB, ids=LAB_IDS)
def test_lab_gradient_descent_steps_of_a_half_a_third_and_a_quarter_reach_8_4_and_stay(f):
    x1, x2 = vg.TensorNode(np.array(6.0)), vg.TensorNode(np.array(6.0))
    path = []
    for lr in (1 / 2, 1 / 3, 1 / 4):
        f(x1, x2).backward()
        for p in (x1, x2):
            p.value -= lr * p.grad
            p.grad = None
        path.append((x1.item(), x2.item()))
    assert path == [(9.0, 3.0), (8.0, 4.0), (8.0, 4.0)]
    f(x1, x2).backward()
    assert x1.grad == 0.0 and x2.grad == 0.0


# ---- higher-order gradients: not supported ----

def test_gradients_are_plain_arrays_and_backward_has_no_create_graph():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    loss = vg.Sum.do_forward(Cube.do_forward(x))
    with pytest.raises(TypeError):
        loss.backward(create_graph=True)
    loss.backward()
    assert type(x.grad) is np.ndarray
    np.testing.assert_array_equal(x.grad, [3.0, 12.0])


# ---- anomaly mode ----

def test_detect_anomaly_makes_backward_raise_at_the_first_op_with_a_nan_gradient_naming_it():
    x = vg.TensorNode(np.array([4.0, -1.0, 9.0]))
    with vg.detect_anomaly():
        loss = (vg.sqrt(x) * 3.0).sum()
        with pytest.raises(RuntimeError, match=r"detect_anomaly: backward of sqrt produced nan or inf .*input 0"):
            loss.backward()


def test_detect_anomaly_names_the_line_that_created_the_op():
    x = vg.TensorNode(np.array([0.0, 1.0]))
    with vg.detect_anomaly():
        loss = vg.log(x).sum()  # d/dx log(x) at 0 is inf
        with pytest.raises(RuntimeError, match=r"(?s)backward of log .*created at:.*test_autograd\.py.*vg\.log\(x\)"):
            loss.backward()


def test_without_anomaly_mode_a_nan_gradient_is_returned_as_numpy_would():
    x = vg.TensorNode(np.array([4.0, -1.0]))
    (vg.sqrt(x) * 3.0).sum().backward()
    assert np.isnan(x.grad[1]) and x.grad[0] == pytest.approx(0.75)


def test_anomaly_mode_is_restored_after_the_block_and_finite_graphs_pass():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    with vg.detect_anomaly():
        (x * x).sum().backward()
    assert not vg.core.is_grad_enabled() is False
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    y = vg.TensorNode(np.array([-1.0]))
    vg.sqrt(y).sum().backward()  # outside the block again: no error
    assert np.isnan(y.grad[0])
