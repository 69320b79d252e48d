"""The PyTorch dialect's core: factories and dtypes, gradients as tensors, in-place changes recorded
on graphs with version checks, integer and boolean tensors, numpy interop, copies. Where torch is
installed, results are compared with it; vugrad's TensorNode must keep its own rules."""

import copy
import pickle

import numpy as np
import pytest

import tapegrad as tg

try:
    import torch
except ImportError:  # the comparisons below skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def test_factories_use_pytorchs_defaults():
    assert tg.tensor([1.0, 2.0]).dtype == tg.float32 and tg.tensor([1, 2]).dtype == tg.int64
    assert tg.tensor([True]).dtype == tg.bool and tg.tensor(np.zeros(2)).dtype == tg.float64
    assert tg.tensor([tg.tensor(1.5), np.float32(2.0)]).dtype == tg.float32
    for make in (tg.zeros, tg.ones, tg.rand, tg.randn, tg.empty):
        t = make(2, 3)
        assert t.shape == (2, 3) and t.dtype == tg.float32 and not t.requires_grad and t.grad is None
        assert make((2, 3)).shape == (2, 3)
    assert tg.arange(5).dtype == tg.int64 and tg.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tg.linspace(-2, 2, 5).tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert tg.zeros_like(tg.tensor([1, 2]), dtype=tg.float).dtype == tg.float32
    assert tg.tensor([1.0], dtype=tg.double).dtype == tg.float64 and isinstance(tg.ones(1), tg.Tensor)
    assert tg.tensor([1.0]).dialect == "pytorch" and tg.TensorNode(np.ones(1)).dialect == "vugrad"


def test_an_integer_tensor_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2]).requires_grad_()


def test_from_numpy_and_numpy_share_memory_both_ways():
    n = np.ones(3, dtype=np.float32)
    t = tg.from_numpy(n)
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0, 2.0, 2.0]
    t.add_(1)
    assert n.tolist() == [3.0, 3.0, 3.0] and t.numpy().tolist() == [3.0, 3.0, 3.0]
    t.numpy()[0] = 7
    assert t[0].item() == 7.0


def test_grad_is_none_until_backward_and_then_a_tensor_that_shares_the_gradient():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    assert w.grad is None and w.is_leaf and w.grad_fn is None
    loss = (w * w).sum()
    assert loss.grad_fn is not None and not loss.is_leaf
    loss.backward()
    assert w.grad.dialect == "pytorch" and w.grad.tolist() == [2.0, 4.0] and not w.grad.requires_grad
    w.grad.zero_()
    assert w.grad.tolist() == [0.0, 0.0]
    w.data.sub_(tg.tensor([1.0, 1.0]))
    assert w.tolist() == [0.0, 1.0] and w.grad_fn is None
    w.grad = None
    assert w.grad is None


def test_only_leaves_keep_gradients_unless_retain_grad():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y, z = x * 2, x * 3
    z.retain_grad()
    (y + z).sum().backward()
    with pytest.warns(UserWarning, match="retain_grad"):
        assert y.grad is None
    assert z.grad.tolist() == [1.0, 1.0] and x.grad.tolist() == [5.0, 5.0]


def test_vugrads_tensor_node_keeps_its_array_gradient():
    a = tg.TensorNode(np.ones((2, 2)))
    assert isinstance(a.grad, np.ndarray) and not a.grad.any() and a.requires_grad
    (a * 2).sum().backward()
    assert isinstance(a.grad, np.ndarray) and (a.grad == 2).all()


def test_backward_takes_a_gradient_and_refuses_what_pytorch_refuses():
    a = tg.tensor([2.0, 3.0], requires_grad=True)
    q = 3 * a ** 3
    q.backward(gradient=tg.tensor([1.0, 1.0]))
    assert a.grad.tolist() == [36.0, 81.0]
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (a * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor([1.0]).sum().backward()


def test_in_place_changes_on_plain_tensors_are_seen_by_aliases():
    t = tg.ones(2, 3)
    alias, view = t, t.numpy()
    t[:, 1] = 0
    t -= 0.5
    t.mul_(2).clamp_(min=0)
    assert alias is t and view.tolist() == [[1.0, 0.0, 1.0]] * 2
    t.fill_(3)
    t.copy_(tg.tensor([1.0, 2.0, 3.0]))
    assert t.tolist() == [[1.0, 2.0, 3.0]] * 2


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w -= 1
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w[0] = 5
    with tg.no_grad():
        w -= 1
        w[1] = 4
    assert w.tolist() == [0.0, 4.0] and w.is_leaf


def test_a_value_changed_after_the_op_that_saved_it_makes_backward_raise_with_the_versions():
    w = tg.tensor([0.5, 1.5], requires_grad=True)
    a = tg.tensor([1.0, 1.0])
    y = tg.exp(w)
    loss = ((y - a) ** 2).sum()
    before = id(y)
    y /= 2
    assert id(y) == before and y.grad_fn is not None
    with pytest.raises(RuntimeError, match=r"exp.*version 0 then, 1 now"):
        loss.backward()


@needs_torch
def test_recorded_in_place_ops_give_pytorchs_gradients():
    def run(lib, x0, v0):
        x = lib.tensor(x0, requires_grad=True)
        v = lib.tensor(v0, requires_grad=True)
        h = x * 2
        h += v.sum()
        h[0] = v * 3
        h[1, 1:] = 0
        h.mul_(2)
        h.sub_(v, alpha=0.5)
        loss = (h * h).sum()
        loss.backward()
        return [np.asarray(t.detach().numpy(), dtype=np.float64) for t in (loss, x.grad, v.grad)]

    rng = np.random.default_rng(0)
    x0, v0 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    for ours, theirs in zip(run(tg, x0, v0), run(torch, x0, v0)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)

    def overwrite_a_saved_product(lib):  # the product saved h; the write after it changes it
        x = lib.tensor(x0, requires_grad=True)
        h = x * 2
        y = h * h
        h[1, 1:] = 0
        y.sum().backward()

    for lib in (tg, torch):
        with pytest.raises(RuntimeError, match="version"):
            overwrite_a_saved_product(lib)


def test_setitem_on_a_graph_sends_gradients_to_the_kept_elements_and_the_value():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = tg.tensor(10.0, requires_grad=True)
    h = x * 1
    h[1] = v
    (h * tg.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 3.0] and v.grad.item() == 2.0


def test_vugrad_nodes_keep_making_a_new_node_for_augmented_assignment_on_a_graph():
    a = tg.TensorNode(np.ones(2))
    b = a * 2
    c = b
    b += 1
    assert b is not c and c.value.tolist() == [2.0, 2.0]


def test_integer_and_boolean_tensors_follow_pytorchs_rules():
    labels, predicted = tg.tensor([1, 2, 3, 1]), tg.tensor([1, 0, 3, 2])
    right = predicted == labels
    assert right.dtype == tg.bool and right.sum().item() == 2 and isinstance(right.sum().item(), int)
    assert (labels * 0.5).dtype == tg.float32 and (labels / 2).dtype == tg.float32
    assert (labels + 1).dtype == tg.int64 and (tg.ones(4) * labels).dtype == tg.float32
    classes = ("a", "b", "c", "d")
    assert [classes[label] for label in labels] == ["b", "c", "d", "b"]
    values, indices = tg.max(tg.tensor([[1.0, 5.0], [7.0, 2.0]]), 1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0] and indices.dtype == tg.int64
    x = tg.tensor([[1.0, -2.0], [3.0, -4.0]])
    assert x[x > 0].tolist() == [1.0, 3.0] and x[tg.tensor([1, 0])].tolist() == [[3.0, -4.0], [1.0, -2.0]]
    assert bool((x > 0).any()) and not bool((x > 0).all())


def test_one_element_tensors_work_as_python_numbers():
    t = tg.tensor([2.5])
    assert float(t) == 2.5 and int(t) == 2 and format(t, ".2f") == "2.50" and bool(t)
    assert max(t * 2, 0) is not None and float(max(t * 2, 0)) == 5.0
    a, b = tg.tensor([1.0, 2.0])
    assert (a.item(), b.item()) == (1.0, 2.0)
    with pytest.raises(TypeError, match="one-element"):
        float(tg.ones(2))


def test_numpy_and_matplotlib_see_values_not_object_arrays():
    t = tg.tensor([1.0, 2.0])
    assert np.asarray(t).dtype == np.float32
    assert np.asarray([tg.tensor(1.0), tg.tensor(2.0)]).dtype == np.float32
    r = np.float64(2.0) * t
    assert isinstance(r, tg.Tensor) and r.tolist() == [2.0, 4.0]
    assert repr(t) == "tensor([1., 2.])"
    assert repr(tg.tensor([0.5, 1.25], requires_grad=True) * 2) == "tensor([1.0000, 2.5000], grad_fn=<MultiplyBackward>)"


def test_dlpack_shares_memory_with_numpy():
    t = tg.ones(3)
    n = np.from_dlpack(t)
    n[0] = 5
    assert t[0].item() == 5.0
    back = tg.from_dlpack(np.arange(3.0))
    assert back.tolist() == [0.0, 1.0, 2.0]


def test_pickle_and_deepcopy_keep_value_dtype_dialect_and_requires_grad_but_not_the_graph():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = w * 2
    for copied in (pickle.loads(pickle.dumps(w)), copy.deepcopy(w)):
        assert copied.tolist() == [1.0, 2.0] and copied.requires_grad and copied.dialect == "pytorch"
        assert copied.dtype == tg.float32 and copied is not w
    z = pickle.loads(pickle.dumps(y))
    assert z.is_leaf and not z.requires_grad and z.tolist() == [2.0, 4.0]
    v = pickle.loads(pickle.dumps(tg.TensorNode(np.ones(2), name="v")))
    assert v.dialect == "vugrad" and v.name == "v" and v.requires_grad


def test_casts_follow_the_graph_between_float_dtypes():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype == tg.float32 and x.grad.tolist() == [3.0, 3.0]
    assert x.long().dtype == tg.int64 and x.to(tg.float64).dtype == tg.float64


def test_grad_mode_context_managers_and_decorators():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        assert (x * 2).grad_fn is None
        with tg.enable_grad():
            assert (x * 2).grad_fn is not None
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def f():
        return x * 2

    assert f().grad_fn is None and tg.is_grad_enabled()


class Cube(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return tg.tensor([3 * x[0].item() ** 2]) * g


def test_a_function_gets_tensors_and_may_return_tensors():
    x = tg.tensor([2.0], requires_grad=True)
    y = Cube.apply(x)
    assert y.tolist() == [8.0] and Cube().apply(x).tolist() == [8.0]
    y.sum().backward()
    assert x.grad.tolist() == [12.0]


def test_stacking_vugrad_nodes_with_arrays_stays_in_vugrads_dialect():
    x = tg.TensorNode(np.array(1.0))
    s = tg.stack([x * 2, np.array(3.0)])
    assert s.dialect == "vugrad" and isinstance(x.grad, np.ndarray)
    s.sum().backward()
    assert x.grad.tolist() == 2.0
    t = tg.stack([tg.tensor(1.0), np.float32(2.0)])
    assert t.dialect == "pytorch"
