"""Differential tests against PyTorch: every public function, seeded random cases, float32 and float64.

Runs when torch is importable (the ``torch`` extra; without it the module is skipped). Each case
draws inputs of random shapes (0-d, size-0 and size-1 axes, broadcasting, float32 meeting
float64, Python floats), in a third of the cases with special values (nan, +-inf, +-0.0, +-1e30,
subnormals, values where exp overflows), calls the function through tapegrad's public API and
torch's, then runs backward from ``sum(out * W)`` with the same random weights W, and compares:

- the output's dtype (numpy's promotion, which tapegrad follows: torch computes on inputs cast to
  that dtype) and shape, and its values;
- each leaf's gradient: dtype (the leaf's), shape and values;
- where torch raises (a max over an empty axis ...), tapegrad must raise ValueError, IndexError
  or TypeError, and the other way round.

``close`` compares: nan where torch has nan, the same infinity where torch has one, otherwise
``|tapegrad - torch| <= ulps * eps * |torch| + slack * eps * scale + 4 * smallest subnormal``, eps
the dtype's machine epsilon (the floor lets subnormals compare too). Per function (its ``Tol``):

- exact, the sign of zero included: +, -, *, /, comparisons, negative, abs, square, relu, the
  shape ops, indexing, max/min reductions (maximum/minimum too, but max(-0.0, 0.0) is 0.0 in
  tapegrad as IEEE 754-2019 says and the first operand in torch);
- 4 ulps: exp, log, sqrt, sigmoid, tanh, softplus, power, leaky_relu, clip (vectorised kernels and
  torch's round transcendental functions differently);
- sums of products (sum, mean, nll_loss, broadcast_to and indexing with repeats, the gradients of
  broadcasting ops; matmul and linear): slack 2 (8 for the GEMMs), scale the same computation on
  |inputs| and |W| in float64, i.e. the sum of the absolute values of each element's terms;
- the rest (logsumexp, var, softmax, log_softmax, cross_entropy, mse_loss, the binary
  cross-entropies, Normalize, and the gradients of power, sigmoid and tanh): 4 ulps plus slack 4-8
  times a scale written beside each function from where its rounding errors come from.

Elements whose terms overflow the dtype (1e30 * 1e30 in float32) are not compared: inf, -inf or
nan then depends on the order of the sum. The summary line at the end gives the largest error seen
as a fraction of its tolerance (0.5-0.6 for the sums, less elsewhere).

Conventions where tapegrad differs from torch on purpose, not compared: the gradient of max/min
at ties (tapegrad's goes to the first arg-max, docs/ops.md), gradients at nan inputs of piecewise
functions (abs, relu, maximum, minimum), power's exponent gradient where the base is 0 (docs/ops.md:
0; torch: inf for negative exponents), binary_cross_entropy's gradients where a clamp decides (torch
divides by max(p (1 - p), 1e-12) and does not clamp the target's gradient), infinite logits in
binary_cross_entropy_with_logits (neither gives the limit everywhere), integer inputs (tapegrad
converts them to float64 as numpy does), negative slice steps (torch has none), an int beside an
index array in a key (numpy and torch place the result axes differently). torch's softplus returns
x above 20; the reference is the exact logaddexp(x, 0).

A mismatch fails the test with the case and a ``reproduce(...)`` call. A case that hits one of the
defects issue 13 lists (items 6, 7, 9 show up in random cases) or one found here is tallied as
known in the summary instead; every known defect also has a deterministic test at the end marked
``xfail(strict=True)`` with its item, so fixing it makes that test fail until the marker and the
``known`` predicate go.

Threads: several threads run the same cases (and large ones whose kernels run without the GIL) at
once, in orders of their own, and must give exactly what one thread gives; the same cases placed
at other buffer alignments must too.

Matrix products and optimiser steps run with IEEE subnormals here (``vg.set_flush_denormal(False)``),
as torch's do by default; tests/test_flush.py covers the default flushing mode.

The default run takes ``CASES`` = 40 cases per function and dtype (about 15 s on 2 cores); a long
campaign sets the count:

    TAPEGRAD_DIFF_CASES=2500 python -m pytest tests/test_differential.py -q

The summary line (cases, elements compared, known defects seen, margins) shows with plain ``-q``.
"""

import math
import os
import threading
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import tapegrad as vg  # noqa: E402
from helpers import print_summary  # noqa: E402
from reference import reduce_to_shape  # noqa: E402

CASES = int(os.environ.get("TAPEGRAD_DIFF_CASES", "40"))
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [F32, F64]
TORCH = {F32: torch.float32, F64: torch.float64}
NUMPY = {torch.float32: F32, torch.float64: F64, torch.bool: np.dtype(bool), torch.int64: np.dtype(np.int64)}

COUNTS = Counter()
KNOWN_SEEN = Counter()
MARGINS = Counter()  # (function, dtype, part) -> the largest error seen, as a fraction of the tolerance


@pytest.fixture(scope="module", autouse=True)
def ieee_subnormals():
    """The comparison is with torch as installed, which keeps IEEE subnormals, so tapegrad runs with
    vg.set_flush_denormal(False) here. Its default flushes them in matrix products and optimiser
    steps (a subnormal times inf is then nan, not inf; docs/errors.md); tests/test_flush.py pins that
    mode's results, and the element-wise ops, which never flush, are compared here either way."""
    vg.set_flush_denormal(False)
    yield
    vg.set_flush_denormal(True)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Prints how many cases ran once the module is done (through the terminal reporter, so it
    shows with plain `pytest -q`)."""
    yield
    known = ", ".join(f"{k}: {v}" for k, v in sorted(KNOWN_SEEN.items())) or "none"
    line = (f"differential: {COUNTS['cases']} cases against torch {torch.__version__} ({COUNTS['raised']} raised "
            f"in both), {COUNTS['values']} values and {COUNTS['grads']} gradient elements compared "
            f"({COUNTS['special']} cases with special values), {COUNTS['thread cases']} cases run in "
            f"{THREADS} threads at once, {COUNTS['placements']} runs at other buffer alignments; "
            f"known defects seen: {known}; closest to the tolerance: "
            + ", ".join(f"{' '.join(k)} at {v:.2f} of it" for k, v in MARGINS.most_common(4)))
    print_summary(request, line)


# ---- drawing inputs ----

DIMS = np.array([0, 1, 2, 3, 4, 5, 7])
DIM_P = np.array([0.06, 0.22, 0.22, 0.2, 0.12, 0.1, 0.08])


def draw_shape(rng, ndim=None, min_ndim=0, max_size=150):
    """A shape of 0-4 axes (size-0 axes 6% of the time, size-1 axes 22%) of at most max_size elements."""
    if ndim is None:
        ndim = max(min_ndim, int(rng.choice(5, p=[0.1, 0.3, 0.3, 0.2, 0.1])))
    for _ in range(100):
        shape = tuple(int(d) for d in rng.choice(DIMS, size=ndim, p=DIM_P))
        if math.prod(shape) <= max_size:
            return shape
    return (1,) * ndim


def broadcast_pair(rng):
    """Two shapes that broadcast: each a suffix of one shape with some axes set to 1."""
    full = draw_shape(rng)

    def operand():
        shape = list(full[len(full) - int(rng.integers(0, len(full) + 1)):])
        return tuple(1 if rng.random() < 0.3 else d for d in shape)

    a, b = operand(), operand()
    if rng.random() < 0.4:
        a = full
    return (a, b) if rng.random() < 0.5 else (b, a)


def special_values(dtype, domain):
    """Values where implementations part ways, per input domain."""
    f = np.finfo(dtype)
    sub, tiny, eps = float(f.smallest_subnormal), float(f.tiny), float(f.eps)
    edge = math.log(float(f.max))  # exp overflows just above this
    if domain in ("real", "finite"):
        values = [np.nan, 0.0, -0.0, 1e30, -1e30, sub, -sub, 7 * sub, tiny, -1e-30, edge + 0.5, edge - 0.5,
                  -edge - 20, 30.0, -30.0]
        return values + ([np.inf, -np.inf] if domain == "real" else [])
    if domain == "positive":
        return [np.nan, np.inf, 0.0, -0.0, 1e30, sub, 7 * sub, tiny, 1e-30, -1.0]
    if domain == "probability":
        return [0.0, 1.0, sub, tiny, 1e-30, 1 - eps, eps]
    if domain == "target":
        return [0.0, 1.0]
    return []


def distinct(rng, shape):
    """Values at least 0.27 apart, so that a max or min has no ties."""
    n = math.prod(shape)
    return (rng.permutation(n) * 0.37 + rng.uniform(0.0, 0.1, n) - 0.18 * n).reshape(shape)


DOMAINS = {
    "real": lambda rng, shape: rng.standard_normal(shape) * rng.choice([1.0, 1.0, 1.0, 3.0, 0.01, 100.0]),
    "finite": lambda rng, shape: rng.standard_normal(shape) * rng.choice([1.0, 1.0, 1.0, 3.0, 0.01, 100.0]),
    "positive": lambda rng, shape: rng.uniform(0.1, 3.0, shape),
    "probability": lambda rng, shape: rng.uniform(0.02, 0.98, shape),
    "target": lambda rng, shape: rng.uniform(0.0, 1.0, shape) if rng.random() < 0.5 else
    rng.integers(0, 2, shape).astype(float),
    "distinct": distinct,
}


def special_rate(rng):
    """A third of the cases get special values, in 10%, 30% or all of their elements."""
    return float(rng.choice([0.1, 0.3, 1.0])) if rng.random() < 0.33 else 0.0


def draw_values(rng, shape, dtype, domain="real", rate=0.0):
    x = np.asarray(DOMAINS[domain](rng, shape), dtype=np.float64)
    specials = special_values(dtype, domain)
    if rate and x.size and specials:
        x = np.where(rng.random(shape) < rate, rng.choice(specials, size=shape), x)
    return x.astype(dtype)


LEAF, DATA, ARRAY, SCALAR = "leaf", "data", "array", "scalar"


@dataclass
class Case:
    """The inputs of one call: arrays, and how each is passed (a leaf that requires grad, a
    TensorNode without grad, a raw numpy array, or a Python float), plus keyword parameters."""
    arrays: list
    kinds: list
    params: dict = field(default_factory=dict)
    special: bool = False

    def describe(self):
        parts = []
        for a, kind in zip(self.arrays, self.kinds):
            a = np.asarray(a)
            text = np.array2string(a.reshape(-1), precision=17, separator=", ", threshold=12, edgeitems=3,
                                   max_line_width=10**6)
            parts.append(f"{kind} {a.dtype} {a.shape} {text}")
        return "; ".join(parts) + (f"; params {self.params}" if self.params else "")


@dataclass(frozen=True)
class Tol:
    """|tapegrad - torch| <= ulps * eps * |torch| + slack * eps * scale (see the module docstring)."""
    ulps: float = 0.0
    slack: float = 0.0
    signed_zero: bool = True


EXACT = Tol()
ULPS = Tol(ulps=4, signed_zero=False)
GRAD_EXACT = Tol(signed_zero=False)  # the sign of a zero gradient (g * 0 with g < 0) means nothing
GRAD_SUM = Tol(slack=2, signed_zero=False)


@dataclass
class Spec:
    """One public function: how to draw its inputs, call it in tapegrad and in torch, and compare."""
    name: str
    draw: Callable  # (rng, dtype) -> Case
    tg: Callable  # (inputs, **params) -> TensorNode
    th: Callable  # (tensors, result dtype, **params) -> torch tensor
    value_tol: Tol = EXACT
    grad_tol: Tol = EXACT
    differentiable: bool = True
    linear: bool = False  # scale: the same function on |inputs| and |W| (sums of products)
    abs_th: Optional[Callable] = None  # the function to evaluate on |inputs| when it is not th
    scale: Optional[Callable] = None  # (case, W, value) -> (value scale, [grad scales]) when not linear
    grad_skip: Optional[Callable] = None  # (case) -> per leaf, a mask of gradient elements not compared
    known: Optional[Callable] = None  # (case, dtype) -> "item N: ..." where a listed defect applies


# ---- running a case in both libraries ----

def result_dtype(case):
    """numpy's promotion of the inputs (Python floats are weak), which tapegrad follows."""
    typed = [a for a, kind in zip(case.arrays, case.kinds) if kind != SCALAR]
    return np.result_type(*typed)


def cast(t, dtype):
    """A tensor in the result dtype; a Python float becomes a 0-d tensor (torch's functions
    want tensors, and a 0-d tensor does not change the dtype of the other operand)."""
    return t.to(TORCH[dtype]) if isinstance(t, torch.Tensor) else torch.tensor(t, dtype=TORCH[dtype])


def run_tapegrad(spec, case, weights, place=np.copy):
    """Output value, leaf gradients (None if not differentiable) of the case in tapegrad. TensorNode
    shares its array's buffer; ``place`` makes the buffers the inputs live in."""
    inputs, leaves = [], []
    for a, kind in zip(case.arrays, case.kinds):
        if kind == SCALAR:
            inputs.append(float(a))
        elif kind == ARRAY:
            inputs.append(place(a))
        else:
            node = vg.TensorNode(place(a), requires_grad=kind == LEAF)
            inputs.append(node)
            if kind == LEAF:
                leaves.append(node)
    out = spec.tg(inputs, **case.params)
    value = np.array(out.value, copy=True)
    if not (spec.differentiable and leaves):
        return value, None
    w = place(weights(value))
    vg.sum(out * vg.TensorNode(w, requires_grad=False)).backward()
    return value, [np.array(leaf.grad, copy=True) for leaf in leaves]


def run_torch(spec, case, weights, absolute=False):
    """The same in torch; with absolute, on |inputs| and |W| in float64 (the scale of sums)."""
    tensors, leaves = [], []
    dtype = F64 if absolute else result_dtype(case)
    for a, kind in zip(case.arrays, case.kinds):
        # absolute: infinities and nans count 0 (their results are compared by pattern, not size)
        a = np.abs(np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)) if absolute else a
        if kind == SCALAR:
            tensors.append(float(a))
            continue
        t = torch.tensor(np.array(a, copy=True), requires_grad=kind == LEAF)
        tensors.append(t)
        if kind == LEAF:
            leaves.append(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warnings about empty reductions and ddof
        out = (spec.abs_th or spec.th)(tensors, dtype, **case.params) if absolute else spec.th(tensors, dtype,
                                                                                               **case.params)
        value = out.detach().numpy().copy()
        if not (spec.differentiable and leaves):
            return value, None
        w = weights(value)
        (out * torch.from_numpy(np.asarray(np.abs(w), dtype=np.float64) if absolute else w)).sum().backward()
    return value, [(t.grad.numpy().copy() if t.grad is not None else np.zeros(t.shape, NUMPY[t.dtype]))
                   for t in leaves]


@np.errstate(invalid="ignore", over="ignore")
def close(got, want, dtype, tol, scale=None, margin=None):
    """Indices where got (tapegrad) is not close enough to want (torch), per the module docstring.
    With margin (a key), keeps the largest |got - want| / allowed seen in MARGINS."""
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    f = np.finfo(dtype)
    nan_want, nan_got = np.isnan(want64), np.isnan(got64)
    bad = nan_want != nan_got
    inf = np.isinf(want64) | np.isinf(got64)
    bad |= inf & ~nan_want & ~nan_got & (got64 != want64)
    finite = ~(nan_want | nan_got | inf)
    allowed = tol.ulps * float(f.eps) * np.abs(want64) + 4 * float(f.smallest_subnormal)
    if scale is not None and tol.slack:
        allowed = allowed + tol.slack * float(f.eps) * np.nan_to_num(np.abs(scale), nan=np.inf, posinf=np.inf)
    diff = np.abs(got64 - want64)
    bad |= finite & ~(diff <= allowed)
    if margin is not None and np.any(finite):
        MARGINS[margin] = max(MARGINS[margin], float(np.max(np.where(finite, diff / allowed, 0.0))))
    if tol.signed_zero:
        bad |= finite & (want64 == 0) & (got64 == 0) & (np.signbit(got64) != np.signbit(want64))
    if scale is not None:
        # terms that overflow the dtype (1e30 * 1e30 in float32): inf, -inf or nan by summation order
        bad &= ~(np.isfinite(scale) & (np.abs(scale) > float(f.max)))
    return np.argwhere(bad)


class Mismatch(AssertionError):
    pass


def check_case(spec, case, dtype, seed):
    """Runs one case in both libraries; raises Mismatch with a reproduction when they disagree.
    Returns the known defect the case hits instead of raising, if it hits one."""
    known = spec.known(case, dtype) if spec.known else None
    margins = MARGINS.copy()
    try:
        return _check_case(spec, case, seed)
    except Mismatch:
        MARGINS.clear()
        MARGINS.update(margins)  # a known defect's errors say nothing about the tolerances
        if known:
            return known
        raise


def _check_case(spec, case, seed):
    weight_seed = zlib.crc32(f"{spec.name}/{seed}/weights".encode())

    def weights(value):
        w = np.random.default_rng(weight_seed).standard_normal(value.shape)
        return np.asarray(w + np.sign(w) * 0.1, dtype=value.dtype)  # away from 0: every gradient is weighted

    where = f"{spec.name} seed {seed}: {case.describe()}"
    try:
        want, want_grads = run_torch(spec, case, weights)
        torch_error = None
    except (RuntimeError, IndexError, ValueError, TypeError) as e:
        torch_error = e
    try:
        got, got_grads = run_tapegrad(spec, case, weights)
    except (ValueError, IndexError, TypeError) as e:
        if torch_error is not None:
            COUNTS["raised"] += 1
            return None
        raise Mismatch(f"{where}\n  tapegrad raised {type(e).__name__}: {e}; torch did not") from None
    if torch_error is not None:
        raise Mismatch(f"{where}\n  torch raised {type(torch_error).__name__}: {torch_error}; tapegrad did not")
    dtype = result_dtype(case)
    if got.dtype != want.dtype or got.shape != want.shape:
        raise Mismatch(f"{where}\n  output {got.dtype} {got.shape}, torch {want.dtype} {want.shape}")
    scales = [None] * (1 + len(want_grads or []))
    if spec.linear:
        value_scale, grad_scales = run_torch(spec, case, weights, absolute=True)
        scales = [value_scale] + list(grad_scales or [])
    elif spec.scale is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's about empty slices: the scale is then nan or empty
            value_scale, grad_scales = spec.scale(case, weights(want), want)
        scales = [value_scale] + list(grad_scales or [])
    bad = close(got, want, dtype, spec.value_tol, scales[0], margin=(spec.name, dtype.name, "values"))
    if len(bad):
        i = tuple(int(v) for v in bad[0])
        raise Mismatch(f"{where}\n  output differs at {len(bad)} of {got.size} elements, first {i}: "
                       f"tapegrad {got[i]!r}, torch {want[i]!r}")
    COUNTS["values"] += got.size
    if got_grads is None:
        return None
    leaves = [a for a, kind in zip(case.arrays, case.kinds) if kind == LEAF]
    skips = spec.grad_skip(case) if spec.grad_skip else [None] * len(leaves)
    for k, (g, w, leaf, s, skip) in enumerate(zip(got_grads, want_grads, leaves, scales[1:], skips)):
        if g.dtype != leaf.dtype or g.shape != leaf.shape or w.shape != leaf.shape:
            raise Mismatch(f"{where}\n  gradient of leaf {k}: {g.dtype} {g.shape} for a leaf {leaf.dtype} {leaf.shape}")
        if skip is not None:  # another convention there: compare the rest
            g, w = np.where(skip, 0, g), np.where(skip, 0, w)
        bad = close(g, w, leaf.dtype, spec.grad_tol, s, margin=(spec.name, leaf.dtype.name, "gradients"))
        if len(bad):
            i = tuple(int(v) for v in bad[0])
            raise Mismatch(f"{where}\n  gradient of leaf {k} differs at {len(bad)} of {g.size} elements, first {i}: "
                           f"tapegrad {g[i]!r}, torch {w[i]!r}")
        COUNTS["grads"] += g.size
    return None


# ---- the specs: one per public function ----

def other(dtype):
    return F64 if dtype == F32 else F32


def draw_unary(domain="real", min_ndim=0):
    def draw(rng, dtype):
        rate = special_rate(rng)
        x = draw_values(rng, draw_shape(rng, min_ndim=min_ndim), dtype, domain, rate)
        return Case([x], [LEAF], special=rate > 0)
    return draw


def unary(name, tg, th, domain="real", value_tol=ULPS, grad_tol=ULPS, **kw):
    return Spec(name, draw_unary(domain), lambda n: tg(n[0]), lambda t, d: th(cast(t[0], d)),
                value_tol, grad_tol, **kw)


def draw_binary(domains=("real", "real")):
    def draw(rng, dtype):
        rate = special_rate(rng)
        sa, sb = broadcast_pair(rng)
        da, db = dtype, dtype
        if rng.random() < 0.15:  # float32 meets float64: float64, as numpy
            if rng.random() < 0.5:
                da = other(dtype)
            else:
                db = other(dtype)
        a = draw_values(rng, sa, da, domains[0], rate)
        b = draw_values(rng, sb, db, domains[1], rate)
        ka = LEAF if rng.random() < 0.85 else DATA
        r = rng.random()
        kb = LEAF if r < 0.6 else DATA if r < 0.75 else ARRAY if r < 0.87 else SCALAR
        if kb == SCALAR:
            b = np.asarray(b.reshape(-1)[0] if b.size else 1.5, dtype=np.float64)
        if ka != LEAF and kb != LEAF:
            ka = LEAF
        order = "ab" if rng.random() < 0.7 else "ba"
        if order == "ba" and kb == ARRAY:
            order = "ab"  # a numpy array on the left of an operator would take it over
        form = "function" if rng.random() < 0.5 else "operator"
        arrays, kinds = ([a, b], [ka, kb]) if order == "ab" else ([b, a], [kb, ka])
        return Case(arrays, kinds, {"form": form}, special=rate > 0)
    return draw


def binary(name, function, operator, th, domains=("real", "real"), value_tol=EXACT, grad_tol=GRAD_SUM,
           linear=True, **kw):
    def tg(n, form):
        return operator(n[0], n[1]) if form == "operator" and operator is not None else function(n[0], n[1])
    return Spec(name, draw_binary(domains), tg, lambda t, d, form: th(cast(t[0], d), cast(t[1], d)),
                value_tol, grad_tol, linear=linear, **kw)


def comparison(name, function, operator, th):
    def tg(n, form):
        return operator(n[0], n[1]) if form == "operator" else function(n[0], n[1])
    return Spec(name, draw_binary(), tg, lambda t, d, form: th(cast(t[0], d), cast(t[1], d)).to(TORCH[d]),
                differentiable=False)


def softplus_torch(t):
    return torch.logaddexp(t, torch.zeros_like(t))  # exact softplus (F.softplus returns x above 20)


def draw_clip(rng, dtype):
    case = draw_unary()(rng, dtype)
    lo, hi = np.sort(rng.standard_normal(2))
    side = rng.random()  # torch needs at least one bound
    case.params = {"a_min": None if side < 0.15 else float(lo), "a_max": None if 0.15 <= side < 0.3 else float(hi)}
    return case


def draw_leaky(rng, dtype):
    case = draw_unary()(rng, dtype)
    case.params = {"slope": float(rng.choice([0.01, 0.2, 1.5]))}
    return case


def any_to(mask, shape):
    """mask (of a broadcast shape) reduced with `any` to `shape`, the inverse of broadcasting."""
    return reduce_to_shape(mask, shape, np.any)


def leaf_masks(case, full):
    """Per leaf, the elements whose gradient sums over a position where `full` holds."""
    return [any_to(full, np.shape(a)) for a, kind in zip(case.arrays, case.kinds) if kind == LEAF]


def broadcast_inputs(case):
    """The inputs as the op sees them (in the result dtype: a Python float meeting float32 is
    rounded to it), broadcast, in float64."""
    dtype = result_dtype(case)
    return np.broadcast_arrays(*[np.asarray(a, dtype=dtype).astype(np.float64) for a in case.arrays])


def sum_of_operands(t, d, form):
    """The scale of maximum's and minimum's gradients: sums of |W| over the broadcast axes."""
    return cast(t[0], d) + cast(t[1], d)


def nan_operand(case):
    """maximum/minimum at a nan: torch gives the full gradient to both operands, tapegrad to the nan."""
    a, b = broadcast_inputs(case)
    return leaf_masks(case, np.isnan(a) | np.isnan(b))


def power_at_zero(case):
    """The exponent's gradient where the base is 0: docs/ops.md says 0, torch masks only exponents >= 0."""
    a, b = broadcast_inputs(case)
    base_zero = (a == 0) & ~(b >= 0)
    masks = leaf_masks(case, base_zero)
    return [m if k == 1 else None for k, m in zip([i for i, kind in enumerate(case.kinds) if kind == LEAF], masks)]


def sum_to(g, shape):
    """g (of a broadcast shape) summed back to `shape`, as a broadcast input's gradient is."""
    g = np.asarray(g)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and g.shape[axis] != 1:
            g = g.sum(axis=axis, keepdims=True)
    return g.reshape(shape)


def power_scale(case, w, value):
    """The gradients' terms W b a^(b-1) and W a^b log(a), summed in absolute value over the
    broadcast axes (the log makes the terms of one sum differ in sign)."""
    with np.errstate(all="ignore"):
        a, b = broadcast_inputs(case)
        w = np.abs(np.asarray(w, dtype=np.float64))
        terms = [w * np.abs(b * a ** (b - 1)), w * np.abs(a ** b * np.log(np.abs(a)))]
    return None, [sum_to(t, np.shape(x)) for t, x, kind in zip(terms, case.arrays, case.kinds) if kind == LEAF]


def at_nan(case):
    """Gradients at a nan input of a piecewise function: tapegrad's g * sign(nan) is nan and its
    relu passes nothing, torch's abs gives 0 and its relu passes g; neither is more right."""
    return [np.isnan(np.asarray(a, dtype=np.float64)) for a, kind in zip(case.arrays, case.kinds) if kind == LEAF]


def known_softplus(case, dtype):
    x = np.asarray(case.arrays[0], dtype=np.float64)
    if dtype == F32 and np.any(x < -87):
        return "new: float32 softplus below -87 is 2.9e-39 in SIMD packets"
    return None


def known_empty_extreme(case, dtype):
    x, axis = case.arrays[0], case.params["axis"]
    axes = range(x.ndim) if axis is None else [a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))]
    if x.ndim and any(x.shape[a] == 0 for a in axes):
        return "new: max/min over an empty axis give an empty result instead of raising"
    return None


def elementwise_weights(case, w, value):
    """Gradients g * f'(x) with f' computed from the output (tanh, sigmoid): their rounding error is
    a few eps times |g|, not times |g f'(x)|, where f'(x) = 1 - t^2 or s (1 - s) cancels."""
    return None, [np.abs(w)]


SPECS = [
    binary("add", vg.add, lambda a, b: a + b, torch.add),
    binary("subtract", vg.subtract, lambda a, b: a - b, torch.sub),
    binary("multiply", vg.multiply, lambda a, b: a * b, torch.mul),
    binary("divide", vg.divide, lambda a, b: a / b, torch.div),
    binary("power", vg.power, lambda a, b: a ** b, torch.pow, domains=("positive", "real"),
           value_tol=ULPS, grad_tol=Tol(ulps=4, slack=8, signed_zero=False), grad_skip=power_at_zero, linear=False,
           scale=power_scale),
    # max(-0.0, 0.0): tapegrad gives 0.0 (IEEE 754-2019's maximum), torch the first operand
    binary("maximum", vg.maximum, None, torch.maximum, value_tol=Tol(signed_zero=False), abs_th=sum_of_operands,
           grad_skip=nan_operand),
    binary("minimum", vg.minimum, None, torch.minimum, value_tol=Tol(signed_zero=False), abs_th=sum_of_operands,
           grad_skip=nan_operand),
    comparison("equal", vg.equal, lambda a, b: a == b, torch.eq),
    comparison("not_equal", vg.not_equal, lambda a, b: a != b, torch.ne),
    comparison("less", vg.less, lambda a, b: a < b, torch.lt),
    comparison("less_equal", vg.less_equal, lambda a, b: a <= b, torch.le),
    comparison("greater", vg.greater, lambda a, b: a > b, torch.gt),
    comparison("greater_equal", vg.greater_equal, lambda a, b: a >= b, torch.ge),
    unary("negative", vg.negative, torch.neg, value_tol=EXACT, grad_tol=GRAD_EXACT),
    unary("exp", vg.exp, torch.exp),
    unary("log", vg.log, torch.log, domain="positive"),
    unary("sqrt", vg.sqrt, torch.sqrt, domain="positive"),
    unary("abs", vg.abs, torch.abs, value_tol=EXACT, grad_tol=GRAD_EXACT, grad_skip=at_nan),
    unary("square", vg.square, torch.square, value_tol=EXACT, grad_tol=GRAD_EXACT),
    unary("sigmoid", vg.sigmoid, torch.sigmoid, grad_tol=Tol(ulps=4, slack=4, signed_zero=False),
          scale=elementwise_weights),
    unary("tanh", vg.tanh, torch.tanh, grad_tol=Tol(ulps=4, slack=4, signed_zero=False), scale=elementwise_weights),
    unary("relu", vg.relu, torch.relu, value_tol=EXACT, grad_tol=GRAD_EXACT, grad_skip=at_nan),
    unary("softplus", vg.softplus, softplus_torch, known=known_softplus),
    Spec("leaky_relu", draw_leaky, lambda n, slope: vg.leaky_relu(n[0], slope),
         lambda t, d, slope: F.leaky_relu(cast(t[0], d), slope)),
    Spec("clip", draw_clip, lambda n, a_min, a_max: vg.clip(n[0], a_min, a_max),
         lambda t, d, a_min, a_max: torch.clamp(cast(t[0], d), a_min, a_max)),
]


# ---- reductions ----

def draw_axis(rng, ndim):
    """None, an int (sometimes negative) or a tuple of distinct axes, as numpy takes them."""
    r = rng.random()
    if ndim == 0 or r < 0.3:
        return None
    if r < 0.75 or ndim == 1:
        return int(rng.integers(-ndim, ndim))
    axes = rng.choice(ndim, size=int(rng.integers(2, ndim + 1)), replace=False)
    return tuple(int(a) - ndim if rng.random() < 0.3 else int(a) for a in axes)


def draw_reduction(domain="real"):
    def draw(rng, dtype):
        case = draw_unary(domain)(rng, dtype)
        ndim = case.arrays[0].ndim
        case.params = {"axis": draw_axis(rng, ndim), "keepdims": bool(rng.random() < 0.4),
                       "form": "method" if rng.random() < 0.3 else "function"}
        return case
    return draw


def torch_dims(ndim, axis):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


def torch_reduction(reduce):
    """torch's reduction over numpy's axis; a 0-d input is reduced as a 1-element vector."""
    def th(t, d, axis, keepdims, form, **kw):
        x = cast(t[0], d)
        if x.ndim == 0:
            return reduce(x.reshape(1), (0,), False, **kw)
        return reduce(x, torch_dims(x.ndim, axis), keepdims, **kw)
    return th


def reduction(name, function, reduce, domain="real", value_tol=Tol(slack=2, signed_zero=False), grad_tol=GRAD_SUM,
              linear=True,
              **kw):
    def tg(n, axis, keepdims, form, **p):
        if form == "method":
            return getattr(n[0], name)(axis=axis, keepdims=keepdims, **p)
        return function(n[0], axis=axis, keepdims=keepdims, **p)
    return Spec(name, draw_reduction(domain), tg, torch_reduction(reduce), value_tol, grad_tol, linear=linear, **kw)


def ties_or_nan(extreme):
    """max/min where the extreme is not unique or a nan is around: tapegrad gives the gradient to the
    first arg-max (docs/ops.md), torch shares it between the ties."""
    def skip(case):
        x = np.asarray(case.arrays[0], dtype=np.float64)
        if x.size == 0 or x.ndim == 0:
            return [None]
        axis = case.params["axis"]
        with np.errstate(all="ignore"):
            count = np.sum(x == extreme(x, axis=axis, keepdims=True), axis=axis, keepdims=True)
            nan = np.any(np.isnan(x), axis=axis, keepdims=True)
        return [np.broadcast_to((count > 1) | nan, x.shape)]
    return skip


def keep(value, x, axis):
    """A reduction's value with its reduced axes back as size 1 (broadcasts against x)."""
    if axis is None:
        return np.reshape(value, (1,) * x.ndim)
    return np.expand_dims(value, tuple(a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))))


def logsumexp_scale(case, w, value):
    """log of a sum of positive terms: a few eps absolute; its gradient W exp(x - out) is off by
    eps times |x| + |out| relatively (the rounding of x - out)."""
    x, axis = np.asarray(case.arrays[0], dtype=np.float64), case.params["axis"]
    with np.errstate(all="ignore"):
        out = value if case.params["keepdims"] or x.ndim == 0 else keep(value, x, axis)
        out = np.asarray(out, dtype=np.float64)
        wk = np.asarray(w, dtype=np.float64) if case.params["keepdims"] or x.ndim == 0 else keep(w, x, axis)
        p = np.exp(x - out)
        return np.ones_like(value, dtype=np.float64), [np.abs(wk) * p * (1 + np.abs(x) + np.abs(out))]


def var_scale(case, w, value):
    """Sums of (x - mean)^2 and their gradient 2 W (x - mean) / (N - ddof), each (x - mean) off by
    eps times |x| + mean |x| (the error of a mean of terms that cancel)."""
    x, axis, ddof = np.asarray(case.arrays[0], dtype=np.float64), case.params["axis"], case.params["ddof"]
    with np.errstate(all="ignore"):
        n = x.size // max(1, np.sum(x, axis=axis, keepdims=True).size) if x.ndim else 1
        spread = np.abs(x) + (np.mean(np.abs(x), axis=axis, keepdims=True) if x.ndim else np.abs(x))
        scale = np.sum(spread ** 2, axis=axis, keepdims=case.params["keepdims"]) if x.ndim else spread ** 2
        wk = np.asarray(w, dtype=np.float64) if case.params["keepdims"] or x.ndim == 0 else keep(w, x, axis)
        div = n - ddof
        return scale / div, [2 * np.abs(wk) * spread / div]


def draw_var(rng, dtype):
    case = draw_reduction()(rng, dtype)
    case.params["ddof"] = int(rng.choice([0, 1]))
    return case


REDUCTIONS = [
    reduction("sum", vg.sum, lambda x, dims, keep: torch.sum(x, dim=dims, keepdim=keep)),
    reduction("mean", vg.mean, lambda x, dims, keep: torch.mean(x, dim=dims, keepdim=keep)),
    reduction("max", vg.max, lambda x, dims, keep: torch.amax(x, dim=dims, keepdim=keep), domain="distinct",
              value_tol=EXACT, grad_tol=GRAD_EXACT, linear=False, grad_skip=ties_or_nan(np.max),
              known=known_empty_extreme),
    reduction("min", vg.min, lambda x, dims, keep: torch.amin(x, dim=dims, keepdim=keep), domain="distinct",
              value_tol=EXACT, grad_tol=GRAD_EXACT, linear=False, grad_skip=ties_or_nan(np.min),
              known=known_empty_extreme),
    reduction("logsumexp", vg.logsumexp, lambda x, dims, keep: torch.logsumexp(x, dim=dims, keepdim=keep),
              value_tol=Tol(ulps=4, slack=8, signed_zero=False), grad_tol=Tol(ulps=4, slack=8, signed_zero=False),
              linear=False, scale=logsumexp_scale),
]
_var = reduction("var", vg.var, lambda x, dims, keep, ddof: torch.var(x, dim=dims, keepdim=keep, correction=ddof),
                 value_tol=Tol(ulps=4, slack=8, signed_zero=False), grad_tol=Tol(ulps=4, slack=8, signed_zero=False),
                 linear=False, scale=var_scale)
_var.draw = draw_var
REDUCTIONS.append(_var)
SPECS += REDUCTIONS


# ---- linear algebra ----

def draw_matmul(rng, dtype):
    """1-d and 2-d operands and batches whose batch axes broadcast, sizes 0-5."""
    rate = special_rate(rng)
    n, k, m = (int(rng.choice([0, 1, 2, 3, 5], p=[0.08, 0.22, 0.25, 0.25, 0.2])) for _ in range(3))
    form = rng.choice(["vv", "mv", "vm", "mm", "batched"], p=[0.1, 0.15, 0.15, 0.3, 0.3])
    if form == "vv":
        sa, sb = (k,), (k,)
    elif form == "mv":
        sa, sb = (n, k), (k,)
    elif form == "vm":
        sa, sb = (k,), (k, m)
    elif form == "mm":
        sa, sb = (n, k), (k, m)
    else:
        batch_a, batch_b = broadcast_pair(rng)
        sa, sb = batch_a[-2:] + (n, k), batch_b[-2:] + (k, m)
    da = db = dtype
    if rng.random() < 0.1:
        db = other(dtype)
    a, b = draw_values(rng, sa, da, "real", rate), draw_values(rng, sb, db, "real", rate)
    kb = LEAF if rng.random() < 0.8 else DATA
    return Case([a, b], [LEAF, kb], {"form": "operator" if rng.random() < 0.5 else "function"}, special=rate > 0)


def draw_linear(rng, dtype):
    rate = special_rate(rng)
    n, i, o = (int(rng.choice([0, 1, 2, 3, 5], p=[0.08, 0.22, 0.25, 0.25, 0.2])) for _ in range(3))
    arrays = [draw_values(rng, (n, i), dtype, "real", rate), draw_values(rng, (o, i), dtype, "real", rate)]
    bias = rng.choice(["none", "vector", "row"])
    if bias != "none":
        arrays.append(draw_values(rng, (o,) if bias == "vector" else (1, o), dtype, "real", rate))
    kinds = [LEAF if rng.random() < 0.8 else DATA] + [LEAF] * (len(arrays) - 1)
    return Case(arrays, kinds, special=rate > 0)


# Blocked GEMMs (OpenBLAS with FMA here, MKL or oneDNN in torch) sum in different orders: their
# difference reached 1.8 eps times the sum of |terms| at k = 128 (the thread cases), so slack 8.
GEMM = Tol(slack=8, signed_zero=False)
LINALG = [
    Spec("matmul", draw_matmul, lambda n, form: n[0] @ n[1] if form == "operator" else vg.matmul(n[0], n[1]),
         lambda t, d, form: torch.matmul(cast(t[0], d), cast(t[1], d)), GEMM, GEMM, linear=True),
    Spec("linear", draw_linear, lambda n: vg.linear(*n),
         lambda t, d: cast(t[0], d) @ cast(t[1], d).T + (cast(t[2], d) if len(t) > 2 else 0), GEMM, GEMM,
         linear=True),
]
SPECS += LINALG


# ---- shapes and indexing ----

def factor_shape(rng, size):
    """A random shape with `size` elements (one -1 sometimes), from the prime factors of size."""
    if size == 0:
        shape = [0] + [int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3)))]
        rng.shuffle(shape)
        return tuple(shape)
    factors, n, p = [], size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    bins = [1] * int(rng.integers(1, 5))
    for f in factors:
        bins[int(rng.integers(0, len(bins)))] *= f
    if rng.random() < 0.4:
        bins[int(rng.integers(0, len(bins)))] = -1
    return tuple(bins)


def draw_shape_op(kind):
    def draw(rng, dtype):
        case = draw_unary()(rng, dtype)
        x = case.arrays[0]
        ndim = x.ndim
        if kind == "reshape":
            case.params = {"shape": factor_shape(rng, x.size)}
        elif kind == "transpose":
            case.params = {"axes": None if rng.random() < 0.3 else tuple(int(a) for a in rng.permutation(ndim))}
        elif kind == "squeeze":
            ones = [i for i, d in enumerate(x.shape) if d == 1]
            r = rng.random()
            case.params = {"axis": None if r < 0.4 or not ones else int(rng.choice(ones)) - (ndim if r < 0.6 else 0)}
        elif kind == "unsqueeze":
            case.params = {"axis": int(rng.integers(-ndim - 1, ndim + 1))}
        elif kind == "broadcast_to":
            target = [d if d != 1 or rng.random() < 0.5 else int(rng.choice([0, 2, 3])) for d in x.shape]
            target = [int(rng.choice([1, 2, 3])) for _ in range(int(rng.integers(0, 3)))] + target
            case.params = {"shape": tuple(target)}
        return case
    return draw


def draw_joined(kind):
    def draw(rng, dtype):
        rate = special_rate(rng)
        base = list(draw_shape(rng, min_ndim=1 if kind == "concatenate" else 0))
        count = int(rng.integers(1, 4))
        ndim = len(base)
        axis = int(rng.integers(-ndim, ndim)) if kind == "concatenate" else int(rng.integers(-ndim - 1, ndim + 1))
        arrays = []
        for _ in range(count):
            shape = list(base)
            if kind == "concatenate":
                shape[axis] = int(rng.choice([0, 1, 2, 3]))
            d = other(dtype) if rng.random() < 0.1 else dtype
            arrays.append(draw_values(rng, tuple(shape), d, "real", rate))
        kinds = [LEAF if rng.random() < 0.75 else DATA for _ in arrays]
        kinds[0] = LEAF
        return Case(arrays, kinds, {"axis": axis}, special=rate > 0)
    return draw


def draw_key(rng, shape):
    """A numpy key torch reads the same way: ints, slices with positive steps, None, one Ellipsis,
    and at most one advanced index (an integer array with repeats, or a boolean mask) with no int
    beside it (numpy and torch place the result axes differently then)."""
    if shape and rng.random() < 0.08:  # a mask of the whole shape
        return rng.random(shape) < 0.5
    parts, advanced = [], rng.random() < 0.35
    axes = int(rng.integers(0, len(shape) + 1))
    at = int(rng.integers(0, axes)) if advanced and axes else -1
    for axis in range(axes):
        d = shape[axis]
        if rng.random() < 0.1:
            parts.append(None)
        if axis == at:
            if rng.random() < 0.6 or d == 0:
                parts.append(rng.integers(-d, d, size=int(rng.integers(0, 5))) if d else np.zeros(0, np.int64))
            else:
                parts.append(rng.random(d) < 0.5)
        elif not advanced and d and rng.random() < 0.3:
            parts.append(int(rng.integers(-d, d)))
        else:
            bound = lambda: None if rng.random() < 0.3 else int(rng.integers(-d - 2, d + 3))  # noqa: E731
            parts.append(slice(bound(), bound(), None if rng.random() < 0.5 else int(rng.integers(1, 4))))
    if rng.random() < 0.2:  # at the end, or anywhere when every axis is indexed (it then stands for none)
        parts.insert(int(rng.integers(0, len(parts) + 1)) if axes == len(shape) else len(parts), Ellipsis)
    if len(parts) == 1 and rng.random() < 0.5:
        return parts[0]
    return tuple(parts)


def torch_key(key):
    def part(k):
        if isinstance(k, np.ndarray):
            return torch.from_numpy(k.astype(bool if k.dtype == bool else np.int64))
        return k
    return tuple(part(k) for k in key) if isinstance(key, tuple) else part(key)


def draw_getitem(rng, dtype):
    case = draw_unary()(rng, dtype)
    case.params = {"key": draw_key(rng, case.arrays[0].shape), "form": "operator" if rng.random() < 0.6 else "function"}
    return case


def draw_setitem(rng, dtype):
    """x[key] = v on a copy of x, for keys whose positions do not repeat (torch's order of repeated
    writes is unspecified); v has the indexed shape, or a shape that broadcasts to it."""
    case = draw_getitem(rng, dtype)
    x, key = case.arrays[0], case.params.pop("key")
    case.params.pop("form")
    flat = np.arange(x.size).reshape(x.shape)[key]
    if np.unique(flat).size != flat.size:
        key = (Ellipsis,)
        flat = np.arange(x.size).reshape(x.shape)
    vshape = flat.shape[1:] if flat.ndim and rng.random() < 0.3 else flat.shape
    case.arrays.append(draw_values(rng, vshape, dtype))
    case.kinds.append(LEAF)
    case.params = {"key": key}
    return case


def torch_setitem(t, d, key):
    y = cast(t[0], d).clone()
    y[torch_key(key)] = cast(t[1], d)
    return y


def draw_astype(rng, dtype):
    case = draw_unary()(rng, dtype)
    case.params = {"to": "float64" if rng.random() < 0.5 else "float32"}
    return case


SHAPES = [
    Spec("setitem", draw_setitem, lambda n, key: vg.setitem(n[0], key, n[1]), torch_setitem, grad_tol=GRAD_EXACT),
    Spec("astype", draw_astype, lambda n, to: vg.astype(n[0], to),
         lambda t, d, to: cast(t[0], d).to(getattr(torch, to)), grad_tol=GRAD_EXACT),
    Spec("reshape", draw_shape_op("reshape"), lambda n, shape: vg.reshape(n[0], shape),
         lambda t, d, shape: cast(t[0], d).reshape(shape), grad_tol=GRAD_EXACT),
    Spec("flatten", draw_unary(), lambda n: vg.flatten(n[0]), lambda t, d: cast(t[0], d).reshape(-1),
         grad_tol=GRAD_EXACT),
    Spec("transpose", draw_shape_op("transpose"), lambda n, axes: vg.transpose(n[0], axes),
         lambda t, d, axes: cast(t[0], d).permute(axes if axes is not None else tuple(range(t[0].ndim))[::-1]),
         grad_tol=GRAD_EXACT),
    Spec("squeeze", draw_shape_op("squeeze"), lambda n, axis: vg.squeeze(n[0], axis),
         lambda t, d, axis: cast(t[0], d).squeeze() if axis is None else cast(t[0], d).squeeze(axis),
         grad_tol=GRAD_EXACT),
    Spec("unsqueeze", draw_shape_op("unsqueeze"), lambda n, axis: vg.unsqueeze(n[0], axis),
         lambda t, d, axis: cast(t[0], d).unsqueeze(axis), grad_tol=GRAD_EXACT),
    Spec("broadcast_to", draw_shape_op("broadcast_to"), lambda n, shape: vg.broadcast_to(n[0], shape),
         lambda t, d, shape: torch.broadcast_to(cast(t[0], d), shape), grad_tol=GRAD_SUM, linear=True),
    Spec("concatenate", draw_joined("concatenate"), lambda n, axis: vg.concatenate(n, axis),
         lambda t, d, axis: torch.cat([cast(x, d) for x in t], axis), grad_tol=GRAD_EXACT),
    Spec("stack", draw_joined("stack"), lambda n, axis: vg.stack(n, axis),
         lambda t, d, axis: torch.stack([cast(x, d) for x in t], axis), grad_tol=GRAD_EXACT),
    Spec("getitem", draw_getitem, lambda n, key, form: n[0][key] if form == "operator" else vg.getitem(n[0], key),
         lambda t, d, key, form: cast(t[0], d)[torch_key(key)], grad_tol=GRAD_SUM, linear=True),
]
SPECS += SHAPES


# ---- neural-network functions ----

def row_stats(x, axis=-1):
    """d = x - max along axis (0 where the max is not finite) and L = log sum exp(d), keepdims."""
    with np.errstate(all="ignore"):
        x = np.asarray(x, dtype=np.float64)
        m = np.max(x, axis=axis, keepdims=True) if x.shape[axis] else np.zeros_like(np.sum(x, axis=axis, keepdims=True))
        m = np.where(np.isfinite(m), m, 0)
        d = x - m
        return d, np.log(np.sum(np.exp(d), axis=axis, keepdims=True))


def softmax_scale(case, w, value):
    """y = exp(d) / sum exp(d) is off by eps times |d| + n relatively; its gradient y (W - sum W y)
    by that times |W| + sum |W| y."""
    x, axis = case.arrays[0], case.params["axis"]
    d, _ = row_stats(x, axis)
    n = x.shape[axis]
    y = np.abs(np.asarray(value, dtype=np.float64))
    with np.errstate(all="ignore"):
        rel = np.abs(d) + n + 1
        return y * rel, [y * rel * (np.abs(w) + np.sum(np.abs(w) * y, axis=axis, keepdims=True))]


def log_softmax_scale(case, w, value):
    """y = d - L is off by eps times |d| + L + n; its gradient W - exp(y) sum W by eps times
    |W| + exp(y) sum |W| (|d| + L + n)."""
    x, axis = case.arrays[0], case.params["axis"]
    d, lse = row_stats(x, axis)
    n = x.shape[axis]
    with np.errstate(all="ignore"):
        rel = np.abs(d) + np.abs(lse) + n + 1
        p = np.exp(np.asarray(value, dtype=np.float64))
        return rel, [np.abs(w) + p * rel * np.sum(np.abs(w), axis=axis, keepdims=True)]


def draw_softmax(rng, dtype):
    case = draw_unary(min_ndim=1)(rng, dtype)
    ndim = case.arrays[0].ndim
    case.params = {"axis": int(rng.integers(-ndim, ndim)), "form": "method" if rng.random() < 0.3 else "function"}
    return case


def draw_classes(rng, dtype, logits_domain="real"):
    rate = special_rate(rng)
    n, c = int(rng.choice([0, 1, 2, 3, 5, 8], p=[0.05, 0.2, 0.25, 0.2, 0.15, 0.15])), int(rng.integers(1, 7))
    logits = draw_values(rng, (n, c), dtype, logits_domain, rate)
    return Case([logits], [LEAF], {"targets": rng.integers(0, c, n), "reduction": str(rng.choice(["mean", "sum"]))},
                special=rate > 0)


def cross_entropy_scale(case, w, value):
    """Each row's loss L - d[t] is off by eps times |d[t]| + L + C (torch computes it so; a
    logsumexp(x) - x[t] that cancels is item 6); the gradient W (softmax - onehot) / n by eps
    times |W| (p (|d| + L + C) + 1) / n."""
    x, t, reduction = case.arrays[0], case.params["targets"], case.params["reduction"]
    n, c = x.shape
    d, lse = row_stats(x)
    with np.errstate(all="ignore"):
        rows = np.abs(d[np.arange(n), t]) + np.abs(lse[:, 0]) + c + 1
        per = 1.0 / n if reduction == "mean" and n else 1.0
        p = np.exp(d - lse)
        return np.sum(rows) * per, [np.abs(w) * per * (p * (np.abs(d) + np.abs(lse) + c + 1) + 1)]


def draw_pair(domains, target_kinds=(LEAF, DATA, ARRAY)):
    def draw(rng, dtype):
        rate = special_rate(rng)
        shape = draw_shape(rng)
        a = draw_values(rng, shape, dtype, domains[0], rate)
        b = draw_values(rng, shape, dtype, domains[1], rate if domains[1] != "target" else 0.0)
        kind = target_kinds[int(rng.integers(0, len(target_kinds)))]
        return Case([a, b], [LEAF, kind], {"reduction": str(rng.choice(["mean", "sum"]))}, special=rate > 0)
    return draw


def per_element(case):
    n = np.size(case.arrays[0])
    return 1.0 / n if case.params["reduction"] == "mean" and n else 1.0


def mse_scale(case, w, value):
    """sum (p - t)^2 with each difference off by eps (|p| + |t|)."""
    p, t = (np.asarray(a, dtype=np.float64) for a in case.arrays)
    with np.errstate(all="ignore"):
        terms = np.abs(p) + np.abs(t)
        per = per_element(case)
        return np.sum(terms ** 2) * per, [2 * np.abs(w) * terms * per] * 2


def bce_logits_scale(case, w, value):
    """max(z, 0) - z y + log(1 + exp(-|z|)) cancels to eps (|z| + 1) in both libraries; the gradient
    W (sigmoid(z) - y) / N is off by eps (1 + |y|) |W| / N, the target's -W z / N by eps |W z| / N."""
    z, y = (np.asarray(a, dtype=np.float64) for a in case.arrays)
    with np.errstate(all="ignore"):
        per = per_element(case)
        return np.sum(np.abs(z) * (1 + np.abs(y)) + 1) * per, [np.abs(w) * (1 + np.abs(y)) * per,
                                                               np.abs(w * z) * per]


def bce_scale(case, w, value):
    """-(y log p + (1 - y) log1p(-p)), each log within a few ulps of itself (torch takes log1p(-p);
    tapegrad's log(1 - p) that loses small p is item 9); both clamp the logs at -100. The gradient
    W (p - y) / (p (1 - p)) / N: p - y off by eps (|p| + |y|); the target's W (log(1 - p) - log p) / N
    by eps times the logs."""
    p, y = (np.asarray(a, dtype=np.float64) for a in case.arrays)
    with np.errstate(all="ignore"):
        per = per_element(case)
        lp, lq = np.minimum(-np.log(p), 100), np.minimum(-np.log1p(-p), 100)
        rows = np.abs(y) * lp + np.abs(1 - y) * lq
        grad_p = np.abs(w) * per * (np.abs(p) + np.abs(y)) / np.maximum(p * (1 - p), 1e-12)
        return np.sum(rows) * per, [grad_p, np.abs(w) * per * (lp + lq)]


def clamped_bce(case):
    """Where a clamp decides: torch divides by max(p (1 - p), 1e-12) in p's gradient, tapegrad by
    p (1 - p); torch's target gradient log(1 - p) - log p is not clamped at -100 as its forward is,
    tapegrad's is the derivative of the clamped forward."""
    p = np.asarray(case.arrays[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        masks = [p * (1 - p) < 1e-12, (np.log(p) < -100) | (np.log1p(-p) < -100)]
    return [m for m, kind in zip(masks, case.kinds) if kind == LEAF]


def normalize_scale(case, w, value):
    """x / s with s the row sums (n terms): off by (n + 1) eps relatively; the gradient
    W / s - sum(W x) / s^2 by that times (|W| + sum |W x| / |s|) / |s|."""
    x = np.asarray(case.arrays[0], dtype=np.float64)
    with np.errstate(all="ignore"):
        s = np.sum(x, axis=1, keepdims=True)
        n = x.shape[1] + 1
        return np.abs(np.asarray(value, dtype=np.float64)) * n, [
            n * (np.abs(w) + np.sum(np.abs(w * x), axis=1, keepdims=True) / np.abs(s)) / np.abs(s)]


def draw_normalize(rng, dtype):
    rate = special_rate(rng)
    shape = (int(rng.choice([0, 1, 2, 4])), int(rng.integers(1, 6)))
    values = draw_values(rng, shape, dtype, "positive", rate)
    return Case([values], [LEAF], special=rate > 0)


def known_item_6(case, dtype):
    """cross_entropy computes logsumexp(x) - x[t], which cancels once the logits are large."""
    x = np.asarray(case.arrays[0], dtype=np.float64)
    finite = x[np.isfinite(x)]
    return "item 6: cross_entropy cancels for large logits" if finite.size and np.max(np.abs(finite)) > 20 else None


def known_item_7(case, dtype):
    """Normalize's backward divides by s^2, which overflows (or underflows) in the dtype."""
    with np.errstate(all="ignore"):
        s = np.abs(np.sum(np.asarray(case.arrays[0], dtype=np.float64), axis=1))
    limit = math.sqrt(float(np.finfo(dtype).max)) / 16
    if np.any((s > limit) | (s < 1 / limit)):
        return "item 7: Normalize's backward overflows"
    return None


def known_item_9(case, dtype):
    """binary_cross_entropy: log(1 - p) loses small p (log1p(-p) keeps it), and float32's vectorised
    log clamps subnormal p to FLT_MIN."""
    p = np.asarray(case.arrays[0], dtype=np.float64)
    if np.any((p > 0) & (p < 1e-4)):
        return "item 9: binary_cross_entropy loses small p"
    return None


NN = [
    Spec("softmax", draw_softmax,
         lambda n, axis, form: n[0].softmax(axis) if form == "method" else vg.softmax(n[0], axis),
         lambda t, d, axis, form: F.softmax(cast(t[0], d), axis),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=softmax_scale),
    Spec("log_softmax", draw_softmax,
         lambda n, axis, form: n[0].log_softmax(axis) if form == "method" else vg.log_softmax(n[0], axis),
         lambda t, d, axis, form: F.log_softmax(cast(t[0], d), axis),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=log_softmax_scale),
    Spec("cross_entropy", draw_classes,
         lambda n, targets, reduction: vg.cross_entropy(n[0], targets, reduction=reduction),
         lambda t, d, targets, reduction: F.cross_entropy(cast(t[0], d), torch.from_numpy(targets),
                                                          reduction=reduction),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=cross_entropy_scale,
         known=known_item_6),
    Spec("nll_loss", draw_classes,
         lambda n, targets, reduction: vg.nll_loss(n[0], targets, reduction=reduction),
         lambda t, d, targets, reduction: F.nll_loss(cast(t[0], d), torch.from_numpy(targets), reduction=reduction),
         Tol(slack=2, signed_zero=False), GRAD_SUM, linear=True),
    Spec("mse_loss", draw_pair(("real", "real")),
         lambda n, reduction: vg.mse_loss(n[0], n[1], reduction=reduction),
         lambda t, d, reduction: F.mse_loss(cast(t[0], d), cast(t[1], d), reduction=reduction),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=mse_scale),
    Spec("binary_cross_entropy", draw_pair(("probability", "target")),
         lambda n, reduction: vg.binary_cross_entropy(n[0], n[1], reduction=reduction),
         lambda t, d, reduction: F.binary_cross_entropy(cast(t[0], d), cast(t[1], d), reduction=reduction),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=bce_scale,
         grad_skip=clamped_bce, known=known_item_9),
    # infinite logits: neither library gives the limit everywhere (tapegrad inf - inf at z = inf,
    # torch 0 * inf at z = -inf), so the logits are finite (1e30 included)
    Spec("binary_cross_entropy_with_logits", draw_pair(("finite", "target")),
         lambda n, reduction: vg.binary_cross_entropy_with_logits(n[0], n[1], reduction=reduction),
         lambda t, d, reduction: F.binary_cross_entropy_with_logits(cast(t[0], d), cast(t[1], d), reduction=reduction),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=bce_logits_scale),
    Spec("Normalize", draw_normalize, lambda n: vg.Normalize.do_forward(n[0]),
         lambda t, d: cast(t[0], d) / cast(t[0], d).sum(1, keepdim=True),
         Tol(ulps=4, slack=4, signed_zero=False), Tol(ulps=4, slack=4, signed_zero=False), scale=normalize_scale,
         known=known_item_7),
]
SPECS += NN


def draw_matrix(domain="real"):
    def draw(rng, dtype):
        rate = special_rate(rng)
        shape = (int(rng.choice([0, 1, 2, 4])), int(rng.integers(1, 6)))
        return Case([draw_values(rng, shape, dtype, domain, rate)], [LEAF], special=rate > 0)
    return draw


def draw_batch_mm(rng, dtype):
    n, i, o = int(rng.choice([0, 1, 3])), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    return Case([draw_values(rng, (o, i), dtype), draw_values(rng, (n, i), dtype)], [LEAF, LEAF])


def draw_expand(rng, dtype):
    shape = list(draw_shape(rng, min_ndim=1))
    dim = int(rng.integers(0, len(shape)))
    shape[dim] = 1
    case = Case([draw_values(rng, tuple(shape), dtype, "real", special_rate(rng))], [LEAF])
    case.params = {"dim": dim, "repeats": int(rng.integers(0, 4))}
    return case


def expand_torch(t, d, dim, repeats):
    shape = list(t[0].shape)
    shape[dim] = repeats
    return cast(t[0], d).expand(*shape)


def row_ties_or_nan(case):
    """RowMax's rows whose maximum is not unique or that hold a nan (see ties_or_nan)."""
    x = np.asarray(case.arrays[0], dtype=np.float64)
    if x.size == 0:
        return [None]
    with np.errstate(all="ignore"):
        count = np.sum(x == np.max(x, axis=1, keepdims=True), axis=1, keepdims=True)
        nan = np.any(np.isnan(x), axis=1, keepdims=True)
    return [np.broadcast_to((count > 1) | nan, x.shape)]


# vugrad's ops, which have no numpy-named function: their torch counterparts
VUGRAD = [
    unary("log1p", vg.log1p, torch.log1p, domain="positive"),
    Spec("RowSum", draw_matrix(), lambda n: vg.RowSum.do_forward(n[0]), lambda t, d: cast(t[0], d).sum(1),
         GRAD_SUM, GRAD_EXACT, linear=True),
    Spec("RowMax", draw_matrix("distinct"), lambda n: vg.RowMax.do_forward(n[0]), lambda t, d: cast(t[0], d).amax(1),
         EXACT, GRAD_EXACT, grad_skip=lambda case: row_ties_or_nan(case)),
    Spec("BatchMM", draw_batch_mm, lambda n: vg.BatchMM.do_forward(n[0], n[1]),
         lambda t, d: cast(t[1], d) @ cast(t[0], d).T, Tol(ulps=4, slack=8, signed_zero=False),
         Tol(ulps=4, slack=8, signed_zero=False), linear=True),
    Spec("Expand", draw_expand, lambda n, dim, repeats: vg.Expand.do_forward(n[0], dim=dim, repeats=repeats),
         expand_torch, EXACT, GRAD_SUM, linear=True),
    Spec("Id", draw_matrix(), lambda n: vg.Id.do_forward(n[0]), lambda t, d: cast(t[0], d).clone(), EXACT, GRAD_EXACT),
]
SPECS += VUGRAD


# ---- the tests ----

def case_seed(name, dtype, i):
    return zlib.crc32(f"{name}/{np.dtype(dtype).name}/{i}".encode())


def reproduce(name, dtype, seed):
    """Runs one case again, e.g. from the repository's root (the seed is in the failure message):
    python -c "import sys; sys.path[:0] = ['tests', 'python']; import test_differential as t; t.reproduce('var', 'float32', 7)"
    """  # noqa: E501
    spec = next(s for s in SPECS if s.name == name)
    case = spec.draw(np.random.default_rng(seed), np.dtype(dtype))
    try:
        _check_case(spec, case, seed)
    except Mismatch as e:
        print(e)
        print("known:", spec.known(case, np.dtype(dtype)) if spec.known else None)
        return False
    print(f"{name} seed {seed}: {case.describe()}\n  matches torch")
    return True


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_function_matches_torch_in_values_gradients_and_dtypes(spec, dtype):
    failures = []
    for i in range(CASES):
        seed = case_seed(spec.name, dtype, i)
        case = spec.draw(np.random.default_rng(seed), dtype)
        COUNTS["cases"] += 1
        COUNTS["special"] += case.special
        try:
            known = check_case(spec, case, dtype, seed)
        except Mismatch as e:
            failures.append(f"{e}\n  reproduce: test_differential.reproduce({spec.name!r}, {dtype.name!r}, {seed})")
            if len(failures) == 3:
                break
            continue
        if known:
            KNOWN_SEEN[known] += 1
    assert not failures, "\n".join(failures)


# ---- known defects, one deterministic case each (strict: fixing one makes its test fail) ----

def torch_grads(fn, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward()
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


def tapegrad_grads(fn, *arrays):
    nodes = [vg.TensorNode(np.array(a, copy=True)) for a in arrays]
    out = fn(*nodes)
    out.backward()
    return np.array(out.value), [n.grad for n in nodes]


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_a_float32_sum_of_20_million_ones_is_what_torch_gives(reduce):
    ones = np.ones(20_000_000, np.float32)
    got = getattr(vg, reduce)(vg.TensorNode(ones, requires_grad=False)).item()
    assert got == getattr(torch, reduce)(torch.from_numpy(ones)).item()


@pytest.mark.parametrize("logits, dtype", [([[1e30, 1e30, 0.0]], np.float64), ([[1e8, 1e8 - 1, 0.0]], np.float32),
                                           ([[1000.5, 1000.0, 999.0]], np.float32)], ids=["1e30", "1e8", "1e3"])
def test_cross_entropy_of_large_logits_matches_torch(logits, dtype):
    x = np.array(logits, dtype)
    got, (grad,) = tapegrad_grads(lambda z: vg.cross_entropy(z, np.array([0])), x)
    want, (want_grad,) = torch_grads(lambda z: F.cross_entropy(z, torch.tensor([0])), x)
    np.testing.assert_allclose(got, want, rtol=8 * np.finfo(dtype).eps)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("logits, dtype", [([[45.0, 44.0, 42.0]], np.float32), ([[356.0, 355.0, 353.0]], np.float64)])
def test_the_courses_softmax_normalize_of_exp_has_torchs_gradient(logits, dtype):
    x, w = np.array(logits, dtype), np.array([[1.0, -2.0, 0.5]], dtype)
    _, (grad,) = tapegrad_grads(lambda z: vg.sum(vg.Normalize.do_forward(vg.exp(z)) * w), x)
    _, (want,) = torch_grads(lambda z: (torch.exp(z) / torch.exp(z).sum(1, keepdim=True) * torch.from_numpy(w)).sum(),
                             x)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p, y, dtype", [(1e-40, 1.0, np.float32), (1e-20, 0.0, np.float64)],
                         ids=["float32-subnormal-p", "float64-small-p"])
def test_binary_cross_entropy_of_extreme_probabilities_matches_torch(p, y, dtype):
    probs, targets = np.full(16, p, dtype), np.full(16, y, dtype)
    got = vg.binary_cross_entropy(vg.TensorNode(probs), targets).item()
    want = F.binary_cross_entropy(torch.from_numpy(probs), torch.from_numpy(targets)).item()
    assert got == pytest.approx(want, rel=1e-5, abs=0)


def test_uint64_indices_past_the_end_are_index_errors_naming_the_index():
    x = vg.TensorNode(np.ones((2, 3)))
    with pytest.raises(IndexError):
        vg.Select.do_forward(x, indices=np.array([0, 2**64 - 1], np.uint64))
    with pytest.raises(IndexError, match="18446744073709551615"):
        vg.cross_entropy(x, np.array([0, 2**64 - 1], np.uint64))


def test_backward_from_a_leaf_accumulates_as_in_torch():
    x = vg.TensorNode(np.array(2.0))
    (x * 3).backward()
    x.backward()
    t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (t * 3).backward()
    t.backward()
    assert x.grad == t.grad.item() == 4.0


@pytest.mark.parametrize("optimizer", ["Adam", "RMSprop"])
def test_float32_optimiser_state_after_one_step_is_torchs(optimizer):
    p = vg.TensorNode(np.array([1.0], np.float32))
    t = torch.tensor([1.0], requires_grad=True)
    opt = getattr(vg.optim, optimizer)([p], lr=0.1)
    topt = getattr(torch.optim, optimizer)([t], lr=0.1)
    (p * 3.0).sum().backward()
    (t * 3.0).sum().backward()
    opt.step()
    topt.step()
    key = "exp_avg_sq" if optimizer == "Adam" else "square_avg"
    ours = opt.state_dict()["state"]["0"][key]
    assert ours.dtype == np.float32
    assert ours[0] == topt.state[t][key].item()
    # the step itself may round one float32 ulp apart: for RMSprop here torch's sqrt(s).add_(eps) gives
    # 0.30000001 where sqrt(s) + eps rounded once is 0.29999998 (the exact value 0.2999999935)
    np.testing.assert_allclose(p.value[0], t.item(), rtol=0, atol=2 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("call, op", [(lambda x: x * 10**400, "mul"), (lambda x: x.reshape(2**64, 1), "reshape")],
                         ids=["multiply", "reshape"])
def test_oversized_python_ints_are_errors_naming_the_op(call, op):
    with pytest.raises((ValueError, TypeError, OverflowError), match=rf"^{op}"):
        call(vg.TensorNode(np.ones(2)))


def test_float32_softplus_of_very_negative_values_matches_torch_in_full_simd_packets():
    x = np.full(8, -100.0, np.float32)
    got = vg.softplus(vg.TensorNode(x)).value
    want = softplus_torch(torch.from_numpy(x)).numpy()  # exp(-100) = 3.7e-44, a subnormal
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape, axis", [((0, 0), 1), ((0, 0, 1), 0), ((2, 0, 0), 1)])
def test_max_over_an_empty_axis_raises_as_numpy_and_torch_do_whatever_the_output_size(shape, axis):
    with pytest.raises(IndexError):
        torch.amax(torch.zeros(shape), dim=axis)
    with pytest.raises(ValueError, match="zero-size array"):
        np.max(np.zeros(shape), axis=axis)
    with pytest.raises(ValueError, match="max: cannot reduce an empty axis"):
        vg.max(vg.TensorNode(np.zeros(shape)), axis=axis)


# ---- threads: independent graphs at once give what one thread gives ----

THREADS = 4


def big_cases():
    """Cases large enough that the engine runs their kernels without the GIL (forward kernels on
    2**14 elements or more, every backward) and splits them over its own threads."""
    rng = np.random.default_rng(7)
    by_name = {s.name: s for s in SPECS}
    cases = []
    for dtype in DTYPES:
        cases += [
            (by_name["matmul"], Case([rng.standard_normal((96, 128)).astype(dtype),
                                      rng.standard_normal((128, 64)).astype(dtype)], [LEAF, LEAF],
                                     {"form": "operator"})),
            (by_name["tanh"], Case([rng.standard_normal((160, 128)).astype(dtype)], [LEAF])),
            (by_name["exp"], Case([rng.standard_normal(40_000).astype(dtype)], [LEAF])),
            (by_name["multiply"], Case([rng.standard_normal((200, 100)).astype(dtype),
                                        rng.standard_normal(100).astype(dtype)], [LEAF, LEAF], {"form": "function"})),
            (by_name["softmax"], Case([rng.standard_normal((256, 96)).astype(dtype)], [LEAF],
                                      {"axis": -1, "form": "function"})),
            (by_name["cross_entropy"], Case([rng.standard_normal((2000, 10)).astype(dtype)], [LEAF],
                                            {"targets": rng.integers(0, 10, 2000), "reduction": "mean"})),
            (by_name["sum"], Case([rng.standard_normal((128, 160)).astype(dtype)], [LEAF],
                                  {"axis": 0, "keepdims": False, "form": "function"})),
        ]
    return [(spec, case, case_seed("threads", case.arrays[0].dtype, i)) for i, (spec, case) in enumerate(cases)]


def small_cases(count):
    """The first cases of the per-function tests, a few of every function."""
    out = []
    for i in range(count):
        spec = SPECS[i % len(SPECS)]
        dtype = DTYPES[(i // len(SPECS)) % 2]
        seed = case_seed(spec.name, dtype, i // (2 * len(SPECS)))
        out.append((spec, spec.draw(np.random.default_rng(seed), dtype), seed))
    return out


def tapegrad_result(spec, case, seed, place=np.copy):
    weight_seed = zlib.crc32(f"{spec.name}/{seed}/weights".encode())

    def weights(value):
        w = np.random.default_rng(weight_seed).standard_normal(value.shape)
        return np.asarray(w + np.sign(w) * 0.1, dtype=value.dtype)

    try:
        return run_tapegrad(spec, case, weights, place)
    except (ValueError, IndexError, TypeError) as e:
        return f"{type(e).__name__}: {e}"


# Normalize's float64 backward rounds differently with the alignment of its buffers (a defect, see
# test_normalizes_gradient_does_not_depend_on_where_its_input_lives): compared within 16 eps of each
# tensor's largest element there (its gradient W / s - sum(W x) / s^2 cancels).
ALIGNMENT_DEPENDENT = set()


def same_result(a, b, exact=True):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    (va, ga), (vb, gb) = a, b
    pairs = [(va, vb)] + (list(zip(ga, gb)) if ga is not None and gb is not None else [])
    if (ga is None) != (gb is None) or any(x.dtype != y.dtype or x.shape != y.shape for x, y in pairs):
        return False
    if exact:
        return all(np.array_equal(x, y, equal_nan=True) for x, y in pairs)
    with np.errstate(invalid="ignore"):
        return all(np.allclose(x, y, rtol=0, equal_nan=True,
                               atol=16 * np.finfo(x.dtype).eps * np.nan_to_num(np.max(np.abs(x), initial=0)))
                   for x, y in pairs)


def at_offset(offset):
    """Copies placed `offset` elements into a fresh buffer: other alignments than numpy's own."""
    def place(a):
        a = np.asarray(a)
        buffer = np.empty(a.size + 8, a.dtype)
        out = buffer[offset:offset + a.size].reshape(a.shape)
        out[...] = a
        return out
    return place


def test_results_do_not_depend_on_where_the_inputs_live():
    """SIMD kernels with scalar heads and tails must round alike wherever a buffer starts."""
    differ = []
    for spec, case, seed in big_cases() + small_cases(max(120, CASES * 2)):
        if spec.name in ALIGNMENT_DEPENDENT:
            continue
        base = tapegrad_result(spec, case, seed, at_offset(0))
        for offset in range(1, 8):
            COUNTS["placements"] += 1
            if not same_result(base, tapegrad_result(spec, case, seed, at_offset(offset))):
                differ.append(f"{spec.name} seed {seed} at offset {offset}")
                break
    assert not differ, f"{len(differ)} cases depend on their buffers' alignment: {differ[:5]}"


def test_normalizes_gradient_does_not_depend_on_where_its_input_lives():
    rng = np.random.default_rng(0)
    x, w = rng.uniform(0.1, 3.0, (4, 5)), rng.standard_normal((4, 5))
    grads = []
    for offset in range(8):
        node = vg.TensorNode(at_offset(offset)(x))
        vg.sum(vg.Normalize.do_forward(node) * vg.TensorNode(w, requires_grad=False)).backward()
        grads.append(node.grad.copy())
    assert all(np.array_equal(g, grads[0]) for g in grads), [float(np.max(np.abs(g - grads[0]))) for g in grads]


def test_independent_graphs_in_threads_give_what_one_thread_gives_bitwise():
    """THREADS threads each run every case (a few of every function and some large ones whose
    kernels run without the GIL), in an order of their own, at the same time."""
    cases = big_cases() + small_cases(max(120, CASES * 2))
    alone = [tapegrad_result(*c) for c in cases]
    barrier = threading.Barrier(THREADS)
    results, errors = [None] * THREADS, []

    def worker(k):
        try:
            barrier.wait()
            order = np.random.default_rng(k).permutation(len(cases))  # each thread its own interleaving
            got = [None] * len(cases)
            for i in order:
                got[i] = tapegrad_result(*cases[i])
            results[k] = got
        except BaseException as e:  # an exception in a thread would otherwise vanish
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"a thread raised: {errors!r}"
    COUNTS["thread cases"] += THREADS * len(cases)
    for k, got in enumerate(results):
        differ = [f"{spec.name} seed {seed}" for (spec, _, seed), a, b in zip(cases, alone, got)
                  if not same_result(a, b, exact=spec.name not in ALIGNMENT_DEPENDENT)]
        assert not differ, f"thread {k}: {len(differ)} of {len(cases)} cases differ from one thread's: {differ[:5]}"


def test_the_big_thread_cases_match_torch():
    for spec, case, seed in big_cases():
        check_case(spec, case, np.dtype(case.arrays[0].dtype), seed)


# The engine ops each spec reaches, where its name is not the op's; convolution and pooling are
# compared with torch in test_conv.py.
REACHES = {"flatten": {"reshape"}, "stack": {"concatenate", "unsqueeze"}, "nll_loss": {"select"},
           "getitem": {"getitem", "gather"}, "Normalize": {"normalize"}, "RowSum": {"row_sum"},
           "RowMax": {"row_max"}, "BatchMM": {"batch_mm"}, "Expand": {"expand"}, "Id": {"id"}}
ELSEWHERE = {"conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "pad"}


def test_the_differential_suite_compares_every_op_of_the_engine():
    compared = set().union(*(REACHES.get(spec.name, {spec.name}) for spec in SPECS))
    engine = {row["name"] for row in vg._core.op_table()}
    assert engine - ELSEWHERE <= compared, f"ops no spec compares with torch: {sorted(engine - ELSEWHERE - compared)}"
