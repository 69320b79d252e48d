"""The op table: every engine op against a numpy reference, its hand-written gradient and finite differences.

One row per op (binary ops once per broadcast pattern, the others once per shape or axis choice). Each
row gives the inputs' shapes and domains, the op's constants, a numpy forward and a numpy backward, and
calls either the op class or its numpy-named function (``vg.sum(x, axis=..., keepdims=...)``). The
backward reference receives the upstream gradient G of a loss ``sum(out * G)`` with a fixed random G, so
every gradient is non-trivial. Comparisons, which have no gradient, have their own tests below the table.
"""

import operator
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tapegrad as vg
import reference
from helpers import engine_grads, numeric_grads
from reference import (BINARY, REDUCTIONS, UNARY, away_from_zero, count, distinct, log_softmax, logsumexp, positive,
                       probability, real, restored, scattered, sigmoid, softmax, sum_to_shape, unit_interval)

SEEDS = [0, 1, 2]


# ---- numpy references ----

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
    call: Callable = None  # (*nodes, **constants) -> node, e.g. a numpy-named function; op.do_forward if None

    def apply(self, nodes, kwargs):
        return (self.call or self.op.do_forward)(*nodes, **kwargs)

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



def binary_case(op, fwd, bwd, domains, shapes):
    def backward(G, a, b):
        ga, gb = bwd(G, a, b)
        return sum_to_shape(ga, a.shape), sum_to_shape(gb, b.shape)

    return Case(f"{op.__name__}-{shapes[0]}x{shapes[1]}", op, shapes, fwd, backward, domains)


UNARY_SHAPES = [(3, 4), (5,), (2, 3, 2)]
MATRIX_SHAPES = [(3, 4), (1, 5), (4, 1)]

CASES = [binary_case(op, f, b, d, shapes) for op, _, f, b, d in BINARY for shapes in BROADCAST_PATTERNS]
# Every element-wise unary op of the table, from its row in reference.UNARY.
CASES += [
    Case(f"{r.cls}-{shape}", getattr(vg.ops, r.cls), (shape,), fwd, lambda G, x, bwd=bwd: (bwd(G, x),), (domain,))
    for r in vg.ops.OPS if r.kind == vg.ops.UNARY and r.native in UNARY
    for fwd, bwd, domain, *_ in [UNARY[r.native]]
    for shape in UNARY_SHAPES
]
CASES += [
    case
    for shape in UNARY_SHAPES
    for case in (
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

def fixed(**constants):
    """A row's constants that do not depend on the draw."""
    return lambda rng, shapes: dict(constants)


# ---- element-wise, unary ----

def clip_domain(rng, shape):
    """Values below, inside and above [-0.5, 0.7], each at least 0.1 from both bounds."""
    parts = [rng.uniform(-2.0, -0.6, shape), rng.uniform(-0.4, 0.6, shape), rng.uniform(0.8, 2.0, shape)]
    return np.choose(rng.integers(0, 3, shape), parts)


CASES += [
    case
    for shape in UNARY_SHAPES
    for case in (
        Case(f"LeakyReLU-{shape}-default-slope", vg.LeakyReLU, (shape,), lambda x: np.where(x > 0, x, 0.01 * x),
             lambda G, x: (np.where(x > 0, G, 0.01 * G),), (away_from_zero,), call=vg.leaky_relu),
        Case(f"LeakyReLU-{shape}-slope0.2", vg.LeakyReLU, (shape,), lambda x, slope: np.where(x > 0, x, slope * x),
             lambda G, x, slope: (np.where(x > 0, G, slope * G),), (away_from_zero,), fixed(slope=0.2),
             call=vg.leaky_relu),
        Case(f"Clip-{shape}", vg.Clip, (shape,), np.clip,
             lambda G, x, a_min, a_max: (G * ((a_min <= x) & (x <= a_max)),), (clip_domain,),
             fixed(a_min=-0.5, a_max=0.7), call=vg.clip),
    )
]
CASES += [
    Case(f"Clip-{name}", vg.Clip, ((3, 4),), lambda x, a_min, a_max: np.clip(x, a_min, a_max),
         lambda G, x, a_min, a_max: (G * ((a_min is None or a_min <= x) & (a_max is None or x <= a_max)),),
         (clip_domain,), fixed(a_min=a_min, a_max=a_max), call=vg.clip)
    for name, a_min, a_max in [("no-upper-bound", -0.5, None), ("no-lower-bound", None, 0.7)]
]
CASES += [
    Case(f"LeakyReLU-op-{shape}", vg.LeakyReLU, (shape,), lambda x, slope: np.where(x > 0, x, slope * x),
         lambda G, x, slope: (np.where(x > 0, G, slope * G),), (away_from_zero,), fixed(slope=0.5))
    for shape in [(2, 5)]
]


# ---- reductions over axes ----


REDUCTION_AXES = [
    ((3, 4), None, False), ((3, 4), None, True), ((3, 4), 0, False), ((3, 4), 1, True), ((5,), 0, False),
    ((2, 3, 4), -1, False), ((2, 3, 4), -3, True), ((2, 3, 4), (0, 2), False), ((2, 3, 4), (2, -3), True),
    ((2, 3, 4), (0, 1, 2), False),
]


def reduction_case(op, function, fwd, bwd, domain, shape, axis, keepdims):
    return Case(f"{op.__name__}-{shape}-axis{axis}-keepdims{keepdims}", op, (shape,),
                lambda x, axis, keepdims: fwd(x, axis=axis, keepdims=keepdims),
                lambda G, x, axis, keepdims: (bwd(restored(G, x.shape, axis, keepdims), x, axis),),
                (domain,), fixed(axis=axis, keepdims=keepdims), call=function)


def var_case(shape, axis, ddof):
    return Case(f"Var-{shape}-axis{axis}-ddof{ddof}", vg.Var, (shape,),
                lambda x, axis, ddof: np.var(x, axis=axis, ddof=ddof),
                lambda G, x, axis, ddof: (2 * restored(G, x.shape, axis, False)
                                          * (x - np.mean(x, axis=axis, keepdims=True)) / (count(x, axis) - ddof),),
                constants=fixed(axis=axis, ddof=ddof), call=vg.var)


CASES += [reduction_case(*row, *axes) for row in REDUCTIONS for axes in REDUCTION_AXES]
CASES += [var_case(shape, axis, ddof) for shape, axis, ddof in
          [((3, 4), None, 1), ((3, 4), 1, 1), ((2, 3, 4), (0, 2), 2), ((5,), -1, 1)]]


# ---- linear algebra ----

CASES += [
    Case(f"MatrixMultiply-{a}x{b}", vg.MatrixMultiply, (a, b), np.matmul, matmul_grads, call=vg.matmul)
    for a, b in [((2, 3, 4), (2, 4, 2)), ((1, 3, 4), (2, 4, 2)), ((2, 3, 4), (4,)), ((2, 1, 2, 3), (1, 3, 3, 2))]
]


def linear_grads(G, x, w, b=None):
    grads = (G @ w, G.T @ x)
    return grads if b is None else grads + (G.sum(axis=0).reshape(b.shape),)


CASES += [
    Case(f"FusedLinear-{shapes}", vg.FusedLinear, shapes,
         lambda x, w, b=None: x @ w.T + (0.0 if b is None else b), linear_grads, call=vg.linear)
    for shapes in [((4, 3), (2, 3)), ((1, 5), (3, 5)), ((4, 3), (2, 3), (2,)), ((3, 2), (5, 2), (1, 5)),
                   ((2, 1), (1, 1), (1,))]
]
CASES += [
    Case(f"Transpose-{shape}-axes{axes}", vg.Transpose, (shape,), lambda x, axes: np.transpose(x, axes),
         lambda G, x, axes: (np.transpose(G, np.argsort(np.arange(x.ndim)[list(axes)]) if axes else None),),
         constants=fixed(axes=axes), call=vg.transpose)
    for shape, axes in [((3, 4), None), ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)),
                        ((2, 3, 4), (-1, 0, -2)), ((3, 4), (0, 1))]
]
CASES += [
    Case(f"Transpose-.T-{shape}", vg.Transpose, (shape,), lambda x: x.T, lambda G, x: (G.T,), call=lambda x: x.T)
    for shape in [(3, 4), (2, 3, 4), (5,)]
]


# ---- shape and indexing ----

CASES += [
    Case(f"Reshape-{shape}-to{new}", vg.Reshape, (shape,), lambda x, shape: np.reshape(x, shape),
         lambda G, x, shape: (G.reshape(x.shape),), constants=fixed(shape=new), call=vg.reshape)
    for shape, new in [((3, 4), (4, 3)), ((3, 4), (-1,)), ((2, 3, 4), (6, -1)), ((2, 3, 4), (2, -1, 3, 1)),
                       ((5,), (1, 5)), ((1, 1), ())]
]
CASES += [
    Case(f"Reshape-flatten-{shape}", vg.Reshape, (shape,), np.ravel, lambda G, x: (G.reshape(x.shape),),
         call=vg.flatten)
    for shape in [(3, 4), (2, 1, 3)]
]
CASES += [
    Case(f"Reshape-squeeze-{shape}-axis{axis}", vg.Reshape, (shape,), lambda x, axis: np.squeeze(x, axis=axis),
         lambda G, x, axis: (G.reshape(x.shape),), constants=fixed(axis=axis), call=vg.squeeze)
    for shape, axis in [((1, 3, 1), None), ((1, 3, 1), 0), ((1, 3, 1), -1), ((2, 1, 1, 3), (1, 2)), ((3,), None)]
]
CASES += [
    Case(f"Unsqueeze-function-{shape}-axis{axis}", vg.Unsqueeze, (shape,), lambda x, axis: np.expand_dims(x, axis),
         lambda G, x, axis: (G.reshape(x.shape),), constants=fixed(axis=axis), call=vg.unsqueeze)
    for shape, axis in [((3, 4), 1), ((3, 4), -3), ((), 0)]
]
CASES += [
    Case(f"BroadcastTo-{shape}-to{new}", vg.BroadcastTo, (shape,), lambda x, shape: np.broadcast_to(x, shape),
         lambda G, x, shape: (sum_to_shape(G, x.shape),), constants=fixed(shape=new), call=vg.broadcast_to)
    for shape, new in [((3, 1), (2, 3, 4)), ((4,), (3, 4)), ((), (2, 2)), ((1, 1), (1, 3)), ((2, 3), (2, 3))]
]


def concatenate_grads(G, *xs, axis):
    return tuple(np.split(G, np.cumsum([x.shape[axis] for x in xs])[:-1], axis=axis))


CASES += [
    Case(f"Concatenate-{shapes}-axis{axis}", vg.Concatenate, shapes, lambda *xs, axis: np.concatenate(xs, axis=axis),
         concatenate_grads, constants=fixed(axis=axis), call=lambda *xs, axis: vg.concatenate(xs, axis=axis))
    for shapes, axis in [(((2, 3), (4, 3)), 0), (((2, 3), (2, 1), (2, 2)), 1), (((2, 1, 3), (2, 2, 3)), -2),
                         (((3,), (1,), (2,), (3,)), 0), (((2, 2),), 1)]
]
CASES += [
    Case(f"Concatenate-op-{shapes}-axis{axis}", vg.Concatenate, shapes,
         lambda *xs, axis: np.concatenate(xs, axis=axis), concatenate_grads, constants=fixed(axis=axis))
    for shapes, axis in [(((2, 3), (2, 2)), 1)]
]
CASES += [
    Case(f"Concatenate-stack-{len(shapes)}x{shapes[0]}-axis{axis}", vg.Concatenate, shapes,
         lambda *xs, axis: np.stack(xs, axis=axis),
         lambda G, *xs, axis: tuple(np.moveaxis(G, axis, 0)), constants=fixed(axis=axis),
         call=lambda *xs, axis: vg.stack(xs, axis=axis))
    for shapes, axis in [(((3,), (3,)), 0), (((2, 3),) * 3, 1), (((2, 3),) * 2, -1), (((),) * 3, 0)]
]


BASIC_KEYS = [
    ((5,), 2), ((5,), -1), ((5,), slice(1, 4)), ((5,), slice(None, None, -2)), ((3, 4), (1, slice(None, None, 2))),
    ((3, 4), (slice(None, None, -1), -2)), ((3, 4), (None, Ellipsis, 0)), ((2, 3, 4), (Ellipsis, slice(3, 0, -2))),
    ((2, 3, 4), (0, slice(1, None), None)), ((2, 3, 4), (slice(None), None, 1, slice(-1, None, -3))),
    ((2, 3, 4), (1, 2, 3)), ((2, 3, 4), (slice(5, 7),)),
]
ADVANCED_KEYS = [
    ("repeated", (4, 3), np.array([0, 2, 0, 3, 0])),
    ("negative", (5,), np.array([-1, 0, -1, 4])),
    ("2d-index", (4, 3), np.array([[0, 1], [1, 1]])),
    ("pairs", (3, 4), (np.array([0, 1, 1, 2]), np.array([3, 3, 3, 0]))),
    ("column-list", (3, 4), (slice(None), [2, 0, 2])),
    ("int-and-array", (2, 3, 4), (1, slice(None), np.array([0, 0, 3]))),
    ("array-then-slice", (3, 4), (np.array([2, 2]), slice(1, 3))),
    ("row-mask", (3, 4), np.array([True, False, True])),
    ("mask-and-slice", (3, 4), (np.array([False, True, True]), slice(None, None, -1))),
    ("empty", (3, 4), np.array([], dtype=np.int64)),
]

CASES += [
    Case(f"GetItem-{shape}-{key}", vg.GetItem, (shape,), lambda x, key: x[key], lambda G, x, key: (scattered(G, x, key),),
         constants=fixed(key=key), call=lambda x, key: x[key])
    for shape, key in BASIC_KEYS
]
CASES += [
    Case(f"Gather-{shape}-{name}", vg.Gather, (shape,), lambda x, key: x[key], lambda G, x, key: (scattered(G, x, key),),
         constants=fixed(key=key), call=lambda x, key: x[key])
    for name, shape, key in ADVANCED_KEYS
]
CASES += [
    Case(f"Gather-{shape}-random-mask", vg.Gather, (shape,), lambda x, key: x[key],
         lambda G, x, key: (scattered(G, x, key),), constants=lambda rng, shapes: {"key": rng.random(shapes[0]) < 0.5},
         call=lambda x, key: x[key])
    for shape in [(3, 4), (2, 3, 2)]
]
CASES += [
    Case(f"Gather-op-{shape}", vg.Gather, (shape,), lambda x, indices: x.ravel()[indices],
         lambda G, x, indices: (scattered(G, x.ravel(), indices).reshape(x.shape),),
         constants=fixed(indices=np.array([[5, 0], [5, 11]])))
    for shape in [(3, 4)]
]
def written(x, key, v):
    y = x.copy()
    y[key] = v
    return y


def written_grads(G, x, v, key):
    gx = G.copy()
    gx[key] = 0
    return gx, sum_to_shape(G[key], v.shape)


SETITEM_KEYS = [  # (x's shape, key, value's shape): basic and advanced keys, values broadcast
    ((3, 4), (slice(None), 1), (3,)), ((3, 4), 0, (1,)), ((3, 4), (Ellipsis,), (3, 4)),
    ((2, 3, 4), (1, slice(0, 2)), (4,)), ((5,), np.array([4, 0, 2]), (3,)), ((3, 4), np.array([True, False, True]), (4,)),
    ((3, 4), (slice(None, None, -1), np.array([3, 0])), ()),
]
CASES += [
    Case(f"SetItem-{shape}-{key}-{vshape}", vg.SetItem, (shape, vshape), lambda x, v, key: written(x, key, v),
         written_grads, constants=fixed(key=key), call=lambda x, v, key: vg.setitem(x, key, v))
    for shape, key, vshape in SETITEM_KEYS
]
CASES += [
    Case("AsType-(3, 4)", vg.AsType, ((3, 4),), lambda x, dtype: x.astype(dtype), lambda G, x, dtype: (G,),
         constants=fixed(dtype="float64"), call=lambda x, dtype: vg.astype(x, dtype)),
]

CASES += [
    Case(f"GetItem-op-{shape}", vg.GetItem, (shape,), lambda x, **view: x.ravel()[[1, 3, 5, 7]].reshape(2, 2),
         lambda G, x, **view: (scattered(G, x.ravel(), np.array([[1, 3], [5, 7]])).reshape(x.shape),),
         constants=fixed(offset=1, shape=(2, 2), strides=(4, 2)))
    for shape in [(2, 4)]
]


# ---- neural-network functions ----

SOFTMAX_AXES = [((3, 4), -1), ((3, 4), 0), ((5,), 0), ((2, 3, 4), -1), ((2, 3, 4), 0), ((2, 3, 4), 1)]

CASES += [
    Case(f"Softmax-{shape}-axis{axis}", vg.Softmax, (shape,), softmax,
         lambda G, x, axis: (softmax(x, axis) * (G - np.sum(G * softmax(x, axis), axis=axis, keepdims=True)),),
         constants=fixed(axis=axis), call=vg.softmax)
    for shape, axis in SOFTMAX_AXES
]
CASES += [
    Case(f"LogSoftmax-{shape}-axis{axis}", vg.LogSoftmax, (shape,), log_softmax,
         lambda G, x, axis: (G - softmax(x, axis) * np.sum(G, axis=axis, keepdims=True),),
         constants=fixed(axis=axis), call=vg.logsoftmax)
    for shape, axis in SOFTMAX_AXES
]
CASES += [
    Case(f"{op.__name__}-op-{shape}", op, (shape,), fwd, bwd)
    for shape in [(3, 4)]
    for op, fwd, bwd in [
        (vg.Softmax, softmax, lambda G, x: (softmax(x) * (G - np.sum(G * softmax(x), axis=-1, keepdims=True)),)),
        (vg.LogSoftmax, log_softmax, lambda G, x: (G - softmax(x) * np.sum(G, axis=-1, keepdims=True),)),
    ]
]


def reduce_loss(losses, reduction):
    return np.mean(losses) if reduction == "mean" else np.sum(losses)


def per_element(G, x, reduction):
    """The upstream gradient of a reduced loss, spread over its elements."""
    return np.full(x.shape, G / (x.size if reduction == "mean" else 1.0))


def cross_entropy(x, targets, reduction):
    return reduce_loss(logsumexp(x, axis=1) - x[np.arange(len(x)), targets], reduction)


def cross_entropy_grads(G, x, targets, reduction):
    onehot = np.eye(x.shape[1])[targets]
    return ((softmax(x) - onehot) * G / (len(x) if reduction == "mean" else 1.0),)


def bce(p, y, reduction):
    return reduce_loss(-(y * np.log(p) + (1 - y) * np.log(1 - p)), reduction)


def bce_with_logits(z, y, reduction):
    return reduce_loss(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), reduction)


LOSSES = [
    # op, function, numpy forward, gradients per element (before the upstream factor), domains
    (vg.BinaryCrossEntropy, vg.binary_cross_entropy, bce,
     lambda p, y: ((p - y) / (p * (1 - p)), np.log(1 - p) - np.log(p)), (probability, unit_interval)),
    (vg.BinaryCrossEntropyWithLogits, vg.binary_cross_entropy_with_logits, bce_with_logits,
     lambda z, y: (sigmoid(z) - y, -z), (real, unit_interval)),
    (vg.MSELoss, vg.mse_loss, lambda p, t, reduction: reduce_loss((p - t) ** 2, reduction),
     lambda p, t: (2 * (p - t), -2 * (p - t)), (real, real)),
]

CASES += [
    Case(f"CrossEntropy-{shape}-{reduction}", vg.CrossEntropy, (shape,), cross_entropy, cross_entropy_grads,
         constants=lambda rng, shapes, reduction=reduction: {
             "targets": rng.integers(0, shapes[0][1], shapes[0][0]), "reduction": reduction},
         call=vg.cross_entropy)
    for shape in [(3, 4), (1, 5), (6, 2)]
    for reduction in ["mean", "sum"]
]
CASES += [
    Case(f"{op.__name__}-{shape}-{reduction}", op, (shape, shape), fwd,
         lambda G, a, b, reduction, local=local: tuple(per_element(G, a, reduction) * g for g in local(a, b)),
         domains, fixed(reduction=reduction), call=function)
    for op, function, fwd, local, domains in LOSSES
    for shape in [(3, 4), (5,), (2, 1, 3)]
    for reduction in ["mean", "sum"]
]
CASES += [
    Case(f"{op.__name__}-op-default-mean", op, ((2, 3), (2, 3)), lambda a, b, fwd=fwd: fwd(a, b, "mean"),
         lambda G, a, b, local=local: tuple(per_element(G, a, "mean") * g for g in local(a, b)), domains)
    for op, _, fwd, local, domains in LOSSES
]


# ---- convolution and pooling (NCHW) ----

def two(v):
    """An int or a pair as a pair, as vg's functions read their window arguments."""
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    if padding == "same":  # torch's rule: half the total on each side, the odd one at the bottom and right
        total = [two(dilation)[a] * (w.shape[2 + a] - 1) for a in (0, 1)]
        x = reference.pad(x, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2))
        padding = 0
    padding = 0 if padding == "valid" else padding
    return reference.conv2d(x, w, b, two(stride), two(padding), two(dilation), groups)


def conv_grads(G, x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    padding = 0 if padding == "valid" else padding
    return reference.conv2d_grads(G, x, w, b, two(stride), two(padding), two(dilation), groups)


CONV_CASES = [
    # id, shapes (input, weight[, bias]), keyword arguments of vg.conv2d
    ("plain", ((2, 3, 5, 6), (4, 3, 3, 2), (4,)), {}),
    ("stride2-padding1", ((2, 2, 6, 5), (3, 2, 3, 3), (3,)), {"stride": 2, "padding": 1}),
    ("dilation-padding-pairs-no-bias", ((1, 2, 7, 6), (2, 2, 2, 3)), {"dilation": (2, 1), "padding": (1, 2)}),
    ("groups2", ((2, 4, 5, 5), (6, 2, 3, 3), (6,)), {"groups": 2}),
    ("depthwise-strided", ((1, 3, 5, 6), (3, 1, 2, 2)), {"groups": 3, "stride": (1, 2)}),
    ("pointwise-1x1", ((2, 3, 4, 4), (5, 3, 1, 1), (5,)), {}),
    ("window-of-90-values-by-gemm", ((1, 10, 4, 4), (2, 10, 3, 3), (2,)), {"padding": 1}),
    ("padding-valid", ((1, 2, 4, 5), (2, 2, 2, 2)), {"padding": "valid"}),
]
CASES += [
    Case(f"Convolution2D-{name}", vg.Convolution2D, shapes, conv_ref, conv_grads, constants=fixed(**kw),
         call=lambda *xs, **kw: vg.conv2d(*xs, **kw))
    for name, shapes, kw in CONV_CASES
]
def same_padding_grads(G, x, w, b, amounts):
    """Gradients of conv2d(pad(x, amounts), w, b): the input's through the padding."""
    dx, dw, db = conv_grads(G, reference.pad(x, amounts), w, b)
    return reference.pad_grad(dx, x, amounts), dw, db


CASES += [  # padding='same' with an odd total goes through Pad first; the class without the function
    Case("Convolution2D-padding-same-odd", vg.Convolution2D, ((1, 2, 5, 6), (2, 2, 2, 3), (2,)), conv_ref,
         lambda G, x, w, b, padding: same_padding_grads(G, x, w, b, (1, 1, 0, 1)), constants=fixed(padding="same"), call=lambda *xs, **kw: vg.conv2d(*xs, **kw)),
    Case("Convolution2D-op", vg.Convolution2D, ((2, 2, 4, 4), (3, 2, 2, 2)),
         lambda x, w, **kw: reference.conv2d(x, w, None, **kw), lambda G, x, w, **kw: reference.conv2d_grads(G, x, w, **kw),
         constants=fixed(stride=(1, 1), padding=(1, 0), dilation=(1, 1))),
]

MAX_POOL_CASES = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((1, 2, 5, 7), {"kernel_size": 2}),  # odd sizes: the last row and column are in no window
    ((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 5, 5), {"kernel_size": 2, "stride": 1}),  # overlapping windows
    ((1, 2, 7, 7), {"kernel_size": (3, 2), "stride": (2, 1), "dilation": (1, 2), "ceil_mode": True}),
]


def pool_args(kernel_size, stride=None, padding=0, **rest):
    return dict(kernel_size=two(kernel_size), stride=two(kernel_size if stride is None else stride),
                padding=two(padding), **{k: (two(v) if k == "dilation" else v) for k, v in rest.items()})


CASES += [
    Case(f"MaxPooling2D-{shape}-{kw}", vg.MaxPooling2D, (shape,), lambda x, **kw: reference.max_pool2d(x, **pool_args(**kw)),
         lambda G, x, **kw: (reference.max_pool2d_grad(G, x, **pool_args(**kw)),), (distinct,), fixed(**kw),
         call=lambda x, **kw: vg.max_pool2d(x, **kw))
    for shape, kw in MAX_POOL_CASES
]
AVG_POOL_CASES = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
    ((1, 2, 6, 7), {"kernel_size": (3, 2), "stride": 2, "padding": 1, "ceil_mode": True}),
    ((1, 1, 5, 5), {"kernel_size": 3, "stride": 1, "divisor_override": 4}),
]
CASES += [
    Case(f"AvgPooling2D-{shape}-{kw}", vg.AvgPooling2D, (shape,), lambda x, **kw: reference.avg_pool2d(x, **pool_args(**kw)),
         lambda G, x, **kw: (reference.avg_pool2d_grad(G, x, **pool_args(**kw)),), constants=fixed(**kw),
         call=lambda x, **kw: vg.avg_pool2d(x, **kw))
    for shape, kw in AVG_POOL_CASES
]
CASES += [
    Case(f"AdaptiveAvgPooling2D-{shape}-{size}", vg.AdaptiveAvgPooling2D, (shape,),
         lambda x, output_size, resolved=resolved: reference.adaptive_avg_pool2d(x, resolved),
         lambda G, x, output_size, resolved=resolved: (reference.adaptive_avg_pool2d_grad(G, x, resolved),),
         constants=fixed(output_size=size), call=vg.adaptive_avg_pool2d)
    for shape, size, resolved in [((2, 3, 7, 5), (3, 2), (3, 2)), ((1, 2, 4, 4), 1, (1, 1)),
                                  ((1, 1, 5, 6), (None, 4), (5, 4)), ((1, 1, 3, 3), 5, (5, 5))]
]
CASES += [
    Case(f"Pad-{shape}-{amounts}-value{value}", vg.Pad, (shape,),
         lambda x, pad, value: reference.pad(x, pad, 0.0 if value is None else value),
         lambda G, x, pad, value: (reference.pad_grad(G, x, pad),), constants=fixed(pad=amounts, value=value),
         call=vg.pad)
    for shape, amounts, value in [((2, 3), (1, 2), None), ((2, 3, 4), (1, 0, -1, 2), 0.5),
                                  ((1, 2, 3, 4), (1, 1, 1, 1, 0, 1), -2.0), ((3,), (-1, -2), None)]
]
CASES += [
    Case(f"Reshape-flatten-{shape}-from{start}-to{end}", vg.Reshape, (shape,),
         lambda x, start_dim, end_dim: np.reshape(x, torch_flatten_shape(x.shape, start_dim, end_dim)),
         lambda G, x, start_dim, end_dim: (G.reshape(x.shape),), constants=fixed(start_dim=start, end_dim=end),
         call=vg.flatten)
    for shape, start, end in [((2, 3, 4, 5), 1, -1), ((2, 3, 4), 0, 1), ((2, 3, 4), -2, -1), ((2, 3), 1, 1), ((), 0, -1)]
]


def torch_flatten_shape(shape, start, end):
    """The shape torch.flatten gives: axes start..end merged (a 0-d tensor becomes (1,))."""
    if not shape:
        return (1,)
    start, end = start % len(shape), end % len(shape)
    return shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]


COMPARISON_OPS = [vg.Equal, vg.NotEqual, vg.Less, vg.LessEqual, vg.Greater, vg.GreaterEqual]


def engine_op_classes():
    return {cls for cls in vars(vg.ops).values()
            if isinstance(cls, type) and issubclass(cls, vg.NativeOp) and cls is not vg.NativeOp}


CASE_PARAMS = [pytest.param(case, seed, id=f"{case.id}-seed{seed}") for case in CASES for seed in SEEDS]


def loss_of(case, kwargs, upstream):
    """sum(op(*inputs) * G) as a function of the input nodes."""
    def fn(nodes):
        return vg.Sum.do_forward(case.apply(nodes, kwargs) * upstream)
    return fn


def test_op_table_has_a_row_for_every_engine_op_except_the_comparisons():
    assert {case.op for case in CASES} == engine_op_classes() - set(COMPARISON_OPS)


@pytest.mark.parametrize("case, seed", CASE_PARAMS)
def test_op_forward_matches_numpy_reference(case, seed):
    arrays, kwargs, _ = case.draw(seed)
    expected = case.forward(*arrays, **kwargs)
    out = case.apply([vg.TensorNode(a.copy()) for a in arrays], kwargs)
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


@pytest.mark.parametrize("case, seed", [p for p in CASE_PARAMS if p.values[0].op is not vg.AsType])
def test_op_forward_in_float32_matches_numpy_and_stays_float32(case, seed):
    arrays, kwargs, upstream = case.draw(seed)
    arrays32 = [a.astype(np.float32) for a in arrays]
    expected = case.forward(*[a.astype(np.float64) for a in arrays32], **kwargs)
    nodes = [vg.TensorNode(a.copy()) for a in arrays32]
    out = case.apply(nodes, kwargs)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.value, expected, rtol=1e-5, atol=1e-5)
    vg.Sum.do_forward(out * upstream.astype(np.float32)).backward()
    for n, e in zip(nodes, case.backward(upstream, *[a.astype(np.float64) for a in arrays32], **kwargs)):
        assert n.grad.dtype == np.float32
        np.testing.assert_allclose(n.grad, e, rtol=1e-4, atol=1e-4)


# ---- comparisons: constants, not ops on the tape ----

COMPARISONS = {
    # op, function, operator, numpy
    "equal": (vg.Equal, vg.equal, operator.eq, np.equal),
    "not_equal": (vg.NotEqual, vg.not_equal, operator.ne, np.not_equal),
    "less": (vg.Less, vg.less, operator.lt, np.less),
    "less_equal": (vg.LessEqual, vg.less_equal, operator.le, np.less_equal),
    "greater": (vg.Greater, vg.greater, operator.gt, np.greater),
    "greater_equal": (vg.GreaterEqual, vg.greater_equal, operator.ge, np.greater_equal),
}


def test_comparison_table_has_a_row_for_every_comparison_op():
    assert {row[0] for row in COMPARISONS.values()} == set(COMPARISON_OPS)


def small_integers(rng, shape):
    """-1, 0 and 1 equally often (a scalar is 0) in random order, so every outcome of a comparison occurs."""
    n = int(np.prod(shape, dtype=np.int64))
    return rng.permutation(np.resize([-1.0, 0.0, 1.0], n)).reshape(shape) if shape else np.array(0.0)


@pytest.mark.parametrize("form", ["op", "function", "operator"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", BROADCAST_PATTERNS, ids=str)
@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_gives_numpys_truth_as_ones_and_zeros_in_the_input_dtype(name, shapes, dtype, form):
    op, function, apply, reference = COMPARISONS[name]
    rng = np.random.default_rng(len(name))
    a, b = (small_integers(rng, s).astype(dtype) for s in shapes)
    call = {"op": op.do_forward, "function": function, "operator": apply}[form]
    out = call(vg.TensorNode(a), vg.TensorNode(b))
    expected = reference(a, b)
    assert out.dtype == dtype
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.value, expected.astype(dtype))
    assert 0 < expected.sum() < expected.size or expected.size == 1  # both outcomes occur


@pytest.mark.parametrize("form", ["op", "function", "operator"])
@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_result_is_a_constant_without_source_or_grad(name, form):
    op, function, apply, _ = COMPARISONS[name]
    a, b = vg.TensorNode(np.array([1.0, 2.0, 3.0])), vg.TensorNode(np.array([2.0, 2.0, 2.0]))
    assert a.requires_grad and b.requires_grad
    out = {"op": op.do_forward, "function": function, "operator": apply}[form](a, b)
    assert out.source is None
    assert out.requires_grad is False
    assert out.is_leaf


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparison_used_as_a_mask_passes_the_gradient_only_through_the_masked_product(name):
    _, _, apply, reference = COMPARISONS[name]
    rng = np.random.default_rng(7)
    x, y, upstream = small_integers(rng, (3, 4)), small_integers(rng, (4,)), rng.standard_normal((3, 4))
    nx, ny = vg.TensorNode(x.copy()), vg.TensorNode(y.copy())
    vg.Sum.do_forward(nx * apply(nx, ny) * upstream).backward()
    np.testing.assert_array_equal(nx.grad, upstream * reference(x, y))
    np.testing.assert_array_equal(ny.grad, np.zeros(4))


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_x_times_comparison_with_zero_has_the_mask_as_gradient(name):
    _, _, apply, reference = COMPARISONS[name]
    x = np.array([[-2.0, 0.0, 1.5], [3.0, -0.5, 0.0]])
    node = vg.TensorNode(x.copy())
    vg.Sum.do_forward(node * apply(node, 0.0)).backward()
    np.testing.assert_array_equal(node.grad, reference(x, 0.0).astype(np.float64))


# ---- maximum and minimum on ties ----

@pytest.mark.parametrize("function, a_share, b_share", [
    (vg.maximum, [0.5, 1.0, 0.0, 0.5], [0.5, 0.0, 1.0, 0.5]),
    (vg.minimum, [0.5, 0.0, 1.0, 0.5], [0.5, 1.0, 0.0, 0.5]),
], ids=["maximum", "minimum"])
def test_maximum_and_minimum_share_the_gradient_equally_on_ties(function, a_share, b_share):
    a, b = np.array([1.0, 2.0, 3.0, -4.0]), np.array([1.0, 0.0, 5.0, -4.0])
    upstream = np.array([2.0, 4.0, 8.0, 16.0])
    na, nb = vg.TensorNode(a), vg.TensorNode(b)
    vg.Sum.do_forward(function(na, nb) * upstream).backward()
    np.testing.assert_array_equal(na.grad, upstream * a_share)
    np.testing.assert_array_equal(nb.grad, upstream * b_share)


@pytest.mark.parametrize("function", [vg.maximum, vg.minimum])
def test_a_broadcast_operand_tied_with_several_elements_collects_half_of_each_gradient(function):
    x = vg.TensorNode(np.array([[2.0, 1.0], [2.0, 2.0]]))
    s = vg.TensorNode(np.array(2.0))
    upstream = np.array([[1.0, 10.0], [100.0, 1000.0]])
    vg.Sum.do_forward(function(x, s) * upstream).backward()
    x_wins_at_1 = 1.0 if function is vg.minimum else 0.0
    np.testing.assert_array_equal(x.grad, upstream * [[0.5, x_wins_at_1], [0.5, 0.5]])
    assert s.grad.shape == ()
    assert s.grad == 0.5 + 50.0 + 500.0 + (1.0 - x_wins_at_1) * 10.0


# ---- special values ----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_is_finite_and_exact_for_large_inputs_of_either_sign(dtype):
    x = np.array([-1000.0, -60.0, -1.0, 0.0, 1.0, 60.0, 1000.0])
    node = vg.TensorNode(x.astype(dtype))
    y = vg.softplus(node)
    vg.Sum.do_forward(y).backward()
    assert y.dtype == dtype and node.grad.dtype == dtype
    np.testing.assert_allclose(y.value, np.logaddexp(0.0, x), rtol=1e-6, atol=0)
    np.testing.assert_allclose(node.grad, sigmoid(x), rtol=1e-6, atol=0)


@pytest.mark.parametrize("function, reference", [(vg.log, np.log), (vg.sqrt, np.sqrt)], ids=["log", "sqrt"])
def test_log_and_sqrt_of_negative_values_give_nan_without_raising(function, reference):
    x = np.array([-4.0, -1e-300, 0.0, 4.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = reference(x)
    np.testing.assert_array_equal(function(vg.TensorNode(x)).value, expected)


def test_cross_entropy_of_extreme_logits_is_finite():
    logits = vg.TensorNode(np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]]))
    loss = vg.cross_entropy(logits, [1, 2], reduction="sum")
    loss.backward()
    assert loss.item() == 2000.0
    np.testing.assert_array_equal(logits.grad, [[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])


def test_softmax_family_is_exact_far_below_the_row_maximum():
    # exp(x - max) below the normal range comes from the C library, as numpy's: exact zeros and
    # subnormals, not the 5.6e-309 that a vectorised exp stops at (softmax writes it in place)
    x = np.array([[0.0, -1000.0, -np.inf, -745.0, -700.0], [3.0, 2.0, 1.0, -1e300, 0.0]])
    expected = np.exp(x - x.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    for dtype in (np.float64, np.float32):
        p = vg.softmax(vg.TensorNode(x.astype(dtype))).value
        exact = expected.astype(dtype)
        np.testing.assert_array_equal(p[0, 1:4], exact[0, 1:4])
        assert p[0, 1] == 0.0 and p[0, 2] == 0.0 and p[1, 3] == 0.0
        np.testing.assert_allclose(p, exact, rtol=1e-6 if dtype == np.float32 else 1e-14)
    ls = vg.logsoftmax(vg.TensorNode(x))
    assert ls.value[0, 2] == -np.inf
    shifted = x[1] - x[1].max()
    np.testing.assert_allclose(ls.value[1], shifted - np.log(np.exp(shifted).sum()), rtol=1e-14)


def test_binary_cross_entropy_clamps_its_logs_at_minus_100():
    p = vg.TensorNode(np.array([0.0, 1.0]))
    loss = vg.binary_cross_entropy(p, np.array([1.0, 0.0]), reduction="sum")
    assert loss.item() == 200.0


def test_binary_cross_entropy_with_logits_is_finite_for_large_logits():
    z = vg.TensorNode(np.array([1000.0, -1000.0]))
    loss = vg.binary_cross_entropy_with_logits(z, np.array([0.0, 1.0]), reduction="sum")
    loss.backward()
    assert loss.item() == 2000.0
    np.testing.assert_array_equal(z.grad, [1.0, -1.0])


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("big,small", [((128, 8), (1, 8)), ((128, 8), (8,)), ((5, 1, 3), (1, 1, 3)),
                                       ((4, 6, 3), (6, 3)), ((3, 4, 2), (1, 4, 2)), ((0, 3), (1, 3))])
def test_a_bias_gradient_sums_each_element_in_double_row_after_row(big, small, dtype):
    """The gradient of an operand broadcast along leading axes only (a bias) is, bit for bit, each
    element's sum in double over the rows in order, rounded once (the general path's order too)."""
    rng = np.random.default_rng(len(big) * 10 + big[-1])
    G = rng.standard_normal(big).astype(dtype)
    x, b = vg.TensorNode(np.zeros(big, dtype)), vg.TensorNode(np.zeros(small, dtype))
    (x + b).backward(G)
    acc = np.zeros(int(np.prod(small)))
    for row in G.astype(np.float64).reshape(-1, acc.size):
        acc = acc + row
    np.testing.assert_array_equal(b.grad, acc.reshape(small).astype(dtype))


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
    ("sub-shapes", lambda: node(2, 3) - node(3, 2), ValueError, r"subtract: shapes \(2, 3\) and \(3, 2\) cannot be broadcast"),
    ("mul-shapes", lambda: vg.Multiply.do_forward(node(5), node(4)), ValueError, r"multiply: shapes \(5,\) and \(4,\)"),
    ("div-shapes", lambda: node(2, 3) / node(2, 2), ValueError, r"divide: shapes \(2, 3\) and \(2, 2\)"),
    ("pow-shapes", lambda: node(2, 3) ** node(2), ValueError, r"power: shapes \(2, 3\) and \(2,\)"),
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
    ("select-no-indices", lambda: vg.Select.do_forward(node(2, 3)), TypeError, r"select: missing keyword argument 'indices'"),
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
    ("mul-object-operand", lambda: node(2) * object(), TypeError, r"multiply: unsupported dtype object"),
    ("sub-string-array", lambda: np.array(["a", "b"]) - node(2), TypeError, r"subtract: unsupported dtype"),
    ("tensornode-strings", lambda: vg.TensorNode(np.array(["a", "b"])), TypeError, r"TensorNode: unsupported dtype"),
    ("tensornode-objects", lambda: vg.TensorNode(np.array([object()])), TypeError,
     r"TensorNode: unsupported dtype object"),
    ("sigmoid-raw-backward-shape", raw_backward_with_wrong_shape, ValueError,
     r"sigmoid: gradient of shape \(4,\) does not match output of shape \(3,\)"),
]
BAD_INPUTS += [
    (f"{name}-shapes", lambda function=function: function(node(2, 3), node(4)), ValueError,
     rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together")
    for name, function in [("maximum", vg.maximum), ("minimum", vg.minimum), ("equal", vg.equal),
                           ("not_equal", vg.not_equal), ("less", vg.less), ("less_equal", vg.less_equal),
                           ("greater", vg.greater), ("greater_equal", vg.greater_equal)]
]
BAD_INPUTS += [
    (f"{name}-operator-shapes", lambda apply=apply: apply(node(3, 2), node(3)), ValueError,
     rf"{name}: shapes \(3, 2\) and \(3,\) cannot be broadcast together")
    for name, apply in [("equal", operator.eq), ("not_equal", operator.ne), ("less", operator.lt),
                        ("less_equal", operator.le), ("greater", operator.gt), ("greater_equal", operator.ge)]
]
BAD_INPUTS += [
    (f"{name}-axis-out-of-range", lambda function=function: function(node(2, 3), axis=2), IndexError,
     rf"{name}: axis 2 is out of range")
    for name, function in [("sum", vg.sum), ("mean", vg.mean), ("max", vg.max), ("min", vg.min),
                           ("logsumexp", vg.logsumexp), ("var", vg.var)]
]
BAD_INPUTS += [
    (f"{name}-negative-axis-out-of-range", lambda function=function: function(node(2, 3), axis=(0, -3)), IndexError,
     rf"{name}: axis -3 is out of range")
    for name, function in [("sum", vg.sum), ("mean", vg.mean), ("max", vg.max), ("min", vg.min),
                           ("logsumexp", vg.logsumexp), ("var", vg.var)]
]
BAD_INPUTS += [
    (f"{name}-duplicate-axes", lambda function=function: function(node(2, 3), axis=(1, -1)), ValueError,
     rf"{name}: duplicate value in axis")
    for name, function in [("sum", vg.sum), ("mean", vg.mean), ("max", vg.max), ("min", vg.min),
                           ("logsumexp", vg.logsumexp), ("var", vg.var)]
]
BAD_INPUTS += [
    ("max-empty-axis", lambda: vg.max(node(2, 0), axis=1), ValueError, r"max: cannot reduce an empty axis"),
    ("min-empty-axis", lambda: vg.min(node(0, 3), axis=0), ValueError, r"min: cannot reduce an empty axis"),
    ("max-of-no-elements", lambda: vg.max(node(0)), ValueError, r"max: cannot reduce an empty axis"),
    ("matmul-vectors-align", lambda: node(3) @ node(4), ValueError, r"matmul: shapes \(3,\) and \(4,\) do not align"),
    ("matmul-batches-align", lambda: vg.matmul(node(2, 3, 4), node(2, 5, 2)), ValueError,
     r"matmul: shapes \(2, 3, 4\) and \(2, 5, 2\) do not align \(4 != 5\)"),
    ("linear-align", lambda: vg.linear(node(2, 3), node(4, 2)), ValueError,
     r"linear: input of shape \(2, 3\) does not fit weight of shape \(4, 2\)"),
    ("linear-bias-shape", lambda: vg.linear(node(2, 3), node(4, 3), node(3)), ValueError,
     r"linear: bias must have shape \(4,\) or \(1, 4\), got \(3,\)"),
    ("reshape-size", lambda: node(2, 3).reshape(4, 2), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) into shape \(4, 2\)"),
    ("reshape-inferred-size", lambda: node(2, 3).reshape(-1, 4), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) into shape \(-1, 4\)"),
    ("reshape-two-unknowns", lambda: vg.reshape(node(2, 3), (-1, -1)), ValueError, r"reshape: invalid shape"),
    ("transpose-repeated-axis", lambda: vg.transpose(node(2, 3), (0, 0)), ValueError, r"transpose: .*repeated axis"),
    ("transpose-too-few-axes", lambda: vg.transpose(node(2, 3, 4), (1, 0)), ValueError,
     r"transpose: axes must list each of the 3 axes"),
    ("transpose-axis-out-of-range", lambda: node(2, 3).transpose(0, 2), IndexError,
     r"transpose: axis 2 is out of range"),
    ("squeeze-axis-out-of-range", lambda: vg.squeeze(node(1, 3), 2), IndexError, r"squeeze: axis 2 is out of range"),
    ("squeeze-negative-axis-out-of-range", lambda: node(1, 3).squeeze(-3), IndexError,
     r"squeeze: axis -3 is out of range"),
    ("squeeze-duplicate-axes", lambda: vg.squeeze(node(1, 3), (0, 0)), ValueError, r"squeeze: .*repeated axis"),
    ("squeeze-not-size-one-function", lambda: vg.squeeze(node(1, 3), 1), ValueError, r"squeeze: cannot squeeze axis 1"),
    ("unsqueeze-axis-out-of-range", lambda: vg.unsqueeze(node(2, 3), 3), IndexError, r"unsqueeze: axis 3 is out of range"),
    ("unsqueeze-negative-axis-out-of-range", lambda: vg.unsqueeze(node(2, 3), -4), IndexError,
     r"unsqueeze: axis -4 is out of range"),
    ("concatenate-axis-out-of-range", lambda: vg.concatenate([node(2, 3), node(2, 3)], axis=2), IndexError,
     r"concatenate: axis 2 is out of range"),
    ("concatenate-negative-axis-out-of-range", lambda: vg.concatenate([node(2, 3), node(2, 3)], axis=-3), IndexError,
     r"concatenate: axis -3 is out of range"),
    ("concatenate-shapes", lambda: vg.concatenate([node(2, 3), node(2, 2)], axis=0), ValueError,
     r"concatenate: shapes \(2, 3\) and \(2, 2\) differ outside axis 0"),
    ("concatenate-ndim", lambda: vg.concatenate([node(2, 3), node(3)], axis=0), ValueError,
     r"concatenate: shapes \(2, 3\) and \(3,\) differ"),
    ("concatenate-nothing", lambda: vg.concatenate([]), ValueError, r"concatenate: need at least one node"),
    ("stack-shapes", lambda: vg.stack([node(2, 3), node(3)]), ValueError, r"stack: all nodes must have the same shape"),
    ("broadcast_to-shape", lambda: vg.broadcast_to(node(2, 3), (3, 3)), ValueError,
     r"broadcast_to: cannot broadcast shape \(2, 3\) to \(3, 3\)"),
    ("getitem-int-out-of-range", lambda: node(2, 3)[2], IndexError, r"getitem: index 2 is out of bounds for axis 0"),
    ("getitem-negative-int-out-of-range", lambda: node(2, 3)[:, -4], IndexError,
     r"getitem: index -4 is out of bounds for axis 1"),
    ("getitem-array-out-of-range", lambda: node(2, 3)[np.array([0, 3])], IndexError,
     r"getitem: index 3 is out of bounds for axis 0"),
    ("getitem-too-many-indices", lambda: node(2, 3)[0, 0, 0], IndexError, r"getitem: too many indices"),
    ("getitem-float", lambda: node(2, 3)[1.0], IndexError, r"getitem: only integers, slices"),
    ("getitem-float-array", lambda: node(2, 3)[np.array([0.0, 1.0])], IndexError,
     r"getitem: arrays used as indices must be of integer \(or boolean\) type"),
    ("getitem-mask-shape", lambda: node(2, 3)[np.array([True, False, True])], IndexError,
     r"getitem: boolean index did not match"),
    ("gather-out-of-range", lambda: vg.Gather.do_forward(node(2, 3), indices=np.array([6])), IndexError, r"gather: "),
    ("softmax-axis-out-of-range", lambda: vg.softmax(node(2, 3), axis=2), IndexError, r"Softmax: axis out of range"),
    ("logsoftmax-axis-out-of-range", lambda: vg.logsoftmax(node(2, 3), axis=-3), IndexError,
     r"LogSoftmax: axis out of range"),
    ("cross_entropy-target-too-large", lambda: vg.cross_entropy(node(2, 3), [0, 3]), IndexError,
     r"cross_entropy: target 3 in row 1 is not a class index in \[0, 3\)"),
    ("cross_entropy-negative-target", lambda: vg.cross_entropy(node(2, 3), [-1, 0]), IndexError,
     r"cross_entropy: target -1 in row 0 is not a class index"),
    ("cross_entropy-float-targets", lambda: vg.cross_entropy(node(2, 3), [0.0, 1.0]), IndexError,
     r"cross_entropy: indices must be integers, got float64"),
    ("cross_entropy-target-count", lambda: vg.cross_entropy(node(2, 3), [0, 1, 2]), ValueError,
     r"cross_entropy: expected 2 targets"),
    ("cross_entropy-vector-logits", lambda: vg.cross_entropy(node(3), [0]), ValueError,
     r"cross_entropy: expected logits of shape \(n, classes\)"),
    ("clip-bounds-reversed", lambda: vg.clip(node(2, 3), 2.0, 1.0), ValueError, r"clip: lower bound 2.0* is above upper"),
    ("binary_cross_entropy-shapes", lambda: vg.binary_cross_entropy(node(2, 3) * 0.5, np.ones(3)), ValueError,
     r"binary_cross_entropy: input of shape \(2, 3\) and target of shape \(3,\) differ"),
    ("binary_cross_entropy_with_logits-shapes",
     lambda: vg.binary_cross_entropy_with_logits(node(2, 3), node(3, 2)), ValueError,
     r"binary_cross_entropy_with_logits: input of shape \(2, 3\) and target of shape \(3, 2\) differ"),
    ("mse_loss-shapes", lambda: vg.mse_loss(node(2, 3), np.ones((2, 1))), ValueError,
     r"mse_loss: input of shape \(2, 3\) and target of shape \(2, 1\) differ"),
    ("exp-string-array", lambda: vg.exp(np.array(["a", "b"])), TypeError, r"exp: unsupported dtype"),
    ("sum-object-array", lambda: vg.sum(np.array([object()])), TypeError, r"sum: unsupported dtype object"),
    ("matmul-string-array", lambda: node(2, 3) @ np.array(["a", "b", "c"]), TypeError, r"matmul: unsupported dtype"),
    ("maximum-string-operand", lambda: vg.maximum(node(2), "a"), TypeError, r"maximum: unsupported dtype"),
    ("minimum-object-operand", lambda: vg.minimum(object(), node(2)), TypeError, r"minimum: unsupported dtype object"),
    ("less-string-operand", lambda: node(2) < "a", TypeError, r"less: unsupported dtype"),
    ("equal-string-array", lambda: vg.equal(np.array(["a", "b"]), node(2)), TypeError, r"equal: unsupported dtype"),
    ("mse_loss-string-target", lambda: vg.mse_loss(node(2), np.array(["a", "b"])), TypeError,
     r"mse_loss: unsupported dtype"),
]
BAD_INPUTS += [
    (f"{name}-unknown-reduction", call, ValueError, rf"{name}: reduction must be 'mean' or 'sum', got 'foo'")
    for name, call in [
        ("cross_entropy", lambda: vg.cross_entropy(node(2, 3), [0, 1], reduction="foo")),
        ("binary_cross_entropy", lambda: vg.binary_cross_entropy(node(3) * 0.5, np.ones(3), reduction="foo")),
        ("binary_cross_entropy_with_logits",
         lambda: vg.binary_cross_entropy_with_logits(node(3), np.ones(3), reduction="foo")),
        ("mse_loss", lambda: vg.mse_loss(node(3), np.ones(3), reduction="foo")),
    ]
]


@pytest.mark.parametrize("source, target", [("float32", "float64"), ("float64", "float32")])
def test_astype_converts_and_its_gradient_comes_back_in_the_inputs_dtype(source, target):
    x = vg.TensorNode(np.array([1.5, -2.25, 3.0], dtype=source))
    y = vg.astype(x, target)
    assert y.dtype == np.dtype(target) and np.array_equal(y.value, x.value.astype(target))
    vg.sum(y * np.array([1.0, 2.0, 3.0], dtype=target)).backward()
    assert x.grad.dtype == np.dtype(source) and np.array_equal(x.grad, [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="astype: dtype must be float32 or float64"):
        vg.astype(x, np.int64)


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


@pytest.mark.parametrize("shape", [(0, 0), (0, 3)])
def test_row_max_of_no_rows_is_empty(shape):
    # No rows: nothing to take a maximum of, as row_sum gives an empty result (the fuzz suite found
    # that a (0, 0) matrix was refused as if its rows were empty). Rows of no columns stay an error.
    x = vg.TensorNode(np.zeros(shape))
    m = vg.RowMax.do_forward(x)
    assert m.shape == (0,) and m.dtype == np.float64
    m.sum().backward()
    assert x.grad.shape == shape


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sums_give_the_same_bits_wherever_the_rows_start_in_memory(dtype):
    # Eigen's rowwise().sum() started its vector packets where the alignment allowed, so a matrix one
    # element further into its buffer summed in another order (the baseline copy at -O1); the
    # engine's row sums are pairwise in double instead. Run on each kernel copy by .ci/run.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 301)).astype(dtype)
    reference = vg.RowSum.do_forward(vg.TensorNode(x.copy())).value
    for offset in range(1, 9):
        buf = np.empty(x.size + offset, dtype)
        moved = buf[offset:].reshape(x.shape)
        moved[...] = x
        out = vg.RowSum.do_forward(vg.TensorNode(moved)).value
        assert out.tobytes() == reference.tobytes(), f"offset {offset}"
