"""The places an op is declared agree with each other, and the op table's claims hold.

An op is its kernel pair and row in the engine (cpp/ops/registry.cpp), its row in tapegrad.ops.OPS,
its row in docs/ops.md and its rows in the test tables (test_ops.py, reference.py, the fuzz suite's
COVERS). Each test below fails when one of those places is missing or disagrees; the last one checks
the ``saves`` column of the engine's table by poisoning what a row says its backward does not read.
"""

import re
from pathlib import Path

import numpy as np
import pytest

import tapegrad as vg
from test_ops import CASES

ENGINE = vg._core.op_table()
ENGINE_NAMES = [row["name"] for row in ENGINE]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "ops.md"


def test_every_engine_row_has_one_python_row_and_no_python_row_is_without_an_engine_row():
    python_names = [r.native for r in vg.ops.OPS]
    assert len(set(python_names)) == len(python_names), "a Python row is repeated"
    assert len(set(ENGINE_NAMES)) == len(ENGINE_NAMES), "an engine row is repeated"
    assert set(python_names) == set(ENGINE_NAMES)


@pytest.mark.parametrize("r", vg.ops.OPS, ids=lambda r: r.native)
def test_each_row_gives_a_class_its_function_and_its_methods(r):
    cls = getattr(vg, r.cls)
    assert issubclass(cls, vg.NativeOp) and cls._native == r.native and cls.__doc__ == r.doc
    assert ENGINE[cls._index]["name"] == r.native
    if r.function:
        function = getattr(vg, r.function)
        assert callable(function) and function.__doc__, f"vg.{r.function} is missing or has no docstring"
        assert function in (getattr(vg.functional, r.function), getattr(vg.pytorch, r.function, None)), (
            f"vg.{r.function} is neither functional.{r.function} nor the PyTorch dialect's pytorch.{r.function}")
    for name in r.methods + r.operators:
        assert name in vars(vg.TensorNode), f"TensorNode.{name} is not installed"
    assert r.kind is None or r.function, "a generated function needs a name"


def documented_rows():
    """(function cell, op-class cell) of every table row of docs/ops.md."""
    rows = [line.split("|") for line in DOCS.read_text().splitlines() if line.startswith("|") and "`" in line]
    return [(cells[1], cells[2]) for cells in rows if len(cells) > 3]


def test_docs_name_every_op_class_and_nothing_else():
    documented = {name for _, cell in documented_rows() for name in re.findall(r"`([A-Z]\w*)", cell)}
    classes = {r.cls for r in vg.ops.OPS}
    assert classes - documented == set(), "op classes without a row in docs/ops.md"
    assert documented - classes == set(), "docs/ops.md names op classes that do not exist"


def test_docs_name_every_generated_function():
    documented = {name for cell, _ in documented_rows() for name in re.findall(r"`(\w+)", cell)}
    missing = {r.function for r in vg.ops.OPS if r.kind is not None} - documented
    assert missing == set(), "functions without a row in docs/ops.md"


def test_every_attribute_a_row_declares_is_an_argument_of_its_class():
    for row in ENGINE:
        cls = getattr(vg, vg.ops.BY_NATIVE[row["name"]].cls)
        node = vg.TensorNode(np.ones((2, 2)))
        with pytest.raises(TypeError, match=rf"{row['name']}: unexpected keyword argument 'no_such_attribute' "
                                            r"\((it takes|it takes no keyword)"):
            cls.do_forward(*[node] * max(row["arity"], 1), no_such_attribute=1)


# ---- the saves column: what a row says its backward does not read is poisoned before backward ----

class Project(vg.Op):
    """sum(x * G) for a fixed G, whose backward reads G only (never x): the loss head of the check."""

    @staticmethod
    def forward(context, x, weights):
        context["weights"] = weights
        return np.asarray(np.sum(x * weights))

    @staticmethod
    def backward(context, g):
        return g * context["weights"]


def one_case_per_op():
    """The first case of each differentiable op class whose call puts that very op on the tape."""
    seen, out = set(), []
    for case in CASES:
        row = ENGINE[case.op._index]
        if case.op in seen or not row["differentiable"] or row["saves"] == "both":
            continue
        arrays, kwargs, upstream = case.draw(0)
        nodes = [vg.TensorNode(a.copy()) for a in arrays]
        if type(case.apply(nodes, kwargs).source.op) is not type(case.op):  # noqa: E721
            continue
        seen.add(case.op)
        out.append(pytest.param(case, id=case.op.__name__))
    return out


def gradients(case, poison):
    arrays, kwargs, upstream = case.draw(0)
    nodes = [vg.TensorNode(a.copy()) for a in arrays]
    out = case.apply(nodes, kwargs)
    loss = Project.do_forward(out, weights=upstream)
    saves = ENGINE[case.op._index]["saves"]
    if poison:
        # Writes through numpy views do not bump versions: the backward cannot tell.
        if saves in ("none", "outputs"):
            for n in nodes:
                n.value[...] = np.nan
        if saves in ("none", "inputs"):
            for a in out.source.context["outputs"]:
                a[...] = np.nan
    loss.backward()
    return [n.grad.copy() for n in nodes]


@pytest.mark.parametrize("case", one_case_per_op())
def test_backward_reads_nothing_its_row_says_it_does_not_save(case):
    clean, poisoned = gradients(case, poison=False), gradients(case, poison=True)
    for c, p in zip(clean, poisoned):
        # a backward that read a poisoned value gives nan; the last bits may differ between runs
        # (vectorised sums start where the buffer's alignment lets them)
        np.testing.assert_allclose(p, c, rtol=1e-13, atol=1e-15)


def test_the_saves_check_covers_every_op_that_does_not_save_everything():
    checked = {p.values[0].op._native for p in one_case_per_op()}
    expected = {row["name"] for row in ENGINE if row["differentiable"] and row["saves"] != "both"}
    assert checked == expected
