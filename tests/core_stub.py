"""The type stub of the C++ module, python/tapegrad/_core.pyi, made from the module as built.

    python tests/core_stub.py            # print the stub
    python tests/core_stub.py --write    # write it (after changing the bindings or TensorNode's methods)

The signatures come from pybind11's docstrings (their first line), with its C++-flavoured types
written as Python ones. TensorNode's numpy-style methods and operators are installed at import by
tapegrad.methods, so they are read from the class after importing tapegrad and declared in the
stub too: type checkers and IDEs then see x.sum(), x.reshape(2, 3) and x @ w. test_api_docs.py
checks that the file is what this makes.
"""

import inspect
import re
import sys
import textwrap
from pathlib import Path

import tapegrad as vg

STUB = Path(vg.__file__).resolve().parent / "_core.pyi"

HEADER = '''"""Type stub of tapegrad._core, the C++ engine (made by tests/core_stub.py from the built module).

TensorNode's numpy-style methods and operators are installed at import by tapegrad.methods and
declared here as well.
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

# What an op takes as an operand: a node, or an array or number (a constant).
_TensorLike = TensorNode | npt.ArrayLike
_Axis = int | Sequence[int] | None
'''

# pybind11's names for types, as a stub writes them (both pybind11 2 and 3 spellings).
TYPES = [
    (r"typing\.SupportsInt \| typing\.SupportsIndex", "int"),
    (r"typing\.SupportsFloat \| typing\.SupportsIndex", "float"),
    (r"tapegrad\._core\.", ""),
    (r"tg::Node\b", "TensorNode"),
    (r"tg::OpNode\b", "OpNode"),
    (r"collections\.abc\.Sequence\b(?!\[)", "Sequence[Any]"),
    (r"collections\.abc\.Sequence\[", "Sequence["),
    (r"collections\.abc\.Callable\b", "Callable[..., Any]"),
    (r"typing\.Any\b", "Any"),
    (r"\bnumpy\.ndarray\b", "np.ndarray"),
    (r"\bnumpy\.dtype\b", "np.dtype[Any]"),
    (r"\blist\b(?!\[)", "list[Any]"),
    (r"\bdict\b(?!\[)", "dict[str, Any]"),
    (r"\btuple\b(?!\[)", "tuple[Any, ...]"),
    (r"\bobject\b", "Any"),
]

# Where pybind11 only knows "object", the real types.
OVERRIDES = {
    "TensorNode.__init__": "(self, value: npt.ArrayLike, source: None = None, name: str | None = None, "
                           "requires_grad: bool = True) -> None",
    "TensorNode.size": "(self, dim: int | None = None) -> tuple[int, ...] | int",
    "TensorNode.shape": "tuple[int, ...]",
    "TensorNode.name": "str | None",
    "TensorNode.source": "OpNode | None",
    "TensorNode.grad": "np.ndarray",
    "OpNode.outputs": "list[TensorNode | None]",
    "OpNode.context": "dict[str, Any]",
    "OpNode.op": "type | str",
    "apply": "(op: int, inputs: Sequence[TensorNode], kwargs: dict[str, Any]) -> TensorNode | list[TensorNode]",
    "apply_plain": "(op: int, *args: TensorNode) -> TensorNode | list[TensorNode]",
    "op_table": "() -> list[dict[str, Any]]",
    "unary_function": "(op: int, convert: Callable[[Any], TensorNode]) -> UnaryFunction",
    "forward": "(op: int, arrays: Sequence[npt.ArrayLike], kwargs: dict[str, Any]) -> "
               "tuple[list[np.ndarray], NativeContext]",
    "backward": "(context: NativeContext, grads: Sequence[npt.ArrayLike]) -> list[np.ndarray]",
}

# Parameters of the Python-installed methods, by name.
PARAMETERS = {
    "axis": "_Axis", "keepdims": "bool", "ddof": "float", "a_min": "float | None", "a_max": "float | None",
    "shape": "int | Sequence[int]", "axes": "int | Sequence[int]", "key": "Any", "other": "_TensorLike",
    "b": "_TensorLike",
}
# Operators that return a node where Python's protocols expect a bool.
NODE_COMPARISONS = {"__eq__", "__ne__"}


def pytype(text):
    for pattern, replacement in TYPES:
        text = re.sub(pattern, replacement, text)
    return text


def split_doc(fn):
    """The signature after the name and the description: from pybind11's docstring, or from a C
    function's __text_signature__ (fast_calls.cpp's operators)."""
    doc = fn.__doc__ or ""
    text_signature = getattr(fn, "__text_signature__", None)
    if text_signature:
        return re.sub(r"\$(self|module), ", "", text_signature).replace(", /)", ")"), inspect.cleandoc(doc)
    first, _, rest = doc.partition("\n")
    return first[first.index("("):] if "(" in first else "", inspect.cleandoc(rest)


def drop_self_type(signature):
    return re.sub(r"^\((?:self|arg0): [^,)]+", "(self", signature)


def docstring(text, indent):
    if not text:
        return ""
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return textwrap.indent(f'"""{body}"""\n', indent)


def native_function(name, fn, indent="", qual=None):
    signature, doc = split_doc(fn)
    signature = OVERRIDES.get(qual or name) or pytype(signature)
    if indent:
        signature = drop_self_type(signature)
    head = f"{indent}def {name}{signature}:"
    return head + ("\n" + docstring(doc, indent + "    ") + f"{indent}    ...\n" if doc else " ...\n")


def python_method(name, fn):
    """A method tapegrad.methods installed: its Python signature, every operand typed as a tensor."""
    params = list(inspect.signature(fn).parameters.values())
    parts = ["self"]
    for p in params[1:]:
        kind = PARAMETERS.get(p.name, "Any")
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}: {kind}")
        else:
            parts.append(f"{p.name}: {kind}" + (" = ..." if p.default is not p.empty else ""))
    result = "bool" if name == "__bool__" else "TensorNode"
    ignore = "  # type: ignore[override]" if name in NODE_COMPARISONS else ""
    head = f"    def {name}({', '.join(parts)}) -> {result}:{ignore}"
    doc = inspect.getdoc(fn)
    return head + ("\n" + docstring(doc, "        ") + "        ...\n" if doc else " ...\n")


def prop(cls, name, p):
    qual = f"{cls.__name__}.{name}"
    kind = OVERRIDES.get(qual)
    if kind is None:
        signature, _ = split_doc(p.fget) if p.fget.__doc__ else ("", "")
        kind = pytype(signature.split("-> ")[-1]) if "->" in signature else "TensorNode"
    lines = f"    @property\n    def {name}(self) -> {kind}:\n" + docstring(p.__doc__ or "", "        ") + "        ...\n"
    if p.fset is not None:
        value = {"grad": "npt.ArrayLike | None", "value": "npt.ArrayLike"}.get(name, kind)
        lines += f"    @{name}.setter\n    def {name}(self, value: {value}) -> None: ...\n"
    return lines


def native_class(cls):
    bases = {"DTypeError": "TypeError", "GraphError": "RuntimeError"}
    if cls.__name__ in bases:
        return f"class {cls.__name__}({bases[cls.__name__]}):\n" + docstring(cls.__doc__, "    ") + "\n"
    if cls.__name__ == "UnaryFunction":  # a callable type of fast_calls.cpp, not a pybind11 class
        return (f"class {cls.__name__}:\n" + docstring(cls.__doc__, "    ") +
                "    def __call__(self, x: _TensorLike) -> TensorNode: ...\n"
                "    def __reduce__(self) -> str: ...\n\n")
    out = [f"class {cls.__name__}:\n" + docstring(cls.__doc__ or "", "    ")]
    for name, raw in sorted(vars(cls).items()):
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in (
                "_has_grad", "_version", "_bump_version"):
            continue
        if isinstance(raw, property):
            out.append(prop(cls, name, raw))
        elif type(raw).__name__ in ("instancemethod", "method_descriptor"):
            if name.startswith("__") and name not in ("__init__",) and not callable(raw):
                continue
            if name in ("__eq__", "__ne__"):
                signature, doc = split_doc(raw)
                out.append(f"    def {name}(self, other: _TensorLike) -> TensorNode:  # type: ignore[override]\n"
                           + (docstring(doc, "        ") if doc else "") + "        ...\n")
            elif name.startswith("__") and name not in ("__init__", "__len__", "__repr__", "__str__"):
                out.append(operator(name, raw))
            else:
                out.append(native_function(name, raw, "    ", f"{cls.__name__}.{name}"))
        elif inspect.isfunction(raw) or isinstance(raw, vg._core.UnaryFunction):  # (fast_calls.cpp's vg.sigmoid ...)
            out.append(python_method(name, raw))
    return "".join(out) + "\n"


def operator(name, fn):
    """A C++ operator (x + y, -x): operands typed as tensors."""
    signature, doc = split_doc(fn)
    binary = "other" in signature
    args = "self, other: _TensorLike" if binary else "self"
    return f"    def {name}({args}) -> TensorNode:" + (
        "\n" + docstring(doc, "        ") + "        ...\n" if doc else " ...\n")


def render():
    core = vg._core
    classes, functions = [], []
    for name in sorted(n for n in dir(core) if not n.startswith("__")):
        obj = getattr(core, name)
        (classes if inspect.isclass(obj) else functions).append((name, obj))
    # TensorNode first: the aliases in the header name it.
    classes.sort(key=lambda c: (c[0] != "TensorNode", c[0]))
    parts = [HEADER, "\n"]
    parts += [native_class(cls) for _, cls in classes]
    parts += [native_function(name, fn) for name, fn in functions]
    return "".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    text = render()
    if sys.argv[1:] == ["--write"]:
        STUB.write_text(text)
        print(f"wrote {STUB}")
    else:
        sys.stdout.write(text)
