"""Every public name of the API reference has a docstring that documents its arguments.

The convention (Google style, as the API reference renders it):

* a summary line, then sections ``Args:``, ``Returns:`` (``Yields:`` for a
  generator) and ``Raises:``;
* ``Args:`` lists every parameter by name (``name: ...`` at the start of a
  line; ``*args`` / ``**kwargs`` as ``*args:`` / ``**kwargs:``); a class
  documents its constructor's parameters in the class docstring or in
  ``__init__``'s;
* ``Returns:`` (or ``Yields:``) is required unless the return annotation is
  ``None``; ``Raises:`` is required for every callable that takes an argument
  (input validation is part of the contract);
* when an argument or the result is an array (annotated with ``ArrayLike`` or
  ``NDArray``), the docstring gives a shape in brackets, e.g. ``[B, T, V]``.

Public names are each module's ``__all__`` (or its non-underscore attributes
defined in the package), classes included with their public methods and
properties. A method inherited from another public class is checked there;
one inherited from a private base (``_ModelBase``) is checked in each public
subclass. Failures are reported per module, one test per module.
"""
from __future__ import annotations

import importlib
import inspect
import re
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

MODULES = ["cpuformer", "cpuformer.nn", "cpuformer.functional", "cpuformer.optim", "cpuformer.data",
           "cpuformer.distributed"]


def _public_names(mod: ModuleType) -> List[str]:
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")
                 and getattr(getattr(mod, n), "__module__", "").startswith("cpuformer")]
    return sorted(set(names))


def _public_classes() -> Dict[int, str]:
    """id(class) -> where it is documented, over every walked module."""
    out: Dict[int, str] = {}
    for m in MODULES:
        mod = importlib.import_module(m)
        for n in _public_names(mod):
            obj = getattr(mod, n)
            if inspect.isclass(obj) and id(obj) not in out:
                out[id(obj)] = f"{m}.{n}"
    return out


def _section(doc: str, name: str) -> bool:
    return re.search(rf"^\s*{name}:\s*$", doc, re.M) is not None


def _params(fn: Callable[..., Any]) -> Optional[List[inspect.Parameter]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p for p in sig.parameters.values() if p.name not in ("self", "cls")]


def _mentions(doc: str, p: inspect.Parameter) -> bool:
    stars = {inspect.Parameter.VAR_POSITIONAL: r"\*", inspect.Parameter.VAR_KEYWORD: r"\*\*"}.get(p.kind, "")
    return re.search(rf"^\s*{stars}{re.escape(p.name)}\s*(\([^)]*\))?:", doc, re.M) is not None


def _is_array(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return any(k in text for k in ("ArrayLike", "NDArray", "FloatArray", "IntArray", "ndarray"))


def check_callable(fn: Callable[..., Any], extra_doc: str = "", is_init: bool = False) -> List[str]:
    """What is missing from ``fn``'s docstring (plus ``extra_doc``, the class docstring for ``__init__``)."""
    # fn.__doc__, not inspect.getdoc: that would inherit a base class's docstring for an undocumented override.
    doc = inspect.cleandoc(fn.__doc__ or "") + "\n" + extra_doc
    if not doc.strip():
        return ["no docstring"]
    problems = []
    params = _params(fn)
    if params is None:
        return ["no inspectable signature (wrap it in a Python function with hints)"]
    if params:
        if not _section(doc, "Args"):
            problems.append("no Args: section")
        missing = [p.name for p in params if not _mentions(doc, p)]
        if missing:
            problems.append(f"Args: does not list {', '.join(missing)}")
        if not _section(doc, "Raises"):
            problems.append("no Raises: section")
    sig = inspect.signature(fn)
    ret = sig.return_annotation
    if not is_init and ret not in (None, "None") and not (_section(doc, "Returns") or _section(doc, "Yields")):
        problems.append("no Returns: (or Yields:) section")
    arrays = [p.annotation for p in params] + ([] if is_init else [ret])
    if any(_is_array(a) for a in arrays) and not re.search(r"\[[^\]\n]*[A-Za-z0-9_][^\]\n]*\]", doc):
        problems.append("arrays without a shape like [B, T]")
    return problems


def _members(cls: type, where: str, owners: Dict[int, str]) -> Iterator[Tuple[str, Any, type]]:
    """Public methods and properties of ``cls`` checked under its name (see the module docstring)."""
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        definer = next((k for k in cls.__mro__ if name in vars(k)), None)
        if definer is None or definer is object or not definer.__module__.startswith("cpuformer"):
            continue
        if definer is not cls and owners.get(id(definer), where) != where and not definer.__name__.startswith("_"):
            continue  # documented where its public class is walked
        yield name, vars(definer)[name], definer


def module_problems(modname: str) -> List[str]:
    mod = importlib.import_module(modname)
    owners = _public_classes()
    out = []
    if not (mod.__doc__ or "").strip():
        out.append(f"{modname}: no module docstring")
    for name in _public_names(mod):
        obj = getattr(mod, name)
        qual = f"{modname}.{name}"
        if inspect.ismodule(obj):
            continue  # walked as a module of its own
        if inspect.isclass(obj):
            if owners.get(id(obj)) != qual:
                continue  # a re-export of a class walked elsewhere (e.g. cpuformer.nn.Module)
            if not (obj.__doc__ or "").strip():
                out.append(f"{qual}: no class docstring")
            init = vars(obj).get("__init__")
            if init is None:
                init = next((vars(k)["__init__"] for k in obj.__mro__[1:]
                             if "__init__" in vars(k) and k.__module__.startswith("cpuformer")), None)
            if init is not None:
                out += [f"{qual}(): {p}" for p in check_callable(init, inspect.getdoc(obj) or "", is_init=True)]
            for mname, member, _ in _members(obj, qual, owners):
                if isinstance(member, property):
                    if not (member.__doc__ or "").strip():
                        out.append(f"{qual}.{mname}: property without a docstring")
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if callable(member):
                    out += [f"{qual}.{mname}: {p}" for p in check_callable(member)]
        elif callable(obj):
            if getattr(obj, "__module__", "") and not obj.__module__.startswith("cpuformer"):
                continue
            out += [f"{qual}: {p}" for p in check_callable(obj)]
    return out


@pytest.mark.parametrize("modname", MODULES)
def test_public_names_are_documented(modname: str) -> None:
    problems = module_problems(modname)
    assert not problems, f"{len(problems)} documentation problem(s) in {modname}:\n  " + "\n  ".join(problems)


def test_checker_catches_gaps() -> None:
    """The checker itself fails on what the convention forbids."""

    def undocumented(x: int) -> int:
        return x

    def no_raises(x: int) -> int:
        """Summary.

        Args:
            x: a number.

        Returns:
            x.
        """
        return x

    def missing_arg(x: int, y: int) -> None:
        """Summary.

        Args:
            x: a number.

        Raises:
            ValueError: never.
        """

    def no_shape(x: "ArrayLike") -> "NDArray[np.float32]":  # noqa: F821
        """Summary.

        Args:
            x: an array.

        Returns:
            An array.

        Raises:
            ValueError: never.
        """
        return x  # type: ignore[return-value]

    def good(x: "ArrayLike", **kwargs: int) -> "NDArray[np.float32]":  # noqa: F821
        """Summary.

        Args:
            x: [B, T] array.
            **kwargs: options.

        Returns:
            [B, T] float32 array.

        Raises:
            ValueError: when x is empty.
        """
        return x  # type: ignore[return-value]

    assert check_callable(undocumented) == ["no docstring"]
    assert check_callable(no_raises) == ["no Raises: section"]
    assert check_callable(missing_arg) == ["Args: does not list y"]
    assert check_callable(no_shape) == ["arrays without a shape like [B, T]"]
    assert check_callable(good) == []
