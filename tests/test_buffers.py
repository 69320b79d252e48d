"""The cache of freed tensor buffers (cpp/buffers.cpp): reuse, its limit, and that results do not
depend on it."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tapegrad as vg
from helpers import run_in_threads

MIB = 2**20
SANITIZED = bool(os.environ.get("TAPEGRAD_SANITIZED"))


@pytest.fixture(autouse=True)
def cache_on():
    """Each test starts from an empty cache of 64 MiB and leaves the import-time limit behind."""
    limit = vg.buffer_cache_info()["limit_mb"]
    vg.release_buffer_cache()
    vg.set_buffer_cache_limit(64)
    yield
    vg.set_buffer_cache_limit(int(limit))


def held():
    return vg.buffer_cache_info()["held_mb"] * MIB


def engine_tensor(nbytes, value=1.0):
    """A float32 node whose value the engine allocated (an op's output, not numpy's memory)."""
    x = vg.TensorNode(np.full(nbytes // 4, value, np.float32), requires_grad=False)
    return x * 1.0


def test_the_default_limit_is_512_mib_or_none_under_addresssanitizer():
    code = "import tapegrad as vg; print(vg.buffer_cache_info()['limit_mb'])"
    env = {k: v for k, v in os.environ.items() if k != "TAPEGRAD_BUFFER_CACHE_MB"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) == (0.0 if SANITIZED else 512.0)


def test_a_freed_large_buffer_is_kept_and_reused_by_the_next_tensor_of_its_size():
    y = engine_tensor(MIB)
    assert held() == 0
    del y
    assert held() == MIB
    z = engine_tensor(MIB)  # takes the kept block (its input, numpy's, is not the engine's)
    assert held() == 0
    del z


def test_sizes_share_a_class_of_at_most_a_quarter_more():
    y = engine_tensor(5 * MIB // 4)  # 1.25 MiB: a class of its own
    del y
    assert held() == 5 * MIB // 4
    z = engine_tensor(9 * MIB // 8)  # 1.125 MiB rounds up to the same class
    assert held() == 0
    del z


def test_buffers_under_1_kib_stay_with_malloc_and_from_1_kib_are_kept():
    y = engine_tensor(512)
    del y
    assert held() == 0
    y = engine_tensor(1024)
    del y
    assert held() == 1024
    z = engine_tensor(1024)
    assert held() == 0
    del z


def test_the_limit_bounds_what_is_kept_and_lowering_it_frees_the_excess():
    vg.set_buffer_cache_limit(3)
    a, b, c = engine_tensor(MIB), engine_tensor(MIB), engine_tensor(MIB)
    d = engine_tensor(2 * MIB)
    del a, b, c
    assert held() == 3 * MIB
    del d  # would exceed 3 MiB: back to malloc
    assert held() == 3 * MIB
    vg.set_buffer_cache_limit(1)
    assert held() <= MIB
    vg.release_buffer_cache()
    assert held() == 0


def test_a_limit_of_zero_keeps_nothing():
    vg.set_buffer_cache_limit(0)
    y = engine_tensor(MIB)
    del y
    assert held() == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "64", None, True])
def test_set_buffer_cache_limit_refuses_anything_but_a_whole_number_of_mib(bad):
    with pytest.raises(ValueError, match=r"^set_buffer_cache_limit: expected a whole number of MiB >= 0"):
        vg.set_buffer_cache_limit(bad)
    assert vg.buffer_cache_info()["limit_mb"] == 64


@pytest.mark.parametrize("value, limit", [("0", 0.0), ("16", 16.0)])
def test_the_environment_variable_sets_the_limit_at_import(value, limit):
    code = "import tapegrad as vg; print(vg.buffer_cache_info()['limit_mb'])"
    env = dict(os.environ, TAPEGRAD_BUFFER_CACHE_MB=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert float(out.stdout) == limit


def test_a_bad_environment_variable_fails_the_import_naming_it():
    env = dict(os.environ, TAPEGRAD_BUFFER_CACHE_MB="lots")
    out = subprocess.run([sys.executable, "-c", "import tapegrad"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ValueError: TAPEGRAD_BUFFER_CACHE_MB='lots': expected a whole number of MiB >= 0" in out.stderr


def test_a_reused_buffer_holds_only_what_the_op_writes():
    y = engine_tensor(4 * MIB, value=7.0)
    del y
    z = vg.TensorNode(np.zeros((1024, 1024), np.float32), requires_grad=False)
    assert held() == 4 * MIB
    out = z + 0.0  # 4 MiB: the block that held sevens
    assert held() == 0
    np.testing.assert_array_equal(out.value, 0.0)


def mlp_losses():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((256, 784)).astype(np.float32) * 40
    y = rng.integers(0, 10, 256)
    vg.manual_seed(0)
    model = vg.MLP([784, 512, 10], activation="sigmoid", output_activation="log_softmax", dtype=np.float32)
    opt = vg.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(3):
        loss = vg.logceloss(model(vg.TensorNode(x, requires_grad=False)), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.value.copy())
    return np.array(losses), model.parameters()[0].value.copy()


def test_training_gives_the_same_bits_with_and_without_the_cache():
    with_cache = mlp_losses()
    assert held() > 0
    vg.set_buffer_cache_limit(0)
    without = mlp_losses()
    for a, b in zip(with_cache, without):
        np.testing.assert_array_equal(a, b)


def test_threads_allocating_at_once_get_their_own_blocks():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((512, 512)).astype(np.float32) for _ in range(4)]
    expected = [np.tanh(x) * 2 + x for x in inputs]

    def work(i):
        for _ in range(30):
            x = vg.TensorNode(inputs[i], requires_grad=False)
            out = vg.tanh(x) * 2 + x
            np.testing.assert_allclose(out.value, expected[i], rtol=1e-6, atol=1e-6)

    errors = run_in_threads(work, range(4))
    assert not errors, errors[0]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_allocates_and_frees_large_buffers():
    code = """
import os, sys, threading
import numpy as np
import tapegrad as vg
x = vg.TensorNode(np.ones((512, 512), np.float32), requires_grad=False)
stop = threading.Event()
def churn():  # another thread in the cache while the process forks
    while not stop.is_set():
        y = x * 2.0
        del y
t = threading.Thread(target=churn)
t.start()
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        y = x * 3.0
        del y
        z = x * 4.0
        os._exit(0 if float(z.value[0, 0]) == 4.0 else 1)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit(f"child failed: {status}")
stop.set()
t.join()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
