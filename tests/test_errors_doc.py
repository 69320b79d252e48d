"""docs/errors.md's table of bad input runs: each row's example gives the exception type (or
warning) and message fragment the row names, or, for rows that are not errors, a value of which the
row's check holds. The doc cannot drift from the behaviour.

Row format: | bad input | `example` | what you get | `message regex` or — |
"what you get" is `ExceptionClass` (a builtin or `vg.Name`), `WarningClass` with an optional
`check`, or "no error" with a `check`: a Python expression of `_`, the value of the example's last
expression.
"""

import ast
import builtins
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import tapegrad as vg

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"


def table_rows():
    rows = []
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("| bad input |"):
            in_table = True
            continue
        if not in_table or line.startswith("|---"):
            continue
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 4, f"docs/errors.md: a row without 4 cells: {line}"
        rows.append(cells)
    return rows


ROWS = table_rows()


def code_spans(cell):
    return re.findall(r"`([^`]*)`", cell)


def resolve(name):
    if name.startswith("vg."):
        return getattr(vg, name[3:])
    return getattr(builtins, name)


def run_example(code):
    """Executes one line of Python; returns the value of its last statement if that is an expression."""
    tree = ast.parse(code)
    namespace = {"np": np, "vg": vg}
    last = tree.body[-1]
    if isinstance(last, ast.Expr):
        exec(compile(ast.Module(tree.body[:-1], type_ignores=[]), "<errors.md>", "exec"), namespace)
        return eval(compile(ast.Expression(last.value), "<errors.md>", "eval"), namespace)
    exec(compile(tree, "<errors.md>", "exec"), namespace)
    return None


def check(expression, value):
    assert eval(expression, {"np": np, "vg": vg, "_": value}), f"`{expression}` does not hold for {value!r}"


def test_the_table_covers_every_class_of_bad_input():
    assert len(ROWS) >= 40
    examples = [code_spans(row[1])[0] for row in ROWS]
    assert len(set(examples)) == len(examples), "an example appears twice"
    kinds = {code_spans(row[2])[0] if row[2].startswith("`") else "no error" for row in ROWS}
    assert {"ValueError", "IndexError", "TypeError", "RuntimeError", "no error"} <= kinds


@pytest.mark.parametrize("bad_input, example, outcome, message", ROWS, ids=[row[0][:60] for row in ROWS])
def test_each_documented_bad_input_gives_what_the_table_says(bad_input, example, outcome, message, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint rows read and write files here
    (code,) = code_spans(example)
    spans = code_spans(outcome)
    if outcome.startswith("no error"):
        assert message == "—", f"{bad_input}: a row without an error has no message"
        (expression,) = spans
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not an error means no warning either
            value = run_example(code)
        check(expression, value)
        return
    kind = resolve(spans[0])
    (pattern,) = code_spans(message)
    if issubclass(kind, Warning):
        with pytest.warns(kind, match=pattern):
            value = run_example(code)
        for expression in spans[1:]:
            check(expression, value)
        return
    assert issubclass(kind, BaseException) and len(spans) == 1, f"{bad_input}: what you get must name one exception"
    with pytest.raises(kind) as info:
        run_example(code)
    assert re.search(pattern, str(info.value)), f"{bad_input}: message {str(info.value)!r} does not match {pattern!r}"
