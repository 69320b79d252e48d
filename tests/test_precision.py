"""set_float32_matmul_precision("medium"): float32 products with bfloat16 operands, summed in float32.

Each kernel the machine has (the AVX512_BF16 one where the CPU has it, the emulated one always) is
checked against numpy: operands rounded to bfloat16 the same way (to nearest, ties to even), then
multiplied in float64. The rounding error of the float32 sums is at most about k 2^-24 of the sum
of |products|; the bfloat16 operands move the product by about 2^-9 of it, so the two are told apart.
"""

import numpy as np
import pytest

import tapegrad as vg
from tapegrad import _core

KERNELS = ["emulated"] + (["avx512_bf16"] if vg.bf16_kernel() == "avx512_bf16" else [])


def to_bf16(x):
    """float32 -> float32 values rounded to bfloat16: nearest, ties to even; NaN stays NaN."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = np.where(nan, u | 0x400000, u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return (r.astype(np.uint32) << 16).view(np.float32).reshape(np.shape(x))


@pytest.fixture
def medium(request):
    """The "medium" precision with the kernel named by the test's parameter; everything restored."""
    kernel = getattr(request, "param", vg.bf16_kernel())
    before = vg.bf16_kernel()
    _core.set_bf16_kernel(kernel)
    vg.set_float32_matmul_precision("medium")
    yield kernel
    vg.set_float32_matmul_precision("highest")
    _core.set_bf16_kernel(before)


def check_bf16_product(out, a, b):
    """out is a @ b of bfloat16-rounded a and b, summed in float32, and not the float32 product."""
    ra, rb = to_bf16(a).astype(np.float64), to_bf16(b).astype(np.float64)
    ref = ra @ rb
    bound = 4 * a.shape[-1] * 2.0 ** -24 * (np.abs(ra) @ np.abs(rb)) + 1e-30
    assert np.all(np.abs(out - ref) <= bound), np.max(np.abs(out - ref) / bound)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.max(np.abs(out - exact)) > 10 * np.max(np.abs(out - ref))


SHAPES = [(128, 784, 3136), (37, 33, 45), (129, 257, 97), (3, 5, 3000), (100, 1, 500), (128, 3136, 10),
          (10, 128, 3136), (128, 10, 3136), (9, 449, 31), (64, 64, 64)]


@pytest.mark.parametrize("medium", KERNELS, indirect=True)
@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_every_kernel_multiplies_bfloat16_operands_in_every_transposition(medium, m, k, n, ta, tb):
    rng = np.random.default_rng(m * 7919 + k * 31 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    x = vg.TensorNode(np.ascontiguousarray(a.T), requires_grad=False).T if ta else vg.TensorNode(a, requires_grad=False)
    y = vg.TensorNode(np.ascontiguousarray(b.T), requires_grad=False).T if tb else vg.TensorNode(b, requires_grad=False)
    out = (x @ y).value
    assert out.dtype == np.float32
    if k == 1:  # one product per element: exact in float32 either way, equal to the rounded operands' product
        np.testing.assert_array_equal(out, to_bf16(a) @ to_bf16(b))
    else:
        check_bf16_product(out, a, b)


@pytest.mark.parametrize("medium", KERNELS, indirect=True)
def test_gradients_of_a_linear_layer_take_bfloat16_operands_too(medium):
    rng = np.random.default_rng(1)
    x = vg.TensorNode(rng.standard_normal((128, 300)).astype(np.float32))
    w = vg.TensorNode(rng.standard_normal((300, 200)).astype(np.float32))
    g = rng.standard_normal((128, 200)).astype(np.float32)
    out = x @ w
    check_bf16_product(out.value, x.value, w.value)
    (out * vg.TensorNode(g, requires_grad=False)).sum().backward()
    check_bf16_product(w.grad, x.value.T, g)
    check_bf16_product(x.grad, g, w.value.T)


@pytest.mark.parametrize("medium", KERNELS, indirect=True)
def test_small_and_float64_products_keep_their_precision(medium):
    rng = np.random.default_rng(2)
    small = [rng.standard_normal(s).astype(np.float32) for s in ((16, 16), (16, 16))]  # 4096 < 32^3
    wide = [rng.standard_normal(s) for s in ((64, 64), (64, 64))]  # float64
    got = [(vg.TensorNode(p, requires_grad=False) @ vg.TensorNode(q, requires_grad=False)).value
           for p, q in (small, wide)]
    vg.set_float32_matmul_precision("highest")
    want = [(vg.TensorNode(p, requires_grad=False) @ vg.TensorNode(q, requires_grad=False)).value
            for p, q in (small, wide)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("medium", KERNELS, indirect=True)
def test_nan_and_inf_reach_the_product_and_beyond_bfloat16s_range_is_inf(medium):
    a = np.ones((40, 40), np.float32)
    b = np.ones((40, 40), np.float32)
    a[3, 5] = np.nan
    a[7, 0] = 3.4e38  # above bfloat16's largest finite value (3.39e38): rounds to inf
    out = (vg.TensorNode(a, requires_grad=False) @ vg.TensorNode(b, requires_grad=False)).value
    assert np.isnan(out[3]).all() and np.isinf(out[7]).all() and (out[7] > 0).all()
    rest = np.delete(out, [3, 7], axis=0)
    np.testing.assert_array_equal(rest, 40)


def test_the_avx512_kernel_gives_the_same_bits_on_one_thread_and_two():
    if "avx512_bf16" not in KERNELS:
        pytest.skip("this CPU has no AVX512_BF16")
    rng = np.random.default_rng(3)
    threads = vg.get_num_threads()
    for m, k, n in [(300, 700, 900), (128, 3136, 10), (10, 3136, 300)]:  # the last two: C^T's tiles, split
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        x, y = vg.TensorNode(a, requires_grad=False), vg.TensorNode(b, requires_grad=False)
        vg.set_float32_matmul_precision("medium")
        try:
            vg.set_num_threads(1)
            one = (x @ y).value
            vg.set_num_threads(2)
            two = (x @ y).value
        finally:
            vg.set_num_threads(threads)
            vg.set_float32_matmul_precision("highest")
        np.testing.assert_array_equal(one, two)
        check_bf16_product(two, a, b)


@pytest.mark.parametrize("medium", KERNELS, indirect=True)
def test_a_convolution_takes_bfloat16_operands(medium):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    out = vg.conv2d(vg.TensorNode(x, requires_grad=False), vg.TensorNode(w, requires_grad=False)).value
    # the same as a product of patches (im2col) and the flattened kernel
    cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # 8, 16, 10, 10, 3, 3
    patches = cols.transpose(0, 2, 3, 1, 4, 5).reshape(-1, 16 * 9)
    got = out.transpose(0, 2, 3, 1).reshape(-1, 32)
    check_bf16_product(got, np.ascontiguousarray(patches), np.ascontiguousarray(w.reshape(32, -1).T))


def test_training_with_bfloat16_products_follows_float32_training():
    (x, y), _, _ = vg.load_synth(num_train=2048, seed=0)
    losses = {}
    for precision in ("highest", "medium"):
        vg.set_float32_matmul_precision(precision)
        try:
            vg.manual_seed(0)
            model = vg.MLP([2, 64, 2], activation="relu", dtype=np.float32)
            opt = vg.optim.Adam(model.parameters(), lr=1e-2)
            xs, ys = x.astype(np.float32), y
            for epoch in range(3):
                for i in range(0, len(ys), 128):
                    loss = vg.cross_entropy(model(vg.TensorNode(xs[i:i + 128], requires_grad=False)), ys[i:i + 128])
                    loss.backward()
                    opt.step()
                    opt.zero_grad()
            losses[precision] = loss.item()
        finally:
            vg.set_float32_matmul_precision("highest")
    assert abs(losses["medium"] - losses["highest"]) < 0.05 * losses["highest"] + 1e-3, losses


def test_the_setting_is_checked_and_reported():
    assert vg.get_float32_matmul_precision() == "highest"
    assert vg.bf16_kernel() in ("avx512_bf16", "emulated")
    with pytest.raises(ValueError, match=r"set_float32_matmul_precision: expected one of .*'medium', got 'low'"):
        vg.set_float32_matmul_precision("low")
    vg.set_float32_matmul_precision("high")
    try:
        assert vg.get_float32_matmul_precision() == "high" and not _core.get_bf16_products()
    finally:
        vg.set_float32_matmul_precision("highest")
    with pytest.raises(ValueError, match="set_bf16_kernel: expected 'avx512_bf16' or 'emulated', got 'amx'"):
        _core.set_bf16_kernel("amx")
    if "avx512_bf16" not in KERNELS:
        with pytest.raises(ValueError, match="this CPU has no AVX512_BF16"):
            _core.set_bf16_kernel("avx512_bf16")
