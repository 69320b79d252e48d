"""Shared test helpers: input domains, engine gradients, central finite differences and numpy's
broadcast reduction."""

import os
import threading

import numpy as np
import pytest

import tapegrad as vg


def run_in_threads(work, args):
    """Runs work(arg) for every arg, each on a thread of its own, all at once, and waits for them;
    returns the exceptions they raised (in a thread they would otherwise vanish)."""
    errors = []

    def guarded(arg):
        try:
            work(arg)
        except Exception as e:  # noqa: BLE001 - returned to the caller, in the main thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def evaluate(fn, arrays):
    """fn applied to fresh float64 TensorNodes holding copies of `arrays`, as a Python float (no tape)."""
    with vg.no_grad():
        nodes = [vg.TensorNode(np.array(a, dtype=np.float64)) for a in arrays]
        return float(fn(nodes).item())


def numeric_grads(fn, arrays, eps=1e-6):
    """Central finite differences in float64 of the scalar fn(list of TensorNodes) at `arrays`.

    Returns one array per input, of that input's shape: (f(x + eps e_k) - f(x - eps e_k)) / (2 eps).
    """
    points = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for a in points:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            up = evaluate(fn, points)
            a[idx] = orig - eps
            down = evaluate(fn, points)
            a[idx] = orig
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def engine_grads(fn, arrays, dtype=np.float64):
    """The engine's gradients of the scalar fn(list of TensorNodes) at `arrays`, and the loss value."""
    nodes = [vg.TensorNode(np.array(a, dtype=dtype)) for a in arrays]
    loss = fn(nodes)
    loss.backward()
    return [n.grad.copy() for n in nodes], loss.item()


def print_summary(request, line):
    """Prints a module's summary line (counts of cases) at its end, also under plain ``pytest -q``."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


# ---- Python ops used by several test files ----

class Cube(vg.Op):
    """x ** 3; saves x."""

    @staticmethod
    def forward(context, x):
        context["x"] = x
        return x ** 3

    @staticmethod
    def backward(context, go):
        return go * 3.0 * context["x"] ** 2


class ProductAndDifference(vg.Op):
    """Two inputs, two outputs: (a * b, a - b). Keeps the gradients it was given, for inspection."""

    @staticmethod
    def forward(context, a, b):
        context["a"], context["b"] = a, b
        return a * b, a - b

    @staticmethod
    def backward(context, g_product, g_difference):
        context["received"] = (g_product.copy(), g_difference.copy())
        return g_product * context["b"] + g_difference, g_product * context["a"] - g_difference


class ReLU(vg.Op):
    """The course's ReLU as a Python op: its context (a mask array) must be freed with the graph."""

    @staticmethod
    def forward(context, x):
        context["mask"] = x > 0
        return np.where(context["mask"], x, 0.0)

    @staticmethod
    def backward(context, go):
        return go * context["mask"]


class Scale(vg.Op):
    """x * factor, with factor a keyword constant."""

    @staticmethod
    def forward(context, x, factor):
        context["factor"] = factor
        return x * factor

    @staticmethod
    def backward(context, go):
        return go * context["factor"]


# Under AddressSanitizer (.ci/run's second stage) freed memory sits in ASan's quarantine, so
# resident-memory bounds measure the sanitizer, not the engine.
skip_if_sanitized = pytest.mark.skipif(os.environ.get("TAPEGRAD_SANITIZED") == "1",
                                       reason="memory bounds do not apply under AddressSanitizer")
