"""vugrad's behaviours that its own test suite (tests/tests.py of dlvu/vugrad) relies on, in our words:
every node Python holds keeps its gradient after backward, vugrad's ops run on raw arrays with
plain-dict contexts (one op's backward on another's context included), and train_mlp.py's MLP
signature. ``python experiments/vugrad_suite.py PATH`` runs vugrad's real suite against tapegrad."""

import numpy as np
import pytest

import tapegrad as vg


def ident(x):
    return vg.Id.do_forward(x)


def test_a_diamond_of_identities_sums_both_paths_into_the_leaf():
    a = vg.TensorNode(np.array([1.0]))
    b = ident(a)
    d = ident(b) + ident(b)
    d.backward()
    assert a.grad[0] == 2.0


def test_a_double_diamond_gives_every_held_intermediate_its_gradient():
    a0 = vg.TensorNode(np.array([1.0]))
    a = ident(a0)
    b1, b2 = ident(a), ident(a)
    c = [ident(b1), ident(b1), ident(b2), ident(b2)]
    e = (c[0] + c[1]) + (c[2] + c[3])
    e.backward()
    assert a.grad[0] == 4.0 and b1.grad[0] == 2.0 and all(n.grad[0] == 1.0 for n in c) and a0.grad[0] == 4.0


def test_diamonds_in_sequence_give_each_held_node_the_sum_over_its_paths():
    a = vg.TensorNode(np.array([1.0]))
    b = ident(a)
    c1, c2 = ident(b), ident(b)
    e = ident(c1 + c2)
    f = e + a
    h = ident(f) + ident(f)
    h.backward()
    assert [f.grad[0], e.grad[0], c1.grad[0], b.grad[0], a.grad[0]] == [2.0, 2.0, 2.0, 4.0, 6.0]


def test_gradients_of_held_nodes_accumulate_until_zero_grad_as_in_vugrad():
    x = vg.TensorNode(np.array([1.0, 2.0]))
    y = x * 2.0
    loss = vg.Sum.do_forward(y)
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(y.grad, [2.0, 2.0])
    loss.zero_grad()
    np.testing.assert_array_equal(y.grad, [0.0, 0.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_rowmax_forward_then_backward_on_raw_arrays_puts_the_gradient_at_the_maxima():
    ctx = {}
    vg.RowMax.forward(ctx, np.array([[0.0, 1.0], [4.0, 5.0], [9.0, 0.0]]))
    np.testing.assert_array_equal(vg.RowMax.backward(ctx, np.array([0.1, 0.2, 0.3])),
                                  [[0.0, 0.1], [0.0, 0.2], [0.3, 0.0]])


def test_rowsum_backward_runs_on_the_context_rowmax_forward_filled():
    ctx = {}
    vg.RowMax.forward(ctx, np.array([[0.0, 1.0], [4.0, 0.0], [9.0, 0.0]]))
    grad = vg.RowSum.backward(ctx, np.arange(3.0) + 0.1)
    np.testing.assert_array_equal(grad, [[0.1, 0.1], [1.1, 1.1], [2.1, 2.1]])


def test_an_op_backward_on_a_context_of_an_op_with_another_arity_is_a_clear_error():
    ctx = {}
    vg.Sum.forward(ctx, np.ones((2, 2)))
    with pytest.raises(ValueError, match="expected 2 input"):
        vg.MatrixMultiply.backward(ctx, np.ones((2, 2)))


def test_the_mlp_of_vugrads_train_script_takes_input_and_output_sizes():
    mlp = vg.MLP(input_size=2, output_size=3)
    assert [p.shape for p in mlp.parameters()] == [(8, 2), (1, 8), (3, 8), (1, 3)]  # vugrad's w (out, in), b (1, out)
    out = mlp(vg.TensorNode(np.random.default_rng(0).standard_normal((5, 2))))
    np.testing.assert_allclose(np.exp(out.value).sum(axis=1), 1.0)  # log-softmax outputs
    assert out.shape == (5, 3)
    with pytest.raises(TypeError, match="give both input_size and output_size"):
        vg.MLP(input_size=3)


def test_finite_differences_agree_with_backprop_on_the_first_parameter_of_vugrads_mlp():
    (xtrain, ytrain), _, num_classes = vg.load_synth(num_train=100, num_val=10, seed=0)
    mlp = vg.MLP(input_size=xtrain.shape[1], output_size=num_classes)
    batch = vg.TensorNode(xtrain)
    parm = mlp.parameters()[0]
    loss0 = vg.logceloss(mlp(batch), ytrain)
    loss0.backward()
    eps = 1e-6
    parm.value[0, 0] += eps
    loss1 = vg.logceloss(mlp(batch), ytrain)
    parm.value[0, 0] -= 2 * eps
    loss2 = vg.logceloss(mlp(batch), ytrain)
    assert (loss1.item() - loss2.item()) / (2 * eps) == pytest.approx(parm.grad[0, 0], rel=1e-5, abs=1e-8)


def test_trace_prints_each_op_backward_visits_with_the_shapes_it_received_and_returned(capsys):
    a = vg.TensorNode(np.ones((2, 3)))
    w = vg.TensorNode(np.ones((3, 4)))
    loss = vg.Sum.do_forward(vg.sigmoid(a @ w) * 2.0)
    with vg.trace() as t:
        loss.backward()
    assert t.lines == ["1. sum: received (()), returned ((2, 4))",
                       "2. multiply: received ((2, 4)), returned ((2, 4), -)",
                       "3. sigmoid: received ((2, 4)), returned ((2, 4))",
                       "4. matmul: received ((2, 4)), returned ((2, 3), (3, 4))"]
    assert capsys.readouterr().out.splitlines() == t.lines


def test_without_trace_backward_prints_nothing(capsys):
    x = vg.TensorNode(np.ones(3))
    vg.Sum.do_forward(x * x).backward()
    assert capsys.readouterr().out == ""
