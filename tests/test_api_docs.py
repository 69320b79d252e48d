"""Every public name of the package has a docstring, and the type stub of the C++ module matches it.

Public names: each public module of tapegrad, the public functions and classes defined in it (or
listed in its ``__all__``), and the public methods and properties of those classes, TensorNode's
installed ones included. A docstring inherited from a base class counts, as help() shows it.
"""

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import tapegrad as vg
from core_stub import STUB, render

# Names in another engineer's files (core.py) that still lack a docstring: each entry must still be
# missing one (the test says when it can go), and nothing else may be.
AWAITING = set()


def public_modules():
    """tapegrad and its public submodules."""
    names = [m.name for m in pkgutil.iter_modules(vg.__path__) if not m.name.startswith("_")]
    return [vg] + [importlib.import_module(f"tapegrad.{n}") for n in sorted(names)]


def own_names(module):
    """(qualified name, object) for the functions and classes a module defines or lists in __all__."""
    listed = getattr(module, "__all__", None)
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if (listed is not None and name in listed) or getattr(obj, "__module__", None) == module.__name__:
            yield f"{module.__name__}.{name}", obj


def members(cls):
    """(name, attribute as looked up on the class) for the public methods and properties of a class,
    those it inherits from the package's classes included (a private base's public methods are public)."""
    names = set()
    for base in cls.__mro__:
        if base.__module__.startswith("tapegrad"):
            names.update(n for n, raw in vars(base).items() if not n.startswith("_") and (
                isinstance(raw, (property, staticmethod, classmethod)) or inspect.isroutine(raw)
                or type(raw).__name__ == "instancemethod"))
    for name in sorted(names):
        raw = inspect.getattr_static(cls, name)
        yield name, raw if isinstance(raw, property) else getattr(cls, name)


def public_names():
    seen = {}
    for module in public_modules():
        seen[module.__name__] = module
        for qual, obj in own_names(module):
            seen.setdefault(qual, obj)
            if inspect.isclass(obj):
                for name, member in members(obj):
                    seen.setdefault(f"{qual}.{name}", member)
    # The C++ classes (TensorNode with the methods tapegrad.methods installs, OpNode ...).
    for name in dir(vg._core):
        cls = getattr(vg._core, name)
        if inspect.isclass(cls) and not name.startswith("_"):
            seen.setdefault(f"tapegrad._core.{name}", cls)
            for member, obj in members(cls):
                seen.setdefault(f"tapegrad._core.{name}.{member}", obj)
    return seen


NAMES = public_names()


def docstring(obj):
    """The docstring help() shows; a class needs its own (its base's would describe something else)."""
    if isinstance(obj, property):
        return obj.__doc__ or (obj.fget and obj.fget.__doc__)
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__")
    return inspect.getdoc(obj)


def test_the_public_names_are_many_and_include_tensornodes_methods():
    assert len(NAMES) > 300
    assert "tapegrad._core.TensorNode.reshape" in NAMES and "tapegrad.functional.sum" in NAMES


def test_every_public_name_has_a_docstring():
    missing = sorted(q for q, obj in NAMES.items() if not docstring(obj) and q not in AWAITING)
    assert not missing, f"{len(missing)} public names without a docstring: {missing}"


@pytest.mark.parametrize("qual", sorted(AWAITING))
def test_each_awaited_docstring_is_still_missing(qual):
    assert qual in NAMES, f"{qual} is no longer a public name: remove it from AWAITING"
    assert not docstring(NAMES[qual]), f"{qual} has a docstring now: remove it from AWAITING"


def test_installed_methods_carry_their_names_for_help():
    for name in ("reshape", "transpose", "expand", "flatten", "sum", "exp"):
        fn = vars(vg.TensorNode)[name]
        assert fn.__name__ == name, f"TensorNode.{name} shows in help() as {fn.__name__}"


# ---- the stub of tapegrad._core ----

def test_core_stub_is_as_the_module_makes_it():
    """python/tapegrad/_core.pyi is what tests/core_stub.py makes from the module as built; after
    changing the bindings or TensorNode's methods, run: python tests/core_stub.py --write"""
    assert STUB.read_text() == render(), "the _core stub is stale: run python tests/core_stub.py --write"


def test_core_stub_parses_and_names_every_class_and_function():
    tree = ast.parse(STUB.read_text())
    declared = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(vg._core) if not n.startswith("__")}
    assert public <= declared


def test_the_package_is_marked_as_typed():
    assert (Path(vg.__file__).parent / "py.typed").exists()
