"""The type stubs (_rtcast.pyi, py.typed) describe the installed module exactly: the same names,
the same classes, methods and properties, and the same parameters (names, kinds, defaults)."""

from __future__ import annotations

import ast
import inspect
import pathlib
import subprocess
import sys
import types

import pytest

import rtcast
from rtcast import _rtcast

PACKAGE = pathlib.Path(rtcast.__file__).parent
STUB = ast.parse((PACKAGE / "_rtcast.pyi").read_text())

# Dunder methods every class has; only those the stub declares are compared.
IGNORED = {"__doc__", "__module__", "__new__", "__init_subclass__", "__subclasshook__", "__weakref__"}


def public(names):
    return {n for n in names if not n.startswith("__") or n in ("__version__",)}


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, str, bool]]:
    """(name, kind, has default) of each parameter but self."""
    a = fn.args
    out = []
    positional = a.posonlyargs + a.args
    defaults = [False] * (len(positional) - len(a.defaults)) + [True] * len(a.defaults)
    for arg, has_default in zip(positional, defaults):
        out.append((arg.arg, "positional", has_default))
    if a.vararg:
        out.append(("*", "var", False))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "keyword", default is not None))
    if a.kwarg:
        out.append(("**", "var", False))
    return out[1:] if out and out[0][0] in ("self", "cls") else out


def runtime_params(obj) -> list[tuple[str, str, bool]]:
    kinds = {
        inspect.Parameter.POSITIONAL_ONLY: "positional",
        inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
        inspect.Parameter.KEYWORD_ONLY: "keyword",
    }
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            out.append(("*", "var", False))
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            out.append(("**", "var", False))
        else:
            out.append((p.name, kinds[p.kind], p.default is not inspect.Parameter.empty))
    return out[1:] if out and out[0][0] in ("self", "cls", "slf", "$self") else out


def stub_top_level() -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in STUB.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


STUB_NAMES = stub_top_level()
STUB_CLASSES = {n: c for n, c in STUB_NAMES.items() if isinstance(c, ast.ClassDef)}


def test_package_ships_py_typed_and_the_stub():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_rtcast.pyi").is_file()


def test_stub_and_module_declare_the_same_names():
    runtime = public(n for n in dir(_rtcast) if not n.startswith("_") or n in ("_close_all", "__version__"))
    stub = public(n for n in STUB_NAMES if not n.startswith("_") or n in ("_close_all", "__version__"))
    assert stub == runtime
    # The package re-exports every public name of the extension.
    assert public(n for n in runtime if not n.startswith("_")) <= set(rtcast.__all__)


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_each_class_has_the_stubs_members_and_nothing_else(name):
    cls = getattr(_rtcast, name)
    node = STUB_CLASSES[name]
    # __new__ is compared in test_server_constructor_matches_the_stubs_new (PyO3 puts the
    # constructor's signature on the class).
    stub_members: dict[str, ast.FunctionDef] = {
        f.name: f for f in node.body if isinstance(f, ast.FunctionDef) and f.name != "__new__"
    }
    if issubclass(cls, BaseException):
        # Exceptions: the bases must match; members are those of Exception.
        stub_bases = [ast.unparse(b) for b in node.bases]
        runtime_bases = [b.__name__ for b in cls.__bases__]
        assert runtime_bases == stub_bases
        return
    runtime_members = {
        n for n, v in vars(cls).items() if n not in IGNORED and not (n.startswith("__") and n not in stub_members)
    }
    assert set(stub_members) == runtime_members, f"{name}: stub vs runtime members differ"
    for member, fn in stub_members.items():
        value = inspect.getattr_static(cls, member)
        is_property = any(ast.unparse(d) == "property" for d in fn.decorator_list)
        assert is_property == isinstance(value, types.GetSetDescriptorType), f"{name}.{member}"
        if is_property:
            continue
        assert runtime_params(getattr(cls, member)) == stub_params(fn), f"{name}.{member}"


def test_server_constructor_matches_the_stubs_new():
    new = next(f for f in STUB_CLASSES["Server"].body if isinstance(f, ast.FunctionDef) and f.name == "__new__")
    assert runtime_params(_rtcast.Server) == stub_params(new)


def test_mypy_stubtest_finds_no_difference():
    """mypy's own comparison of the stub with the module (types of defaults, finality, __all__)."""
    pytest.importorskip("mypy.stubtest")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "rtcast"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_functions_match():
    for name, node in STUB_NAMES.items():
        if isinstance(node, ast.FunctionDef):
            assert runtime_params(getattr(_rtcast, name)) == stub_params(node), name
