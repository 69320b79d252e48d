"""Fuzzing: random graphs of random ops against numpy, and their gradients against finite differences.

A drawn graph starts from 1-3 leaves (random shapes including zero-size axes and 0-d, float64,
float32, integer and boolean arrays, nan/inf values) and applies 1-6 random ops, each to nodes
already in the graph and to random constants: element-wise ops with broadcasting (operators,
functions, op classes and raw-array ``forward``), reductions with axis/keepdims, matmul (1-d,
batched), shape ops, ``x[key]`` with basic and advanced keys (out-of-range, negative, float and
boolean indices), softmax, losses, Select/Gather, in-place operators and Python-defined ops, with
parameters that are sometimes wrong on purpose. Every call must either return what numpy (or a
numpy reference written from docs/ops.md) returns, with the documented dtype, or raise ValueError,
TypeError or IndexError where the reference rejects the case too. Never another exception, never a
crash. Then backward from the last node, twice with retain_graph, whatever its values: no
exception, and every leaf that requires grad gets a gradient of its shape and dtype.

The gradient test draws float64 graphs of the same ops on small finite inputs, takes
``sum(last node * fixed weights)`` and compares backward's gradients with central finite
differences; an element where the forward and backward one-sided differences disagree (a kink of
relu, abs, max, clip ... or a tie) is skipped, not compared.

The same fuzz body, with every other parameter wrong and with shapes whose element count is too
large for memory or overflows 64 bits, also runs in a child process (under a 4 GB address-space
limit), so an interpreter crash fails one test and prints the graph that caused it. The crashes
and wrong results the fuzz found are also plain regression tests at the end of the module.

Bounded by default, for CI (about 5 s when the fuzz passes): 200 random graphs, 120 gradient
graphs and 150 graphs in the child. The long run sets the number of examples per test:

    TAPEGRAD_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -q

(TAPEGRAD_FUZZ_RISKY_EXAMPLES sets the child's count alone.) How many cases ran is printed at the
end of the module, also with plain ``pytest -q``: ``fuzz: N graphs (K ops: ...), M backward checks
(...), R risky graphs in a child process``.
"""

import math
import operator
import os
import subprocess
import sys
import textwrap
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as vg
from helpers import print_summary
import reference
from reference import log_softmax as np_log_softmax
from reference import rel, rel_plus_one
from reference import sigmoid as np_sigmoid
from reference import softmax as np_softmax

FUZZ_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "200"))
GRAD_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "120"))
RISKY_EXAMPLES = int(os.environ.get("TAPEGRAD_FUZZ_RISKY_EXAMPLES", os.environ.get("TAPEGRAD_FUZZ_EXAMPLES", "150")))

# One failure at a time: shrinking several distinct ones would take most of the CI budget.
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False)
GRAD = settings(max_examples=GRAD_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False)

# What a bad input may raise (tapegrad's DTypeError is a TypeError).
ALLOWED = (ValueError, TypeError, IndexError)

COUNTS = Counter()

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
TOL = {F32: 3e-5, F64: 1e-11}


class Rejected(Exception):
    """The reference rejects the case (where numpy has no opinion, e.g. vugrad's row ops)."""


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Prints how many cases ran once the module is done (through the terminal reporter, so it
    shows with plain `pytest -q`)."""
    yield
    line = (f"fuzz: {COUNTS['graphs']} graphs ({COUNTS['ops']} ops: {COUNTS['matched']} matched the reference, "
            f"{COUNTS['raised']} raised where it rejects, {COUNTS['unspecified']} outside the documented domain), "
            f"{COUNTS['backward']} backward checks ({COUNTS['fd_compared']} gradient elements against finite "
            f"differences, {COUNTS['fd_kinks']} skipped at kinks), {COUNTS['risky']} risky graphs in a child process")
    print_summary(request, line)


# ---- dtypes ----

def is_weak(x):
    """A Python number takes the dtype of the node it meets (docs/ops.md)."""
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def engine_dtype(x):
    """The float dtype an operand becomes: float32 stays, every other numeric dtype is float64."""
    dt = x.dtype if isinstance(x, vg.TensorNode) else np.asarray(x).dtype
    return F32 if dt == F32 else F64


def result_dtype(*operands):
    """float64 if any non-weak operand is float64 (or an integer/boolean array), else float32."""
    strong = [engine_dtype(x) for x in operands if not is_weak(x)]
    return F64 if F64 in strong else F32


def as_ref(x, dtype):
    """An operand as the reference sees it: converted to the op's dtype (numpy then computes in
    that dtype, so float32 overflows where the engine's float32 does)."""
    value = x.value if isinstance(x, vg.TensorNode) else x
    with np.errstate(all="ignore"):
        return np.asarray(value, dtype=float).astype(dtype)


# ---- a step of a graph ----

@dataclass
class Step:
    code: str                 # one line of Python that repeats the call, for reports
    inputs: tuple             # indices of the input nodes in the graph
    run: Callable             # (*nodes) -> TensorNode (or an array for the raw-array path)
    ref: Callable             # (*input arrays) -> array; raises where the case is invalid
    dtype: np.dtype           # the documented dtype of the result
    scale: Optional[Callable] = None  # (*input arrays, out) -> error scale; None: exact
    unspecified: Callable = None      # (*input arrays) -> True where only shape and dtype are specified
    raw: bool = False         # the result is a numpy array (NativeOp.forward on arrays)
    ref_dtype: np.dtype = None  # the dtype the reference computes in (default: dtype)
    allowed: tuple = ALLOWED  # what the call may raise where the reference rejects the case


def assert_close(actual, expected, dtype, scale, what):
    """actual (an array of `dtype`) equals the reference rounded to `dtype`, within the per-dtype
    tolerance times `scale` (None: exactly); nan matches nan, overflow matches inf."""
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, documented {dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, numpy {expected.shape}"
    with np.errstate(all="ignore"):
        e = expected.astype(dtype).astype(np.float64)
        a = actual.astype(np.float64)
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        if scale is None:
            ok = same
        else:
            big = np.finfo(dtype).max / 2
            overflow = (np.abs(a) >= big) & (np.abs(e) >= big) & (np.sign(a) == np.sign(e))
            finite = np.isfinite(a) & np.isfinite(e)
            s = np.broadcast_to(np.asarray(scale, dtype=np.float64), e.shape)
            within = np.abs(a - e) <= TOL[dtype] * np.where(np.isfinite(s), s, np.inf) + 1e-300
            ok = same | overflow | (finite & within)
    if not np.all(ok):
        bad = np.argwhere(~ok)[:3]
        detail = "; ".join(f"at {tuple(int(i) for i in b)}: {a[tuple(b)]!r} vs numpy {e[tuple(b)]!r}" for b in bad)
        raise AssertionError(f"{what}: value differs from numpy ({detail})")


# ---- drawing inputs ----

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-30]


def float_values(width, special):
    # Subnormal inputs are left to test_unary_ops_match_numpy_on_special_values_in_full_simd_packets.
    finite = st.floats(-4, 4, width=width, allow_subnormal=False)
    if not special:
        return finite
    return st.one_of(finite, finite, finite, st.sampled_from(SPECIAL).map(lambda v: float(np.float32(v)) if width == 32 else v))


DIMS = st.sampled_from([2, 3, 1, 0, 4, 17])  # 17: full SIMD packets of float64 and float32 and a tail


def shapes(max_dims=4, dims=DIMS):
    return st.lists(dims, min_size=0, max_size=max_dims).map(tuple).filter(lambda s: np.prod(s) <= 100)


def array(draw, shape, dtype, special=True):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        elements = float_values(32 if dtype.itemsize <= 4 else 64, special)
        if dtype.itemsize == 2:
            elements = st.floats(-4, 4, width=16)
    elif dtype.kind == "b":
        elements = st.booleans()
    elif dtype.kind == "u":
        elements = st.integers(0, 5)
    else:
        elements = st.integers(-5, 5)
    return draw(hnp.arrays(dtype, shape, elements=elements))


LEAF_DTYPES = [np.float64, np.float32, np.float64, np.float32, np.int64, np.bool_, np.int32, np.uint8, np.float16]
CONSTANT_DTYPES = [np.float64, np.float32, np.int64, np.bool_]


class PyTanh(vg.Op):
    """A Python op on the tape: tanh with its backward from the saved output."""

    @staticmethod
    def forward(context, x):
        context["y"] = np.tanh(x)
        return context["y"]

    @staticmethod
    def backward(context, g):
        return g * (1 - context["y"] ** 2)


class PyScale(vg.Function):
    """A PyTorch-style Function with a constant argument: x * k."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k

    @staticmethod
    def backward(ctx, g):
        return g * ctx.k, None


class Graph:
    """A random graph built step by step; `nodes` holds every value made so far."""

    def __init__(self, data, mode):
        self.data = data
        self.mode = mode          # "forward" (anything goes), "grad" (float64, valid parameters), "risky"
        self.nodes = []           # TensorNodes (leaves first, then step results)
        self.names = []
        self.steps = []           # (Step, output index) of the steps that returned a node
        self.lines = []           # a Python transcript of the graph, for failure reports
        self.leaves = 0
        self.changed_in_place = False

    def draw(self, strategy, label=None):
        return self.data.draw(strategy, label=label)

    def wild(self):
        """Whether to draw a parameter that may be invalid (never in the gradient test, every other
        time in the child process's risky graphs)."""
        if self.mode == "grad":
            return False
        return self.draw(st.integers(0, 1 if self.mode == "risky" else 5)) == 0

    def say(self, line):
        self.lines.append(line)
        if self.mode == "risky":
            print(line, file=sys.stderr, flush=True)  # the last line printed names a crashing case

    # -- leaves and constants --

    def add_leaf(self):
        if self.mode == "grad":
            shape = self.draw(shapes(3, st.sampled_from([2, 3, 1])), "leaf shape")
            values = self.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.3, 2.0)), "leaf values")
            signs = self.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([1.0, -1.0])), "leaf signs")
            # distinct values (hypothesis likes ties such as all ones): with ties between different
            # elements, max and friends have kinks that one-coordinate differences cannot see
            start = sum(n.value.size for n in self.nodes)
            offsets = (start + np.arange(values.size).reshape(shape)) * 1.37e-3
            value = (values + offsets) * signs
            requires_grad = True
        else:
            shape = self.draw(shapes(), "leaf shape")
            dtype = self.draw(st.sampled_from(LEAF_DTYPES), "leaf dtype")
            value = array(self.draw, shape, dtype)
            requires_grad = self.draw(st.booleans(), "requires_grad")
        node = vg.TensorNode(value, requires_grad=requires_grad)
        name = f"n{len(self.nodes)}"
        self.say(f"{name} = vg.TensorNode(np.array({value.tolist()!r}, dtype=np.{value.dtype}), "
                 f"requires_grad={requires_grad})  # shape {value.shape}")
        expected = F32 if value.dtype == F32 else F64
        assert_close(node.value, np.asarray(value, dtype=np.float64), expected, None, f"{name}: leaf value")
        self.nodes.append(node)
        self.names.append(name)
        self.leaves += 1

    def constant(self, shape, dtypes=CONSTANT_DTYPES):
        dtype = self.draw(st.sampled_from(dtypes), "constant dtype")
        if self.mode == "grad":
            return self.draw(hnp.arrays(np.float64, shape, elements=st.floats(0.3, 2.0)), "constant")
        return array(self.draw, shape, dtype)

    def scalar(self):
        """A Python number, a numpy scalar or a 0-d array."""
        if self.mode == "grad":
            return self.draw(st.sampled_from([0.5, 2.0, -1.5, 3]))
        return self.draw(st.one_of(
            st.sampled_from([0.5, -2.0, 3, True, 0, np.float64(1.5), np.float32(-0.5), np.int64(2)]),
            st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False, width=32),
            st.just(np.array(2.5)), st.just(np.array(-1.0, dtype=np.float32))), "scalar")

    def pick(self, label="input"):
        return self.draw(st.integers(0, len(self.nodes) - 1), label)

    def compatible_shape(self, shape):
        """A shape that broadcasts with `shape` (sometimes one that does not)."""
        if self.wild():
            return self.draw(shapes(), "wild shape")
        out = [self.draw(st.sampled_from([d, d, 1]), "broadcast dim") for d in shape]
        drop = self.draw(st.integers(0, len(out)), "dropped leading dims")
        out = out[drop:]
        if self.mode != "grad" and self.draw(st.booleans()):
            out = [self.draw(st.sampled_from([1, 2]), "new leading dim")] + out
        return tuple(out)

    # -- running one step --

    def run(self, step):
        nodes = [self.nodes[i] for i in step.inputs]
        self.say(step.code)
        COUNTS["ops"] += 1
        refs = [as_ref(n, step.ref_dtype or step.dtype) for n in nodes]  # before an in-place op changes them
        try:
            out = step.run(*nodes)
            error = None
        except Exception as e:  # judged below: only ValueError, TypeError, IndexError are allowed
            out, error = None, e
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpy's "mean of empty slice" and "degrees of freedom <= 0"
                expected = np.asarray(step.ref(*refs), dtype=np.float64)
            rejected = None
        except (Rejected, ValueError, TypeError, IndexError) as e:
            expected, rejected = None, e
        where = f"{step.code}\n  graph:\n    " + "\n    ".join(self.lines)
        if error is not None:
            assert isinstance(error, step.allowed), f"{where}\nraised {type(error).__name__}: {error} (not ValueError/TypeError/IndexError)"
            assert rejected is not None, f"{where}\nraised {type(error).__name__}: {error}, but numpy computes it"
            COUNTS["raised"] += 1
            return None
        assert rejected is None, f"{where}\nreturned a value, but the reference rejects the case: {rejected!r}"
        value = out if step.raw else out.value
        if step.raw:
            assert isinstance(value, np.ndarray), f"{where}\nreturned {type(value).__name__}, not an array"
        else:
            assert isinstance(out, vg.TensorNode), f"{where}\nreturned {type(out).__name__}, not a TensorNode"
        if step.unspecified is not None and step.unspecified(*refs):
            assert value.shape == expected.shape and value.dtype == step.dtype, where
            COUNTS["unspecified"] += 1
        else:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scale = None if step.scale is None else step.scale(*refs, expected)
            assert_close(value, expected, step.dtype, scale, where)
            COUNTS["matched"] += 1
        if step.raw:
            return None
        self.nodes.append(out)
        self.names.append(f"n{len(self.nodes) - 1}")
        self.steps.append((step, len(self.nodes) - 1))
        return out

    def replay(self, leaves):
        """The graph's values recomputed from new leaf nodes (for finite differences)."""
        nodes = list(leaves)
        for step, index in self.steps:
            assert index == len(nodes)
            nodes.append(step.run(*[nodes[i] for i in step.inputs]))
        return nodes


# ---- the ops: each maker draws its inputs and parameters and returns a Step ----

UNARY = [
    # function, op class, method (or operator), numpy reference, error scale, domain of the gradient test
    (getattr(vg, r.function), getattr(vg.ops, r.cls), (r.methods + r.operators)[0], *reference.UNARY[r.native][:1],
     *reference.UNARY[r.native][3:])
    for r in vg.ops.OPS if r.kind == vg.ops.UNARY
]


def call_path(g, fn, cls, method):
    """One of the ways to call a unary op on a node: function, method, op class, or the op class's
    forward on the raw array. Returns (code with {x} for the node's name, run, whether run gives an array)."""
    paths = ["fn", "cls"] + (["method"] if method else []) + ([] if g.mode == "grad" else ["raw"])
    path = g.draw(st.sampled_from(paths), "call path")
    if path == "fn":
        return f"vg.{fn.__name__}({{x}})", fn, False
    if path == "method":
        if method == "__neg__":
            return "-{x}", (lambda x: -x), False
        return f"{{x}}.{method}()", (lambda x: getattr(x, method)()), False
    if path == "cls":
        return f"vg.{cls.__name__}.do_forward({{x}})", cls.do_forward, False
    return f"vg.{cls.__name__}.forward({{{{}}}}, {{x}}.value)", (lambda x: cls.forward({}, x.value)), True


def make_unary(g):
    choices = [row for row in UNARY if g.mode != "grad" or row[5] is None or row[5](g.nodes[-1].value)]
    fn, cls, method, ref, scale, _ = g.draw(st.sampled_from(choices), "unary op")
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    code, run, raw = call_path(g, fn, cls, method)
    return Step(code.format(x=g.names[i]), (i,), run, ref, g.nodes[i].dtype, scale, raw=raw)


def make_leaky_relu(g):
    i = g.pick()
    slope = g.draw(st.sampled_from([0.01, 0.2, 0.0, -1.0, 2.0]), "slope")
    use_cls = g.draw(st.booleans())
    if use_cls:
        code, run = f"vg.LeakyReLU.do_forward({g.names[i]}, slope={slope})", lambda x: vg.LeakyReLU.do_forward(x, slope=slope)
    else:
        code, run = f"vg.leaky_relu({g.names[i]}, {slope})", lambda x: vg.leaky_relu(x, slope)
    dtype = g.nodes[i].dtype
    s = float(np.asarray(slope, dtype=dtype))
    return Step(code, (i,), run, lambda x: np.where(x > 0, x, s * x), dtype, rel)


def make_clip(g):
    i = g.pick()
    bounds = st.sampled_from([None, -1.0, 0.0, 0.5, 2.0])
    lo, hi = g.draw(bounds, "a_min"), g.draw(bounds, "a_max")
    if g.mode == "grad" and lo is not None and lo == hi:
        return None  # constant: the documented subgradient at the bound is 1, finite differences give 0
    path = g.draw(st.sampled_from(["fn", "method"]))
    code = f"vg.clip({g.names[i]}, {lo}, {hi})" if path == "fn" else f"{g.names[i]}.clip({lo}, {hi})"
    run = (lambda x: vg.clip(x, lo, hi)) if path == "fn" else (lambda x: x.clip(lo, hi))
    a, b = (-np.inf if lo is None else lo), (np.inf if hi is None else hi)

    def ref(x):
        if a > b:  # documented difference: numpy gives a_max everywhere, tapegrad refuses (docs/errors.md)
            raise Rejected("clip: a_min above a_max")
        return np.minimum(np.maximum(x, a), b)

    return Step(code, (i,), run, ref, g.nodes[i].dtype, None)


BINARY = [
    # symbol, function, op class, numpy reference, error scale (a, b, out)
    ("+", vg.add, vg.Add, np.add, lambda a, b, out: np.abs(a) + np.abs(b)),
    ("-", vg.subtract, vg.Sub, np.subtract, lambda a, b, out: np.abs(a) + np.abs(b)),
    ("*", vg.multiply, vg.Multiply, np.multiply, rel),
    ("/", vg.divide, vg.Divide, np.divide, rel),
    ("**", vg.power, vg.Power, np.power, lambda a, b, out: np.abs(out) * (1 + np.abs(b * np.log(np.abs(a))))),
    (None, vg.maximum, vg.Maximum, np.maximum, None),
    (None, vg.minimum, vg.Minimum, np.minimum, None),
    ("==", vg.equal, vg.Equal, np.equal, None),
    ("!=", vg.not_equal, vg.NotEqual, np.not_equal, None),
    ("<", vg.less, vg.Less, np.less, None),
    ("<=", vg.less_equal, vg.LessEqual, np.less_equal, None),
    (">", vg.greater, vg.Greater, np.greater, None),
    (">=", vg.greater_equal, vg.GreaterEqual, np.greater_equal, None),
]
OPERATORS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "**": lambda a, b: a ** b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def grad_binary_ok(fn, a, b):
    """In the gradient test: operands inside the op's smooth domain."""
    if fn is vg.divide:
        return np.all(np.abs(b) > 0.2)
    if fn is vg.power:
        return np.all(a > 0.2) and np.all(np.abs(b) < 3) and np.all(np.abs(a) < 10)
    return True


def make_binary(g):
    symbol, fn, cls, ref, scale = g.draw(st.sampled_from(BINARY), "binary op")
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick("left")
    x = g.nodes[i]
    kind = g.draw(st.sampled_from(["node", "array", "scalar", "list"]), "right operand")
    if g.mode == "grad" and kind == "list":
        kind = "array"
    j = None
    if kind == "node":
        j = g.pick("right")
        other = g.nodes[j]
    elif kind == "array":
        other = g.constant(g.compatible_shape(x.shape))
    elif kind == "scalar":
        other = g.scalar()
    else:
        other = np.asarray(g.constant(g.compatible_shape(x.shape), [np.float64, np.int64])).tolist()
    if g.mode == "grad" and not grad_binary_ok(fn, x.value, other.value if j is not None else np.asarray(other)):
        return None
    swap = g.draw(st.booleans(), "swap operands")
    path = g.draw(st.sampled_from(["op", "fn", "cls"] if symbol else ["fn", "cls"]), "call path")
    dtype = result_dtype(x, other)
    b_text = g.names[j] if j is not None else repr(other)
    a_text = g.names[i]
    if path == "op":
        apply = OPERATORS[symbol]
        if swap and j is None:  # the constant on the left: Python calls the node's reflected operator
            code, run = f"{b_text} {symbol} {a_text}", (lambda a: apply(other, a))
        else:
            swap = False
            code = f"{a_text} {symbol} {b_text}"
            run = (lambda a: apply(a, other)) if j is None else apply
    elif path == "fn":
        code = f"vg.{fn.__name__}({b_text}, {a_text})" if swap else f"vg.{fn.__name__}({a_text}, {b_text})"
        if j is None:
            run = (lambda a: fn(other, a)) if swap else (lambda a: fn(a, other))
        else:
            run = (lambda a, b: fn(b, a)) if swap else fn
    else:
        swap = False
        code = f"vg.{cls.__name__}.do_forward({a_text}, vg.TensorNode({b_text}))"
        if j is None:
            def run(a):
                return cls.do_forward(a, vg.TensorNode(np.asarray(other), requires_grad=False))
            if is_weak(other):
                dtype = result_dtype(x, np.asarray(other))  # an array now: it keeps its own dtype
        else:
            run = cls.do_forward
    comparison = fn in (vg.equal, vg.not_equal, vg.less, vg.less_equal, vg.greater, vg.greater_equal)

    def ordered(*arrays):  # (left, right) as the call has them
        return arrays[::-1] if swap else arrays

    if j is None:
        const = as_ref(other, dtype)
        inputs = (i,)

        def ref_fn(a):
            out = ref(*ordered(a, const))
            return out.astype(np.float64) if comparison else out  # 1.0/0.0 in the inputs' dtype

        scale_fn = None if scale is None else (lambda a, out: scale(*ordered(a, const), out))
    else:
        inputs = (i, j)

        def ref_fn(a, b):
            out = ref(*ordered(a, b))
            return out.astype(np.float64) if comparison else out

        scale_fn = None if scale is None else (lambda a, b, out: scale(*ordered(a, b), out))
    return Step(code, inputs, run, ref_fn, dtype, scale_fn)


def draw_axis(g, ndim):
    """An axis argument: None, an int or a tuple; sometimes out of range, repeated, or not an integer."""
    if g.wild():
        return g.draw(st.one_of(st.integers(-ndim - 2, ndim + 1),
                                st.lists(st.integers(-ndim - 1, ndim), min_size=1, max_size=3).map(tuple),
                                st.sampled_from([0.0, 1.5, "1"])), "wild axis")
    options = [st.none()]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
        options.append(st.lists(st.integers(0, ndim - 1), min_size=0, max_size=ndim, unique=True).map(tuple))
    return g.draw(st.one_of(options), "axis")


def np_logsumexp(x, axis, keepdims):
    """tapegrad's logsumexp: m + log(sum(exp(x - m))), m the max (or the max itself where it is
    infinite; -inf for an empty group)."""
    np.sum(x, axis=axis)  # numpy's axis checks
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(all="ignore"):
        s = np.sum(np.exp(x - m), axis=axis, keepdims=True)
        out = np.where(np.isinf(m), m, m + np.log(s))
    return out if keepdims else np.squeeze(out, axis=tuple(range(x.ndim)) if axis is None else axis)


def extreme(fn, x, axis, keepdims):
    """np.max/np.min; reducing an empty axis is refused (no identity element), even where the
    result would be empty ((0, 0).max(axis=0)), as numpy and the engine do."""
    if x.size == 0 and reduced_count(x, axis) == 0:
        raise Rejected(f"{fn.__name__}: an empty axis has no maximum or minimum")
    return fn(x, axis=axis, keepdims=keepdims)


def reduced_count(x, axis):
    if axis is None:
        return x.size
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([x.shape[a] for a in axes]))


REDUCTIONS = [
    # function, op class, numpy reference (x, axis, keepdims), error scale
    (vg.sum, vg.Sum, lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
     lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims)),
    (vg.mean, vg.Mean, lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
     lambda x, axis, keepdims: np.mean(np.abs(x), axis=axis, keepdims=keepdims)),
    (vg.max, vg.Max, lambda x, axis, keepdims: extreme(np.max, x, axis, keepdims), None),
    (vg.min, vg.Min, lambda x, axis, keepdims: extreme(np.min, x, axis, keepdims), None),
    (vg.logsumexp, vg.LogSumExp, np_logsumexp,
     lambda x, axis, keepdims: 2 + np.max(np.abs(x), axis=axis, keepdims=keepdims, initial=0.0)),
]


def checked_axis(x, axis):
    """numpy's axis rules, without its quirk of accepting axis=0 or -1 on a 0-d array in some
    reductions (np.sum, np.max; np.mean refuses): tapegrad refuses it everywhere."""
    if x.ndim == 0 and axis is not None and axis != ():
        raise Rejected("axis of a 0-d array")
    return axis


def make_reduction(g):
    fn, cls, ref, scale = g.draw(st.sampled_from(REDUCTIONS), "reduction")
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    axis = draw_axis(g, g.nodes[i].ndim)
    keepdims = g.draw(st.booleans(), "keepdims")
    path = g.draw(st.sampled_from(["fn", "method", "cls"]), "call path")
    name = g.names[i]
    if path == "fn":
        code, run = f"vg.{fn.__name__}({name}, axis={axis!r}, keepdims={keepdims})", lambda x: fn(x, axis=axis, keepdims=keepdims)
    elif path == "method":
        code, run = f"{name}.{fn.__name__}(axis={axis!r}, keepdims={keepdims})", lambda x: getattr(x, fn.__name__)(axis=axis, keepdims=keepdims)
    else:
        code, run = (f"vg.{cls.__name__}.do_forward({name}, axis={axis!r}, keepdims={keepdims})",
                     lambda x: cls.do_forward(x, axis=axis, keepdims=keepdims))
    scale_fn = None if scale is None else (lambda x, out: scale(x, axis, keepdims))
    return Step(code, (i,), run, lambda x: ref(x, checked_axis(x, axis), keepdims), g.nodes[i].dtype, scale_fn)


def make_var(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    axis = draw_axis(g, g.nodes[i].ndim)
    keepdims = g.draw(st.booleans(), "keepdims")
    ddof = g.draw(st.sampled_from([0, 1, 2, 3]), "ddof")
    x = g.nodes[i]
    if g.mode == "grad":
        try:
            if reduced_count(x.value, axis) - ddof < 1:
                return None
        except IndexError:
            return None
    use_method = g.draw(st.booleans())
    code = (f"{g.names[i]}.var(axis={axis!r}, ddof={ddof}, keepdims={keepdims})" if use_method
            else f"vg.var({g.names[i]}, axis={axis!r}, ddof={ddof}, keepdims={keepdims})")

    def run(x):
        return x.var(axis=axis, ddof=ddof, keepdims=keepdims) if use_method else vg.var(x, axis=axis, ddof=ddof, keepdims=keepdims)

    def scale(x, out):
        n = max(reduced_count(x, axis) - ddof, 1)
        return 4 * np.sum(x * x, axis=axis, keepdims=keepdims) / n

    return Step(code, (i,), run, lambda x: np.var(x, axis=axis, ddof=ddof, keepdims=keepdims), x.dtype, scale)


def matmul_partner_shape(g, shape):
    """A right operand for `shape` under numpy's matmul rules (sometimes a misaligned one)."""
    if g.wild() or not shape:
        return g.draw(shapes(3), "wild matmul shape")
    k = shape[-1]
    m = g.draw(st.sampled_from([2, 1, 3, 0]) if g.mode != "grad" else st.sampled_from([2, 1, 3]), "m")
    if len(shape) == 1 and g.draw(st.booleans()):
        return (k,)
    batch = list(shape[:-2])
    batch = [g.draw(st.sampled_from([d, 1]), "batch dim") for d in batch][g.draw(st.integers(0, len(batch))):]
    return tuple(batch) + (k, m)


def make_matmul(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick("left")
    x = g.nodes[i]
    use_node = g.mode != "grad" and g.draw(st.booleans(), "right is a node")
    if use_node:
        j = g.pick("right")
        other = g.nodes[j]
    else:
        j = None
        other = g.constant(matmul_partner_shape(g, x.shape))
    swap = g.mode != "grad" and g.draw(st.booleans(), "swap")
    path = g.draw(st.sampled_from(["op", "fn", "cls"]), "call path")
    dtype = result_dtype(x, other)
    a_text, b_text = g.names[i], (g.names[j] if j is not None else f"const{np.shape(other)}")
    if swap:
        a_text, b_text = b_text, a_text
    fns = {"op": lambda a, b: a @ b, "fn": vg.matmul,
           "cls": lambda a, b: vg.MatrixMultiply.do_forward(*[v if isinstance(v, vg.TensorNode) else vg.TensorNode(v) for v in (a, b)])}
    f = fns[path]
    code = {"op": f"{a_text} @ {b_text}", "fn": f"vg.matmul({a_text}, {b_text})",
            "cls": f"vg.MatrixMultiply.do_forward({a_text}, {b_text})"}[path]
    if j is None:
        const = as_ref(other, dtype)
        run = (lambda a: f(other, a)) if swap else (lambda a: f(a, other))
        ref = (lambda a: np.matmul(const, a)) if swap else (lambda a: np.matmul(a, const))
        scale = (lambda a, out: np.matmul(np.abs(const), np.abs(a))) if swap else (lambda a, out: np.matmul(np.abs(a), np.abs(const)))
        inputs = (i,)
    else:
        run = (lambda a, b: f(b, a)) if swap else f
        ref = (lambda a, b: np.matmul(b, a)) if swap else np.matmul
        scale = (lambda a, b, out: np.matmul(np.abs(b), np.abs(a))) if swap else (lambda a, b, out: np.matmul(np.abs(a), np.abs(b)))
        inputs = (i, j)
    return Step(code, inputs, run, ref, dtype, scale)


def make_linear(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    x = g.nodes[i]
    n_in = x.shape[-1] if x.ndim and not g.wild() else g.draw(st.integers(0, 3))
    n_out = g.draw(st.sampled_from([2, 1, 3]), "outputs")
    w = g.constant((n_out, n_in))
    bias_shape = g.draw(st.sampled_from([None, (n_out,), (1, n_out)] + ([] if g.mode == "grad" else [(2, n_out), (n_out + 1,)])))
    b = None if bias_shape is None else g.constant(bias_shape)
    batch = g.mode != "grad" and g.draw(st.booleans(), "BatchMM instead")
    if batch:
        W = vg.TensorNode(w)
        dtype = result_dtype(x, w)
        wr = as_ref(w, dtype)

        def ref(v):
            if v.ndim != 2 or wr.ndim != 2 or v.shape[1] != wr.shape[1]:
                raise Rejected("batch_mm: shapes")
            return v @ wr.T

        return Step(f"vg.BatchMM.do_forward(W{w.shape}, {g.names[i]})", (i,), lambda v: vg.BatchMM.do_forward(W, v),
                    ref, dtype, lambda v, out: np.abs(v) @ np.abs(wr).T)
    dtype = result_dtype(x, w, *([] if b is None else [b]))
    wr = as_ref(w, dtype)
    br = None if b is None else as_ref(b, dtype)

    def ref(v):
        if v.ndim != 2 or v.shape[1] != wr.shape[1]:
            raise Rejected("linear: shapes")
        if br is not None and br.shape not in ((wr.shape[0],), (1, wr.shape[0])):
            raise Rejected("linear: bias shape")
        return v @ wr.T + (0 if br is None else br.reshape(-1))

    def scale(v, out):
        return np.abs(v) @ np.abs(wr).T + (0 if br is None else np.abs(br).reshape(-1))

    code = f"vg.linear({g.names[i]}, W{w.shape}, {'None' if b is None else f'b{b.shape}'})"
    return Step(code, (i,), lambda v: vg.linear(v, w, b), ref, dtype, scale)


def require_matrix(x):
    if x.ndim != 2:
        raise Rejected("expected a matrix")


def np_row_max(x):
    require_matrix(x)
    if x.shape[1] == 0 and x.shape[0] > 0:
        raise Rejected("empty rows")
    return np.max(x, axis=1) if x.shape[0] else np.zeros(0)


def np_normalize(x):
    require_matrix(x)
    return x / x.sum(axis=1, keepdims=True)


def make_row_op(g):
    which = g.draw(st.sampled_from(["RowSum", "RowMax", "Normalize"]), "row op")
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    x = g.nodes[i]
    cls = getattr(vg, which)
    if which == "RowSum":
        ref, scale = (lambda v: (require_matrix(v), v.sum(axis=1))[1]), (lambda v, out: np.abs(v).sum(axis=1))
    elif which == "RowMax":
        ref, scale = np_row_max, None
    else:
        if g.mode == "grad" and (x.ndim != 2 or np.any(np.abs(x.value.sum(axis=1)) < 0.3)):
            return None
        ref = np_normalize

        def scale(v, out):
            s = np.abs(v.sum(axis=1, keepdims=True))
            return np.abs(out) * (1 + np.abs(v).sum(axis=1, keepdims=True) / s)
    return Step(f"vg.{which}.do_forward({g.names[i]})", (i,), cls.do_forward, ref, x.dtype, scale)


def make_reshape(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    if g.wild():
        shape = g.draw(st.lists(st.integers(-2, 5), max_size=4).map(tuple), "wild shape")
    else:
        size = x.value.size
        dims = []
        rest = size
        for _ in range(g.draw(st.integers(0, 3), "factors")):
            d = g.draw(st.sampled_from([k for k in (1, 2, 3, 4) if rest % k == 0] or [1]), "factor")
            dims.append(d)
            rest //= d
        dims.append(rest)
        dims = g.draw(st.permutations(dims), "order")
        if dims and g.draw(st.booleans(), "infer one"):
            dims[g.draw(st.integers(0, len(dims) - 1))] = -1
        if rest != 1 or g.draw(st.booleans()):
            shape = tuple(dims)
        else:
            shape = tuple(d for d in dims if d != 1) if size == 1 and g.draw(st.booleans()) else tuple(dims)
    path = g.draw(st.sampled_from(["fn", "method", "cls", "flatten"]), "call path")
    if path == "fn":
        code, run = f"vg.reshape({g.names[i]}, {shape!r})", lambda v: vg.reshape(v, shape)
    elif path == "method":
        code, run = f"{g.names[i]}.reshape{shape!r}", lambda v: v.reshape(*shape)
    elif path == "cls":
        code, run = f"vg.Reshape.do_forward({g.names[i]}, shape={shape!r})", lambda v: vg.Reshape.do_forward(v, shape=shape)
    else:
        code, run, shape = f"vg.flatten({g.names[i]})", vg.flatten, (-1,)
    def ref(v):
        if any(d < -1 for d in shape):  # numpy reads any negative entry as -1; tapegrad only -1 (documented)
            raise Rejected("reshape: negative dimension")
        return np.reshape(v, shape)

    return Step(code, (i,), run, ref, x.dtype, None)


def make_transpose(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    if g.wild():
        axes = g.draw(st.lists(st.integers(-3, 3), max_size=4).map(tuple), "wild axes")
    else:
        axes = g.draw(st.one_of(st.none(), st.permutations(range(x.ndim)).map(tuple)), "axes")
    path = g.draw(st.sampled_from(["fn", "T", "method"]), "call path")
    if path == "T" and axes is None:
        code, run = f"{g.names[i]}.T", lambda v: v.T
    elif path == "method" and axes:
        code, run = f"{g.names[i]}.transpose{axes!r}", lambda v: v.transpose(*axes)
    else:
        code, run = f"vg.transpose({g.names[i]}, {axes!r})", lambda v: vg.transpose(v, axes)
    return Step(code, (i,), run, lambda v: np.transpose(v, axes), x.dtype, None)


def make_squeeze(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    ones = [a for a, d in enumerate(x.shape) if d == 1]
    if g.wild() or not ones:
        axis = draw_axis(g, x.ndim)
    else:
        axis = g.draw(st.one_of(st.none(), st.sampled_from(ones), st.lists(st.sampled_from(ones), min_size=1, unique=True).map(tuple)))
    use_cls = isinstance(axis, int) and g.draw(st.booleans())
    if use_cls:
        code, run = f"vg.Squeeze.do_forward({g.names[i]}, dim={axis})", lambda v: vg.Squeeze.do_forward(v, dim=axis)
    else:
        code, run = f"vg.squeeze({g.names[i]}, {axis!r})", lambda v: vg.squeeze(v, axis)
    return Step(code, (i,), run, lambda v: np.squeeze(v, checked_axis(v, axis)), x.dtype, None)


def make_unsqueeze(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    axis = g.draw(st.integers(-x.ndim - 1, x.ndim) if not g.wild() else st.integers(-x.ndim - 3, x.ndim + 2), "axis")
    use_cls = g.draw(st.booleans())
    if use_cls:
        code, run = f"vg.Unsqueeze.do_forward({g.names[i]}, dim={axis})", lambda v: vg.Unsqueeze.do_forward(v, dim=axis)
    else:
        code, run = f"vg.unsqueeze({g.names[i]}, {axis})", lambda v: vg.unsqueeze(v, axis)
    return Step(code, (i,), run, lambda v: np.expand_dims(v, axis), x.dtype, None)


def make_broadcast_to(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    if g.wild():
        target = g.draw(st.lists(st.integers(-1, 4), max_size=4).map(tuple), "wild target")
    else:
        lead = g.draw(st.lists(st.sampled_from([2, 1, 3]), max_size=2), "new leading dims")
        target = tuple(lead) + tuple(g.draw(st.sampled_from([2, 3]), "grown dim") if d == 1 else d for d in x.shape)
    use_expand = g.draw(st.booleans())
    if use_expand:
        code, run = f"{g.names[i]}.expand(*{target!r})", lambda v: v.expand(*target)
    else:
        code, run = f"vg.broadcast_to({g.names[i]}, {target!r})", lambda v: vg.broadcast_to(v, target)
    return Step(code, (i,), run, lambda v: np.array(np.broadcast_to(v, target)), x.dtype, None)


def make_expand(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    ones = [a for a, d in enumerate(x.shape) if d == 1]
    dim = g.draw(st.sampled_from(ones) if ones and not g.wild() else st.integers(-x.ndim - 1, x.ndim), "dim")
    repeats = g.draw(st.integers(0, 3) if not g.wild() else st.integers(-2, 3), "repeats")

    def ref(v):
        if not -v.ndim <= dim < v.ndim:
            raise Rejected("axis out of range")
        if v.shape[dim] != 1 or repeats < 0:
            raise Rejected("expand: not a size-1 axis")
        return np.repeat(v, repeats, axis=dim)

    return Step(f"vg.Expand.do_forward({g.names[i]}, dim={dim}, repeats={repeats})", (i,),
                lambda v: vg.Expand.do_forward(v, dim=dim, repeats=repeats), ref, x.dtype, None)


def make_join(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    stack = g.draw(st.booleans(), "stack")
    nd = x.ndim + (1 if stack else 0)
    axis = g.draw(st.integers(-nd, max(nd - 1, 0)) if not g.wild() else st.integers(-nd - 2, nd + 1), "axis")
    parts = []  # ("node", index) or ("const", array)
    for _ in range(g.draw(st.integers(0, 2), "more parts")):
        if g.mode != "grad" and g.draw(st.booleans(), "a node"):
            parts.append(("node", g.pick("part")))
        else:
            shape = list(x.shape)
            if not stack and shape and -len(shape) <= axis < len(shape) and not g.wild():
                shape[axis] = g.draw(st.sampled_from([1, 2, 0] if g.mode != "grad" else [1, 2]), "part length")
            parts.append(("const", g.constant(tuple(shape))))
    node_inputs = (i,) + tuple(p[1] for p in parts if p[0] == "node")
    dtype = result_dtype(x, *[g.nodes[p[1]] if p[0] == "node" else p[1] for p in parts])
    fn = vg.stack if stack else vg.concatenate

    def assemble(first, *others, convert):
        it = iter(others)
        items = [first]
        for kind, v in parts:
            items.append(next(it) if kind == "node" else convert(v))
        return items

    def run(*nodes):
        return fn(assemble(*nodes, convert=lambda v: v), axis)

    def ref(*arrays):
        items = assemble(*arrays, convert=lambda v: as_ref(v, dtype))
        return (np.stack if stack else np.concatenate)(items, axis=axis)

    names = [g.names[i]] + [g.names[p[1]] if p[0] == "node" else f"const{np.shape(p[1])}" for p in parts]
    return Step(f"vg.{fn.__name__}([{', '.join(names)}], axis={axis})", node_inputs, run, ref, dtype, None)


def draw_key_part(g, size, special):
    """One component of an indexing key for an axis of length `size`."""
    options = [
        st.integers(-size, size - 1) if size else st.just(0),
        st.builds(slice, st.none() | st.integers(-size - 2, size + 2), st.none() | st.integers(-size - 2, size + 2),
                  st.none() | st.sampled_from([1, 2, -1, -2] + ([0] if special else []))),
        st.just(None),
        st.lists(st.integers(-size, size - 1), min_size=0, max_size=3).map(lambda l: np.array(l, dtype=np.int64)) if size else st.just(np.zeros(0, np.int64)),
        hnp.arrays(np.bool_, (size,)),
    ]
    if special:
        options += [
            st.integers(-size - 3, size + 2),
            st.sampled_from([Ellipsis, 1.0, 2**70, "a", True, False]),
            st.lists(st.integers(-size - 2, size + 1), min_size=1, max_size=3),
            st.lists(st.integers(-size - 2, size + 1), min_size=1, max_size=3).map(
                lambda l: np.array(l, dtype=np.int32)),
            st.lists(st.floats(-2, 2), min_size=1, max_size=2).map(np.array),
            hnp.arrays(np.bool_, (size + 1,)),
        ]
    return g.draw(st.one_of(options), "key part")


def make_getitem(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    special = g.wild()
    shape = list(x.shape)
    parts = [draw_key_part(g, shape[a] if a < len(shape) else 2, special)
             for a in range(g.draw(st.integers(0, len(shape) + (1 if special else 0)), "key length"))]
    if not special:  # mostly valid: at most one array part, and no None that would shift a mask off its axis
        arrays = [k for k, p in enumerate(parts) if isinstance(p, np.ndarray)]
        parts = [slice(None) if (isinstance(p, np.ndarray) and k != arrays[0]) or (p is None and arrays) else p
                 for k, p in enumerate(parts)]
    as_tuple = len(parts) != 1 or g.draw(st.booleans(), "tuple key")
    key = tuple(parts) if as_tuple else parts[0]
    mask_node = None
    if not special and g.mode != "grad" and g.draw(st.integers(0, 7), "node mask") == 0:
        mask_node = vg.TensorNode(g.draw(hnp.arrays(np.float64, x.shape, elements=st.sampled_from([0.0, 1.0, -2.0]))))
        key = mask_node
    use_fn = g.draw(st.booleans(), "vg.getitem")
    code = f"{'vg.getitem(' + g.names[i] + ', ' + repr(key) + ')' if use_fn else g.names[i] + '[' + repr(key) + ']'}"

    def run(v):
        return vg.getitem(v, key) if use_fn else v[key]

    def ref(v):
        k = (mask_node.value != 0) if mask_node is not None else key
        return np.array(v[k])

    return Step(code, (i,), run, ref, x.dtype, None)


def draw_targets(g, n, classes, negative_ok):
    if g.wild():
        return g.draw(st.one_of(
            st.lists(st.integers(-classes - 1, classes + 1), min_size=n, max_size=n).map(lambda l: np.array(l, dtype=np.int64)),
            st.lists(st.integers(0, 3), min_size=0, max_size=n + 1).map(lambda l: np.array(l, dtype=np.int64)),
            st.just(np.zeros(n, dtype=np.float64)), st.just(np.zeros(n, dtype=bool)),
            st.just(np.zeros((n, 1), dtype=np.int64)), st.just(np.zeros(n, dtype=np.int32)),
            st.just([0] * n), st.just(None)), "wild targets")
    if classes == 0:
        return np.zeros(n, dtype=np.int64)
    lo = -classes if negative_ok else 0
    return np.array(g.draw(st.lists(st.integers(lo, classes - 1), min_size=n, max_size=n), "targets"), dtype=np.int64)


def check_targets(x, t, negative_ok, op):
    t_arr = np.asarray(t) if t is not None else None
    if t_arr is None or t_arr.dtype.kind not in "iu":
        raise Rejected(f"{op}: targets must be integers")
    if t_arr.ndim != 1 or t_arr.shape[0] != x.shape[0]:
        raise Rejected(f"{op}: one target per row")
    lo = -x.shape[1] if negative_ok else 0
    if np.any((t_arr < lo) | (t_arr >= x.shape[1])):
        raise Rejected(f"{op}: target out of range")
    return t_arr


def make_cross_entropy(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    n, classes = (x.shape + (0, 0))[:2] if x.ndim == 2 else (max(x.shape[:1] or (1,)), 2)
    which = g.draw(st.sampled_from(["cross_entropy", "select", "nll_loss"]), "loss")
    negative_ok = which != "cross_entropy"
    targets = draw_targets(g, n, classes, negative_ok)
    reduction = g.draw(st.sampled_from(["mean", "sum"] + (["none"] if g.mode != "grad" else [])), "reduction")

    def rows(v):
        require_matrix(v)
        t = check_targets(v, targets, negative_ok, which)
        return v[np.arange(v.shape[0]), t]

    if which == "cross_entropy":
        code = f"vg.cross_entropy({g.names[i]}, {targets!r}, {reduction!r})"
        run = lambda v: vg.cross_entropy(v, targets, reduction)  # noqa: E731

        def ref(v):
            require_matrix(v)
            check_targets(v, targets, False, which)
            per_row = np_logsumexp(v, 1, False) - rows(v) if v.shape[0] else np.zeros(0)
            if reduction not in ("mean", "sum"):
                raise Rejected("reduction")
            return per_row.mean() if reduction == "mean" else per_row.sum()

        def scale(v, out):
            s = 2 + np.max(np.abs(v), initial=0.0)
            return s * (1 if reduction == "mean" else max(v.shape[0], 1))

        def unspecified(v):
            # an infinite logit: logsumexp(x_i) - x_i[t] by the docs (vg.logsumexp gives inf), nan
            # by the usual log-softmax, as PyTorch; either is accepted
            return not np.all(np.isfinite(v) | np.isnan(v))
    elif which == "select":
        code, run = f"vg.Select.do_forward({g.names[i]}, indices={targets!r})", lambda v: vg.Select.do_forward(v, indices=targets)
        ref, scale = rows, None
    else:
        code, run = f"vg.nll_loss({g.names[i]}, {targets!r}, {reduction!r})", lambda v: vg.nll_loss(v, targets, reduction)

        def ref(v):
            picked = rows(v)
            if reduction not in ("mean", "sum"):
                raise Rejected("reduction")
            return -picked.mean() if reduction == "mean" else -picked.sum()

        def scale(v, out):
            return np.sum(np.abs(v)) + np.abs(out)
    return Step(code, (i,), run, ref, x.dtype, scale, unspecified=unspecified if which == "cross_entropy" else None)


def make_softmax(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    axis = g.draw(st.integers(-x.ndim, x.ndim - 1) if x.ndim and not g.wild() else st.integers(-3, 2), "axis")
    log = g.draw(st.booleans(), "log")
    fn = vg.logsoftmax if log else vg.softmax
    use_cls = axis in (-1, x.ndim - 1) and g.draw(st.booleans())
    cls = vg.LogSoftmax if log else vg.Softmax
    code = f"vg.{cls.__name__}.do_forward({g.names[i]})" if use_cls else f"vg.{fn.__name__}({g.names[i]}, axis={axis})"
    run = cls.do_forward if use_cls else (lambda v: fn(v, axis=axis))

    def ref(v):
        if v.ndim == 0:
            raise Rejected("scalar")
        if not -v.ndim <= axis < v.ndim:
            raise Rejected("axis")
        if v.size == 0:
            return v.copy()
        return np_log_softmax(v, axis) if log else np_softmax(v, axis)

    def scale(v, out):
        if log:
            return 2 + np.max(np.abs(v), axis=axis, keepdims=True, initial=0.0)
        return np.ones_like(out)

    return Step(code, (i,), run, ref, x.dtype, scale)


def make_pair_loss(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    which = g.draw(st.sampled_from(["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"]), "loss")
    if g.mode == "grad" and which == "binary_cross_entropy" and not np.all((x.value > 0.05) & (x.value < 0.95)):
        which = "binary_cross_entropy_with_logits"
    shape = x.shape if not g.wild() else g.draw(shapes(), "wild target shape")
    target = g.constant(shape, [np.float64, np.float32])
    if which != "mse_loss" and g.mode == "grad":
        target = np.clip(target / 2.0, 0.0, 1.0)
    reduction = g.draw(st.sampled_from(["mean", "sum"] + (["none"] if g.mode != "grad" else [])), "reduction")
    fn = getattr(vg, which)
    dtype = x.dtype  # the target is converted to the prediction's dtype

    def ref(p):
        t = as_ref(target, dtype)
        if p.shape != t.shape:
            raise Rejected("shapes differ")
        if reduction not in ("mean", "sum"):
            raise Rejected("reduction")
        if which == "mse_loss":
            terms = (p - t) ** 2
        elif which == "binary_cross_entropy":
            terms = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
        else:
            terms = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        return terms.mean() if reduction == "mean" else terms.sum()

    def scale(p, out):
        t = as_ref(target, dtype)
        if which == "mse_loss":
            terms = (np.abs(p) + np.abs(t)) ** 2
        elif which == "binary_cross_entropy":
            terms = 100 * (np.abs(t) + np.abs(1 - t))
        else:
            terms = 2 * np.abs(p) * (1 + np.abs(t)) + 1
        return (terms.mean() if reduction == "mean" else terms.sum()) + np.abs(out)

    def unspecified(p):
        # probabilities outside [0, 1] (or nan) have no documented loss
        return which == "binary_cross_entropy" and not np.all((p >= 0) & (p <= 1))

    code = f"vg.{which}({g.names[i]}, const{np.shape(target)}, {reduction!r})"
    return Step(code, (i,), lambda p: fn(p, target, reduction), ref, dtype, scale, unspecified=unspecified)


def make_gather(g):
    i = g.pick()
    x = g.nodes[i]
    n = x.value.size
    if g.wild():
        indices = g.draw(st.one_of(
            st.lists(st.integers(-n - 2, n + 1), max_size=4).map(lambda l: np.array(l, dtype=np.int64)),
            st.just(np.array([0.0])), st.just(np.array([True])), st.just(None)), "wild indices")
    else:
        indices = g.draw(hnp.arrays(np.int64, shapes(2, st.sampled_from([2, 1, 0])),
                                    elements=st.integers(-n, n - 1) if n else st.just(0)), "indices")
        if n == 0:
            indices = np.zeros((0,), dtype=np.int64)

    def ref(v):
        if indices is None or np.asarray(indices).dtype.kind not in "iu":
            raise Rejected("gather: integer indices")
        return v.reshape(-1)[indices]

    return Step(f"vg.Gather.do_forward({g.names[i]}, indices={indices!r})", (i,),
                lambda v: vg.Gather.do_forward(v, indices=indices), ref, x.dtype, None)


def make_setitem(g):
    """vg.setitem(x, key, v): an int, slice or Ellipsis key on the first axis; v another node (used
    when it broadcasts to the indexed shape) or a number."""
    i, j = g.pick(), g.pick("value")
    x, v = g.nodes[i], g.nodes[j]
    n = x.shape[0] if x.ndim else 0
    key = g.draw(st.one_of(st.just(Ellipsis), st.integers(-n - 1, n) if n else st.just(Ellipsis),
                           st.builds(slice, st.integers(-3, 3) | st.none(), st.integers(-3, 3) | st.none())), "key")
    number = g.draw(st.floats(-3, 3), "number")

    def indexed(a):
        return np.asarray(np.zeros(a.shape)[key])

    def fits(a, b):
        try:
            return np.broadcast_shapes(b.shape, indexed(a).shape) == indexed(a).shape
        except (ValueError, IndexError):
            return False

    use_v = fits(x.value, v.value)  # else the number: the result keeps x's dtype

    def run(a, b):
        return vg.setitem(a, key, b if use_v else number)

    def ref(a, b):
        out = a.astype(np.result_type(a, b)) if use_v else a.copy()
        try:
            out[key] = b if use_v else number
        except IndexError as e:
            raise Rejected(f"setitem: {e}") from None
        return out

    return Step(f"vg.setitem({g.names[i]}, {key!r}, {g.names[j] if use_v else repr(number)})", (i, j), run, ref,
                np.result_type(x.dtype, v.dtype) if use_v else x.dtype, None)


def make_astype(g):
    i = g.pick()
    x = g.nodes[i]
    to = g.draw(st.sampled_from(["float32", "float64"]), "dtype")
    return Step(f"vg.astype({g.names[i]}, {to!r})", (i,), lambda a: vg.astype(a, to),
                lambda a: a.astype(to), np.dtype(to), None)


def make_id(g):
    i = g.pick()
    return Step(f"vg.Id.do_forward({g.names[i]})", (i,), vg.Id.do_forward, lambda v: np.array(v), g.nodes[i].dtype, None)


def make_python_op(g):
    i = g.pick() if g.mode != "grad" else len(g.nodes) - 1
    x = g.nodes[i]
    if g.draw(st.booleans(), "Function"):
        k = g.draw(st.sampled_from([2.0, -0.5]))
        return Step(f"PyScale.apply({g.names[i]}, {k})", (i,), lambda v: PyScale.apply(v, k), lambda v: v * k, x.dtype, rel)
    return Step(f"PyTanh.do_forward({g.names[i]})", (i,), PyTanh.do_forward, np.tanh, x.dtype, rel_plus_one)


# ---- convolution and pooling ----

def image_shape(g, x):
    """A 4-d (N, C, H, W) shape for x's elements (x's own when it is 4-d), or, sometimes when wild,
    x's shape as it is, whatever its rank."""
    if x.ndim == 4 or (g.wild() and g.draw(st.booleans(), "keep the rank")):
        return x.shape
    rest, dims = x.value.size, []
    for label, options in (("N", (1, 2)), ("C", (1, 2, 3)), ("H", (1, 2, 3, 4))):
        d = g.draw(st.sampled_from([k for k in options if rest % k == 0] or [1]), label)
        dims.append(d)
        rest //= d
    return tuple(dims) + (rest,)


def as_images(shape):
    """run/ref helpers: reshape a node or an array to `shape` (a no-op when it already has it)."""
    return (lambda v: v if v.shape == shape else vg.reshape(v, shape)), (lambda a: np.reshape(a, shape))


def small_window(g, name, low, high, wild_values):
    """A window argument: an int or a pair in [low, high], sometimes (when wild) an invalid one."""
    if g.wild():
        return g.draw(st.sampled_from(wild_values), f"wild {name}")
    value = g.draw(st.one_of(st.integers(low, high), st.tuples(st.integers(low, high), st.integers(low, high))), name)
    return value


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def window_fits(shape, kernel, stride, padding, dilation=(1, 1)):
    """Whether numpy's reference accepts the window: positive stride and dilation, padding >= 0,
    and the dilated kernel within the padded input."""
    if len(shape) != 4 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(kernel) < 1:
        return False
    return all(d * (k - 1) + 1 <= n + 2 * p for d, k, n, p in zip(dilation, kernel, shape[2:], padding))


def make_conv(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    x = g.nodes[i]
    shape = image_shape(g, x)
    to_images, ref_images = as_images(shape)
    channels = shape[1] if len(shape) == 4 else 1
    groups = g.draw(st.sampled_from([d for d in (1, 2, 3) if channels % d == 0]), "groups")
    if g.wild():
        groups = g.draw(st.sampled_from([0, -1, 2, 4]), "wild groups")
    per_group = g.draw(st.sampled_from([1, 2]), "outputs per group")
    outputs = max(groups, 1) * per_group
    kernel = pair(small_window(g, "kernel", 1, 3, [1, 2, 3]))
    in_per_group = channels // groups if groups > 0 and channels % groups == 0 else channels
    if g.wild():
        in_per_group = g.draw(st.sampled_from([in_per_group, in_per_group + 1, 0]), "wild weight channels")
    w = g.constant((outputs, in_per_group) + kernel, [np.float64, np.float32])
    bias_shape = g.draw(st.sampled_from([None, (outputs,)] + ([] if g.mode == "grad" else [(outputs + 1,), (1, outputs)])))
    b = None if bias_shape is None else g.constant(bias_shape, [np.float64, np.float32])
    stride = small_window(g, "stride", 1, 2, [0, -1, (1, 0), 3])
    padding = small_window(g, "padding", 0, 1, [-1, (0, -2), 2, "valid"])
    dilation = small_window(g, "dilation", 1, 2, [0, (1, -1), 3])
    dtype = result_dtype(x, w, *([] if b is None else [b]))
    wr = as_ref(w, dtype)
    br = None if b is None else as_ref(b, dtype)

    def checked(v):
        pad_ = (0, 0) if padding == "valid" else pair(padding)
        if v.ndim != 4 or groups < 1 or v.shape[1] % groups or outputs % groups or wr.shape[1] * groups != v.shape[1]:
            raise Rejected("conv2d: shapes")
        if br is not None and br.shape != (outputs,):
            raise Rejected("conv2d: bias shape")
        if not window_fits(v.shape, kernel, pair(stride), pad_, pair(dilation)):
            raise Rejected("conv2d: window")
        return pad_

    def ref(v):
        v = ref_images(v)
        pad_ = checked(v)
        return reference.conv2d(v, wr, br, pair(stride), pad_, pair(dilation), groups)

    def scale(v, out):
        v = ref_images(v)
        pad_ = checked(v)
        return reference.conv2d(np.abs(v), np.abs(wr), None if br is None else np.abs(br), pair(stride), pad_,
                                pair(dilation), groups) + 1e-300

    def run(v):
        return vg.conv2d(to_images(v), w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    code = (f"vg.conv2d(reshape({g.names[i]}, {shape}), W{w.shape}, {'None' if b is None else f'b{b.shape}'}, "
            f"stride={stride!r}, padding={padding!r}, dilation={dilation!r}, groups={groups})")
    return Step(code, (i,), run, ref, dtype, scale)


def make_pool(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    x = g.nodes[i]
    shape = image_shape(g, x)
    to_images, ref_images = as_images(shape)
    which = g.draw(st.sampled_from(["max", "avg", "adaptive"]), "pool")
    if which == "adaptive":
        size = g.draw(st.one_of(st.integers(0 if g.mode != "grad" else 1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)),
                                st.just((None, 2))), "output_size")
        if g.wild():
            size = g.draw(st.sampled_from([-1, (2, -1), (1, 2, 3)]), "wild output_size")

        def resolved(v):
            if v.ndim != 4 or (isinstance(size, tuple) and len(size) != 2):
                raise Rejected("adaptive_avg_pool2d: shapes")
            out = tuple(v.shape[2 + a] if s is None else s for a, s in enumerate(pair(size)))
            if min(out) < 0 or any(v.shape[2 + a] == 0 and out[a] > 0 for a in (0, 1)):
                raise Rejected("adaptive_avg_pool2d: size")
            return out

        def ref(v):
            v = ref_images(v)
            return reference.adaptive_avg_pool2d(v, resolved(v))

        code = f"vg.adaptive_avg_pool2d(reshape({g.names[i]}, {shape}), {size!r})"
        return Step(code, (i,), lambda v: vg.adaptive_avg_pool2d(to_images(v), size), ref, x.dtype,
                    lambda v, out: np.abs(out) + np.max(np.abs(v), initial=0.0))
    kernel = small_window(g, "kernel_size", 1, 3, [0, (2, -1)])
    stride = None if g.draw(st.booleans(), "default stride") else small_window(g, "stride", 1, 2, [0, (-1, 1)])
    padding = small_window(g, "padding", 0, 1, [-1, 2, (0, 3)])
    ceil_mode = g.draw(st.booleans(), "ceil_mode")
    k = pair(kernel)
    s_ = k if stride is None else pair(stride)
    p_ = pair(padding)
    if which == "max":
        dilation = small_window(g, "dilation", 1, 2, [0, (1, -1)])
        d_ = pair(dilation)

        def ref(v):
            v = ref_images(v)
            if not window_fits(v.shape, k, s_, p_, d_) or any(p > (d * (kk - 1) + 1) // 2 for p, d, kk in zip(p_, d_, k)):
                raise Rejected("max_pool2d: window")
            return reference.max_pool2d(v, k, s_, p_, d_, ceil_mode)

        code = (f"vg.max_pool2d(reshape({g.names[i]}, {shape}), {kernel!r}, {stride!r}, {padding!r}, {dilation!r}, "
                f"ceil_mode={ceil_mode})")
        return Step(code, (i,), lambda v: vg.max_pool2d(to_images(v), kernel, stride, padding, dilation, ceil_mode),
                    ref, x.dtype, None)
    count_include_pad = g.draw(st.booleans(), "count_include_pad")
    divisor = g.draw(st.sampled_from([None, None, 2]), "divisor_override")

    def ref(v):
        v = ref_images(v)
        if not window_fits(v.shape, k, s_, p_) or any(p > kk // 2 for p, kk in zip(p_, k)):
            raise Rejected("avg_pool2d: window")
        return reference.avg_pool2d(v, k, s_, p_, ceil_mode, count_include_pad, divisor)

    def scale(v, out):
        return np.abs(out) + np.max(np.abs(v), initial=0.0)

    code = (f"vg.avg_pool2d(reshape({g.names[i]}, {shape}), {kernel!r}, {stride!r}, {padding!r}, ceil_mode={ceil_mode}, "
            f"count_include_pad={count_include_pad}, divisor_override={divisor})")
    return Step(code, (i,), lambda v: vg.avg_pool2d(to_images(v), kernel, stride, padding, ceil_mode, count_include_pad,
                                                    divisor), ref, x.dtype, scale)


def make_pad(g):
    i = len(g.nodes) - 1 if g.mode == "grad" else g.pick()
    x = g.nodes[i]
    pairs = g.draw(st.integers(0, x.ndim), "padded axes")
    amounts = g.draw(st.lists(st.integers(-1 if g.mode != "grad" else 0, 2), min_size=2 * pairs, max_size=2 * pairs), "pad")
    if g.wild():
        amounts = g.draw(st.sampled_from([amounts + [1], [1] * (2 * x.ndim + 2), [-5, -5], amounts]), "wild pad")
    value = g.draw(st.sampled_from([None, 0.5, -2.0]) if g.mode == "grad" else st.sampled_from([None, 1.5, np.inf, np.nan]),
                   "value")

    def ref(v):
        if len(amounts) % 2 or len(amounts) // 2 > v.ndim:
            raise Rejected("pad: amounts")
        for k in range(len(amounts) // 2):
            if v.shape[v.ndim - 1 - k] + amounts[2 * k] + amounts[2 * k + 1] < 0:
                raise Rejected("pad: negative size")
        return reference.pad(v, amounts, 0.0 if value is None else value)

    return Step(f"vg.pad({g.names[i]}, {amounts!r}, value={value!r})", (i,), lambda v: vg.pad(v, amounts, value=value),
                ref, x.dtype, None)


INPLACE = {"+=": (vg.add, np.add), "-=": (vg.subtract, np.subtract), "*=": (vg.multiply, np.multiply),
           "/=": (vg.divide, np.divide)}


def make_inplace(g):
    """x += y (and -=, *=, /=): in place on a leaf (bumping its version), a new node on a node made
    by an op, refused on a leaf that requires grad outside no_grad (docs: README's autograd rules)."""
    symbol = g.draw(st.sampled_from(sorted(INPLACE)), "in-place op")
    fn, ref = INPLACE[symbol]
    i = g.pick()
    x = g.nodes[i]
    kind = g.draw(st.sampled_from(["node", "array", "scalar"]), "operand")
    j = g.pick("operand") if kind == "node" else None
    other = g.nodes[j] if j is not None else (g.constant(g.compatible_shape(x.shape)) if kind == "array" else g.scalar())
    quiet = g.draw(st.booleans(), "inside no_grad")
    promoted = result_dtype(x, other)
    other_in_graph = j is not None and other.requires_grad and not quiet
    new_node = x.source is not None or other_in_graph
    refused = not new_node and x.requires_grad and not quiet
    const = None if j is not None else as_ref(other, promoted)

    def run(a, b=None):
        b = other if b is None else b
        if quiet:
            with vg.no_grad():
                a = OPERATORS_INPLACE[symbol](a, b)
        else:
            a = OPERATORS_INPLACE[symbol](a, b)
        return a

    def reference(a, b=None):
        b = const if b is None else b
        if refused:
            raise Rejected("in-place on a leaf that requires grad")
        out = ref(a.astype(promoted), b)
        if new_node:
            return out
        if out.shape != a.shape:
            raise Rejected("in-place result does not fit")
        return out.astype(x.dtype)

    g.changed_in_place |= not new_node
    text = g.names[j] if j is not None else repr(other)
    code = f"{'with vg.no_grad(): ' if quiet else ''}{g.names[i]} {symbol} {text}"
    return Step(code, (i,) if j is None else (i, j), run, reference, promoted if new_node else x.dtype,
                lambda *a: np.abs(a[-1]) + np.abs(a[0]), ref_dtype=promoted, allowed=ALLOWED + (RuntimeError,))


OPERATORS_INPLACE = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv}


MAKERS = [make_unary, make_unary, make_binary, make_binary, make_leaky_relu, make_clip, make_reduction, make_var,
          make_matmul, make_linear, make_row_op, make_reshape, make_transpose, make_squeeze, make_unsqueeze,
          make_broadcast_to, make_expand, make_join, make_getitem, make_getitem, make_cross_entropy, make_softmax,
          make_pair_loss, make_gather, make_setitem, make_astype, make_id, make_python_op, make_inplace, make_conv, make_pool, make_pad]

GRAD_MAKERS = [make_unary, make_unary, make_binary, make_binary, make_leaky_relu, make_clip, make_reduction, make_var,
               make_matmul, make_linear, make_row_op, make_reshape, make_transpose, make_squeeze, make_unsqueeze,
               make_broadcast_to, make_expand, make_join, make_getitem, make_cross_entropy, make_softmax,
               make_pair_loss, make_id, make_python_op, make_conv, make_pool, make_pad]

# The engine ops each maker applies (by their rows' names): together, every row of the table, which
# test_fuzz_applies_every_op_of_the_engine checks.
COVERS = {
    make_unary: {r.native for r in vg.ops.OPS if r.kind == vg.ops.UNARY},
    make_binary: {cls._native for _, _, cls, _, _ in BINARY},
    make_leaky_relu: {"leaky_relu"}, make_clip: {"clip"},
    make_reduction: {cls._native for _, cls, _, _ in REDUCTIONS}, make_var: {"var"},
    make_matmul: {"matmul"}, make_linear: {"linear", "batch_mm"},
    make_row_op: {"row_sum", "row_max", "normalize"},
    make_reshape: {"reshape"}, make_transpose: {"transpose"}, make_squeeze: {"squeeze"},
    make_unsqueeze: {"unsqueeze"}, make_broadcast_to: {"broadcast_to"}, make_expand: {"expand"},
    make_join: {"concatenate"}, make_getitem: {"getitem", "gather"},
    make_cross_entropy: {"cross_entropy", "select"}, make_softmax: {"softmax", "log_softmax"},
    make_pair_loss: {"mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"},
    make_gather: {"gather"}, make_setitem: {"setitem"}, make_astype: {"astype"}, make_id: {"id"},
    make_conv: {"conv2d"}, make_pool: {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"}, make_pad: {"pad"},
}


def test_fuzz_applies_every_op_of_the_engine():
    engine = {row["name"] for row in vg._core.op_table()}
    assert set(MAKERS) - {make_python_op, make_inplace} == set(COVERS)
    assert set().union(*COVERS.values()) == engine


def build(data, mode):
    g = Graph(data, mode)
    for _ in range(data.draw(st.integers(1, 3), "leaves")):
        g.add_leaf()
    makers = GRAD_MAKERS if mode == "grad" else MAKERS
    for _ in range(data.draw(st.one_of(st.integers(1, 6), st.integers(3, 6)), "depth")):
        maker = data.draw(st.sampled_from(makers), "op")
        step = maker(g)
        if step is not None:
            g.run(step)
    COUNTS["graphs"] += 1
    return g


def backward_smoke(g):
    """Backward from the last node that needs a gradient, whatever its values (nan, inf, empty,
    float32): no exception, and every leaf that requires grad gets a gradient of its shape and dtype."""
    wanted = [n for n in g.nodes[g.leaves:] if n.requires_grad]
    if not wanted:
        return
    last = wanted[-1]
    weights = np.linspace(-1, 1, last.value.size).reshape(last.shape)
    g.lines.append(f"vg.sum(last * weights).backward(retain_graph=True), twice  # last: {last!r}")
    loss = vg.sum(last * weights)
    COUNTS["backward"] += 1
    try:
        loss.backward(retain_graph=True)
    except RuntimeError as e:  # documented: a value the backward needs was changed in place
        assert g.changed_in_place and "modified in place" in str(e), "\n    ".join(g.lines + [repr(e)])
        return
    leaves = [n for n in g.nodes[:g.leaves] if n.requires_grad]
    first = [leaf.grad.copy() for leaf in leaves]
    loss.backward()  # accumulates: twice the first gradients
    for k, (leaf, grad) in enumerate(zip(leaves, first)):
        where = "\n    ".join(g.lines)
        assert grad.shape == leaf.shape and grad.dtype == leaf.dtype, f"leaf {k}: gradient {grad.shape} {grad.dtype}\n    {where}"
        twice = 2.0 * grad.astype(np.float64)  # the second backward adds its terms one by one: rounding differs
        finite = np.isfinite(twice) & np.isfinite(leaf.grad)
        close = np.isclose(leaf.grad, twice, rtol=TOL[leaf.grad.dtype] * 10, atol=0)
        assert np.all(close | ~finite), f"leaf {k}: a second backward added something else\n    {where}"


@FUZZ
@given(st.data())
def test_random_graphs_match_numpy_or_raise_a_python_error(data):
    g = build(data, "forward")
    backward_smoke(g)


# ---- gradients ----

def finite_difference_check(g, leaves, weights, analytic, h=1e-6):
    """Compares backward's gradients of sum(last node * weights) with central differences, element
    by element; skips elements where the one-sided differences disagree (a kink or a tie within h).

    Differences are taken element-wise on the last node's values before weighting and summing, so
    large values elsewhere in the node add no rounding noise to them."""
    arrays = [leaf.value.copy() for leaf in leaves]

    def last_value():
        with vg.no_grad():
            return g.replay([vg.TensorNode(v, requires_grad=False) for v in arrays])[-1].value.copy()

    def slope(a, b, step):
        return float(np.sum((a - b) * weights)) / step

    v0 = last_value()
    for k, (a, grad) in enumerate(zip(arrays, analytic)):
        for idx in np.ndindex(a.shape):
            original = a[idx]
            a[idx] = original + h
            up = last_value()
            a[idx] = original - h
            down = last_value()
            a[idx] = original
            forward_diff, backward_diff, central = slope(up, v0, h), slope(v0, down, h), slope(up, down, 2 * h)
            if not np.isfinite(central) or abs(forward_diff - backward_diff) > 1e-3 * (1 + abs(central)):
                COUNTS["fd_kinks"] += 1
                continue
            COUNTS["fd_compared"] += 1
            err = abs(grad[idx] - central)
            assert err <= 1e-5 + 1e-3 * abs(central) + abs(forward_diff - backward_diff), (
                f"gradient of leaf n{k} at {idx}: backward {grad[idx]!r}, finite differences {central!r}\n  graph:\n    "
                + "\n    ".join(g.lines))


@GRAD
@given(st.data())
def test_random_graph_gradients_match_finite_differences(data):
    g = build(data, "grad")
    leaves = g.nodes[:g.leaves]
    last = g.nodes[-1]
    if not all(np.all(np.isfinite(n.value)) for n in g.nodes) or last.value.size == 0:
        return
    weights = np.random.default_rng(len(g.lines)).standard_normal(last.shape)
    loss = vg.sum(last * weights)
    g.lines.append("loss = vg.sum(last * weights); loss.backward()")
    COUNTS["backward"] += 1
    loss.backward()  # a valid graph: any exception here is a failure
    analytic = []
    for k, leaf in enumerate(leaves):
        grad = leaf.grad
        assert grad.shape == leaf.shape and grad.dtype == leaf.dtype, f"leaf n{k}: gradient {grad.shape} {grad.dtype}"
        analytic.append(grad.copy())
    finite_difference_check(g, leaves, weights, analytic)


# ---- cases that may crash the interpreter run in a child process ----

HUGE = [
    (274177, 67280421310721),      # 2**64 + 1 elements: the count wraps to 1
    (2**31, 2**31),                # 2**62 elements: 2**65 bytes wraps to 0
    (2**32, 2**32),                # 2**64 elements: the count wraps to 0
    (3037000500, 3037000500),      # just above 2**63: the count wraps negative
    (2**62,), (2**40,), (2**20, 2**20, 2**20), (67280421310721, 3),
]


def make_huge(g):
    """Shapes whose element count is far too large for memory or overflows 64 bits (never small
    enough that an allocation could succeed: the child also runs under a 4 GB address-space limit)."""
    i = g.pick()
    x = g.nodes[i]
    dims = g.draw(st.sampled_from(HUGE), "huge shape")
    which = g.draw(st.sampled_from(["broadcast_to", "reshape", "expand", "strided", "unsqueeze_expand"]), "huge op")
    if which == "broadcast_to":
        target = dims + x.shape
        code, run = f"vg.broadcast_to({g.names[i]}, {target})", lambda v: vg.broadcast_to(v, target)
    elif which == "reshape":
        code, run = f"vg.reshape({g.names[i]}, {dims}).T", lambda v: vg.reshape(v, dims).T
    elif which == "expand":
        code, run = (f"vg.Expand.do_forward(vg.unsqueeze({g.names[i]}, 0), dim=0, repeats={dims[0]})",
                     lambda v: vg.Expand.do_forward(vg.unsqueeze(v, 0), dim=0, repeats=dims[0]))
    elif which == "strided":
        strides = [0] * len(dims)
        code = f"vg.GetItem.do_forward({g.names[i]}, offset=0, shape={dims}, strides={strides})"
        run = lambda v: vg.GetItem.do_forward(v, offset=0, shape=dims, strides=strides)  # noqa: E731
    else:
        code = f"{g.names[i]}[None].expand({dims[0]}, *{g.names[i]}.shape)"
        run = lambda v: v[None].expand(dims[0], *v.shape)  # noqa: E731

    def ref(v):
        raise Rejected("too large")  # numpy: ValueError (too big) or MemoryError

    return Step(code, (i,), run, ref, x.dtype, None)


RISKY = settings(max_examples=RISKY_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@RISKY
@given(st.data())
def risky_graphs(data):
    """The fuzz body with out-of-range views and huge shapes (run by the test below in a child)."""
    g = Graph(data, "risky")
    for _ in range(data.draw(st.integers(1, 2), "leaves")):
        g.add_leaf()
    for _ in range(data.draw(st.integers(1, 4), "depth")):
        maker = data.draw(st.sampled_from(MAKERS + [make_huge] * 6), "op")
        step = maker(g)
        if step is None:
            continue
        g.say(step.code)
        try:  # values and exception types are the in-process tests' business; here only crashes count
            out = step.run(*[g.nodes[i] for i in step.inputs])
        except Exception:
            continue
        if maker is make_huge:
            count = math.prod(out.shape)  # exact: Python integers do not wrap
            assert count < 2**40, f"{step.code}: returned a node of shape {out.shape}, {count} elements"
        elif isinstance(out, vg.TensorNode):
            g.nodes.append(out)
            g.names.append(f"n{len(g.nodes) - 1}")


SANITIZED = os.environ.get("TAPEGRAD_SANITIZED") == "1"  # .ci/run's AddressSanitizer stage


def limit_memory():
    """In the child: allocations above 4 GB fail at once instead of swapping the machine."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def run_child(code, timeout=300):
    tests = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONFAULTHANDLER="1", OPENBLAS_NUM_THREADS="1")
    if SANITIZED:  # ASan maps terabytes of shadow memory (no address-space limit) and must let a huge malloc fail
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tests, env=env, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=None if SANITIZED else limit_memory)


@pytest.mark.skipif(SANITIZED, reason="without an address-space limit (ASan needs none) huge but valid shapes "
                    "allocate for real and the OOM killer ends the child; the normal stage runs this")
def test_risky_graphs_never_crash_the_interpreter():
    result = run_child(f"""
        import test_fuzz
        test_fuzz.risky_graphs()
        print("risky graphs:", {RISKY_EXAMPLES})
    """)
    COUNTS["risky"] += RISKY_EXAMPLES if result.returncode == 0 else 0
    lines = (result.stderr or "").strip().splitlines()
    fatal = next((k for k, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
    if fatal is not None:  # the graph being built when the interpreter died, then faulthandler's verdict
        graph = [line for line in lines[:fatal] if not line.startswith(("  ", "Traceback", "/"))][-10:]
        assert False, (f"the interpreter died with signal {-result.returncode} while running the last line of:\n"
                       + "\n".join(graph + lines[fatal:fatal + 2]))
    tail = "\n".join(lines[-25:])
    assert result.returncode >= 0, f"the interpreter died with signal {-result.returncode}; last lines:\n{tail}"
    assert result.returncode == 0, f"risky graphs failed:\n{tail}"


# ---- the crashes and wrong results the fuzz found, as plain regressions ----

CRASHES = {
    "broadcast_to a shape whose element count overflows":
        "vg.broadcast_to(vg.TensorNode(np.ones((1, 1))), (274177, 67280421310721))",
    "broadcast_to a shape of 2**62 elements":
        "vg.broadcast_to(vg.TensorNode(np.ones((1, 1))), (2**31, 2**31))",
    "reshape to an overflowing shape, then transpose":
        "vg.reshape(vg.TensorNode(np.ones(1)), (274177, 67280421310721)).T",
    "Expand to an overflowing shape":
        "vg.Expand.do_forward(vg.TensorNode(np.ones((1, 274177))), dim=0, repeats=67280421310721)",
    "GetItem with a view of an overflowing shape":
        "vg.GetItem.do_forward(vg.TensorNode(np.ones(3)), offset=0, shape=(274177, 67280421310721), strides=[0, 0])",
}


@pytest.mark.parametrize("snippet", list(CRASHES.values()), ids=list(CRASHES))
def test_huge_shapes_raise_instead_of_crashing(snippet):
    result = run_child(f"""
        import numpy as np, tapegrad as vg
        try:
            {snippet}
        except (ValueError, MemoryError) as e:
            print("raised", type(e).__name__, e)
        else:
            raise SystemExit("returned a value")
    """, timeout=120)
    assert result.returncode >= 0, f"{snippet}: the interpreter died with signal {-result.returncode}"
    assert result.returncode == 0 and "raised" in result.stdout, f"{snippet}: {result.stdout}{result.stderr[-2000:]}"


def test_reshape_refuses_a_shape_whose_element_count_overflows():
    x = vg.TensorNode(np.ones(1))
    with pytest.raises(ValueError):
        vg.reshape(x, (274177, 67280421310721))  # 274177 * 67280421310721 = 2**64 + 1


def test_var_with_ddof_above_the_count_is_inf_or_nan_as_numpy_not_negative():
    x = np.array([1.0, 2.0, 4.0])
    with np.errstate(all="ignore"):
        expected = np.var(x, ddof=5)  # numpy divides by max(N - ddof, 0)
    got = vg.var(vg.TensorNode(x), ddof=5).value
    assert np.array_equal(got, expected, equal_nan=True), f"var(ddof=5) gave {got}, numpy {expected}"


def test_reduction_axis_must_be_an_integer_as_in_numpy():
    x = vg.TensorNode(np.ones((2, 3)))
    with pytest.raises(TypeError):
        vg.sum(x, axis=1.5)  # numpy: TypeError; silently reducing over axis 1 hides the mistake


def test_numpy_float64_scalar_promotes_the_same_through_operator_and_function():
    x = vg.TensorNode(np.ones(2, dtype=np.float32))
    assert vg.add(x, np.float64(2)).dtype == (x + np.float64(2)).dtype == np.float64  # numpy: float64


PACKET_VALUES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, 20.0, -20.0, 88.8, -88.8, 710.0, -710.0, -745.2,
                 1e308, -1e308, 3e38, 1e-30, 1e-40, 1e-310, -1e-310, 5e-324]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn, ref", [(row[0], row[3]) for row in UNARY], ids=[row[0].__name__ for row in UNARY])
def test_unary_ops_match_numpy_on_special_values_in_full_simd_packets(fn, ref, dtype):
    # 64 copies of each value fill whole SIMD packets (the fuzz's small arrays mostly take the
    # scalar path). Each value: numpy's result within 4 ulps; where numpy's result is subnormal, 0
    # is accepted too (flush to zero), and for a subnormal input, the result at 0 (denormals as 0).
    problems = []
    tiny = np.finfo(dtype).tiny
    with np.errstate(all="ignore"):
        for v in PACKET_VALUES:
            x = np.full(64, v).astype(dtype)
            got = fn(vg.TensorNode(x)).value
            want = np.asarray(ref(x.astype(np.float64))).astype(dtype)
            at_zero = np.asarray(ref(np.zeros(64))).astype(dtype)
            ulps = 4 * np.spacing(np.abs(want).astype(dtype))
            ok = (got == want) | (np.isnan(got) & np.isnan(want)) | (np.abs(got - want) <= ulps)
            ok |= (np.abs(want) < tiny) & (got == 0)
            if 0 < abs(x[0]) < tiny:
                ok |= (got == at_zero) | (np.isnan(got) & np.isnan(at_zero))
            if not ok.all():
                problems.append(f"{fn.__name__}({x[0]!r}) = {got[~ok][0]!r}, numpy {want[~ok][0]!r}")
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("exponent", [0.5, np.float32(0.5), np.array(0.5), np.array([[0.5]]), np.full(6, 0.5), 0.3, 2])
def test_power_of_infinities_and_signed_zeros_is_numpys(exponent):
    # Found by the fuzzing: numpy takes a one-element exponent of 0.5 as sqrt, so (-inf) ** 0.5 is
    # nan and (-0.0) ** 0.5 is -0.0, while an exponent array of 0.5s goes through power (inf, 0.0).
    x = np.array([-np.inf, -0.0, 4.0, -4.0, np.inf, 0.0])
    with np.errstate(invalid="ignore"):
        want = x ** exponent
    got = (vg.TensorNode(x, requires_grad=False) ** exponent).value
    assert np.array_equal(got, want, equal_nan=True) and np.array_equal(np.signbit(got), np.signbit(want)), (got, want)
