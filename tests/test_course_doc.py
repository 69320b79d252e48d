"""docs/course.md quotes the engine's lines with links of the form [path:LINE](...): each quote must
still be the text at that line of that file, so the course's map of the engine stays true."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "course.md").read_text()
QUOTES = re.findall(r"\[([\w/.]+):(\d+)\]\([^)]*\)\n```\w*\n(.*?)\n```", DOC, flags=re.S)


def test_the_course_page_quotes_the_engine():
    assert len(QUOTES) >= 15
    assert {path for path, _, _ in QUOTES} >= {"cpp/ops/registry.cpp", "cpp/tape.cpp", "cpp/ops/elementwise.cpp",
                                               "cpp/ops/reduce.cpp", "cpp/ops/shape.cpp", "python/tapegrad/ops.py"}


@pytest.mark.parametrize("path, line, quote", QUOTES, ids=[f"{p}:{n}" for p, n, _ in QUOTES])
def test_each_quote_is_the_text_at_the_line_it_names(path, line, quote):
    lines = (ROOT / path).read_text().split("\n")
    first = int(line) - 1
    expected = quote.split("\n")
    assert lines[first:first + len(expected)] == expected, (
        f"docs/course.md quotes {path}:{line}, which now reads otherwise: update the quote or its line number")
