"""Typed settings: one frozen dataclass, built once from defaults, a file and the environment.

Precedence, lowest to highest: the dataclass defaults, the settings file (YAML, or JSON by
``.json`` suffix), then environment variables ``<PREFIX><FIELD>`` (nested dataclasses:
``<PREFIX><SECTION>__<FIELD>``, upper case). A service calls :func:`load_settings` once at
start and passes the object down; nothing here caches or keeps global state.

Strictness, so typos never silently fall back to a default:

- an unknown key in the file, or an unknown variable starting with the prefix, fails with
  ``InvalidArgument`` (reason ``UNKNOWN_SETTING``) naming the key and the file or variable;
- a value of the wrong type fails (reason ``INVALID_SETTING``) naming the field and the
  expected type; a required field left unset fails (reason ``MISSING_SETTING``).

Errors about the file are ``DocumentError`` (message ``FILE: FIELD: PROBLEM``).

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``pathlib.Path``,
``tuple[X, ...]`` of those (a list in the file; comma-separated in the environment),
``Literal[...]`` of str/int, ``enum.Enum`` subclasses (by value), ``X | None`` (``null`` in
the file, an empty variable), and nested frozen dataclasses (a mapping in the file).
Environment values of bool fields accept ``true/false/1/0/yes/no/on/off``.

Each service should use its own prefix (``TRUSTWIRE_POLICY_``): unknown variables under a
prefix fail, so services sharing ``TRUSTWIRE_`` would reject each other's variables, and the
CLI's ``TRUSTWIRE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast

import yaml

from trustwire.errors import DocumentError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["DEFAULT_PREFIX", "load_settings"]

DEFAULT_PREFIX: Final = "TRUSTWIRE_"
_NESTING: Final = "__"
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})

_T = TypeVar("_T")


class _TypeMismatch(Exception):
    """Internal: a value does not fit a type; ``expected`` names the type for people."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def load_settings(
    cls: type[_T],
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    prefix: str = DEFAULT_PREFIX,
) -> _T:
    """Build dataclass ``cls`` from its defaults, ``file`` and ``environ`` (``os.environ``).

    Raises ``InvalidArgument`` / ``DocumentError`` as described in the module docstring and
    ``NotFound`` (reason ``SETTINGS_FILE_NOT_FOUND``) for a missing file.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass type")
    source = _Source(str(file) if file is not None else None, prefix)
    file_data = _read_file(Path(file)) if file is not None else {}
    env_tree = _env_tree(cls, os.environ if environ is None else environ, source)
    return _build(cls, None, file_data, env_tree, (), source)


@dataclasses.dataclass(frozen=True, slots=True)
class _Source:
    file: str | None
    prefix: str

    def variable(self, path: tuple[str, ...]) -> str:
        return self.prefix + _NESTING.join(part.upper() for part in path)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            f"settings file not found: {path}",
            reason="SETTINGS_FILE_NOT_FOUND",
            metadata={"source": str(path)},
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise DocumentError(
            f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}",
            source=str(path),
            reason="INVALID_SETTINGS_FILE",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DocumentError(
            "top level must be a mapping of settings",
            source=str(path),
            reason="INVALID_SETTINGS_FILE",
        )
    return data


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _leaf_variables(cls: type[Any], path: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Every accepted environment-variable suffix (upper case) to its field path."""
    hints = _hints(cls)
    found: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(cls):
        sub = (*path, f.name)
        if _is_section(hints[f.name]):
            found.update(_leaf_variables(hints[f.name], sub))
        else:
            found[_NESTING.join(p.upper() for p in sub)] = sub
    return found


def _env_tree(cls: type[Any], environ: Mapping[str, str], source: _Source) -> dict[str, Any]:
    """The prefixed variables as a tree of raw strings keyed like the file; unknown ones fail."""
    known = _leaf_variables(cls, ())
    tree: dict[str, Any] = {}
    for variable in sorted(environ):
        if not variable.startswith(source.prefix):
            continue
        path = known.get(variable[len(source.prefix) :])
        if path is None:
            listing = ", ".join(source.prefix + name for name in sorted(known))
            raise InvalidArgument(
                f"unknown environment variable {variable} (known: {listing})",
                field=variable,
                reason="UNKNOWN_SETTING",
                metadata={"variable": variable},
            )
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = environ[variable]
    return tree


def _build(
    cls: type[_T],
    base: Any,
    file_node: Mapping[str, Any],
    env_node: Mapping[str, Any],
    path: tuple[str, ...],
    source: _Source,
) -> _T:
    """An instance of ``cls`` at ``path``: env over file over ``base`` (or field defaults)."""
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cast("type[DataclassInstance]", cls))}
    for key in file_node:
        if key not in fields:
            where = _dotted((*path, str(key)))
            known = ", ".join(sorted(fields))
            raise DocumentError(
                f"unknown setting (known here: {known})",
                source=source.file or "<file>",
                field=where,
                reason="UNKNOWN_SETTING",
            )
    values: dict[str, Any] = {}
    for name, f in fields.items():
        tp = hints[name]
        sub = (*path, name)
        fallback = _fallback(f, base)
        if _is_section(tp):
            file_sub = file_node.get(name, {})
            if not isinstance(file_sub, Mapping):
                raise _file_error(
                    source,
                    sub,
                    f"expected a mapping (section {tp.__name__}), got {_describe(file_sub)}",
                )
            env_sub = env_node.get(name, {})
            if (
                name not in file_node
                and name not in env_node
                and fallback is not dataclasses.MISSING
            ):
                values[name] = fallback
            else:
                section_base = None if fallback is dataclasses.MISSING else fallback
                values[name] = _build(tp, section_base, file_sub, env_sub, sub, source)
        elif name in env_node:
            values[name] = _from_env(env_node[name], tp, sub, source)
        elif name in file_node:
            values[name] = _from_file(file_node[name], tp, sub, source)
        elif fallback is not dataclasses.MISSING:
            values[name] = fallback
        else:
            where = f"the settings file ({source.file})" if source.file else "a settings file"
            variable = source.variable(sub)
            raise InvalidArgument(
                f"missing required setting {_dotted(sub)}: set it in {where} or {variable}",
                field=_dotted(sub),
                reason="MISSING_SETTING",
            )
    return cls(**values)


def _fallback(f: dataclasses.Field[Any], base: Any) -> Any:
    if base is not None:
        return getattr(base, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _file_error(source: _Source, path: tuple[str, ...], problem: str) -> DocumentError:
    return DocumentError(
        problem, source=source.file or "<file>", field=_dotted(path), reason="INVALID_SETTING"
    )


def _from_file(value: Any, tp: Any, path: tuple[str, ...], source: _Source) -> Any:
    try:
        return _coerce(value, tp, from_env=False)
    except _TypeMismatch as mismatch:
        raise _file_error(
            source, path, f"expected {mismatch.expected}, got {_describe(value)}"
        ) from None


def _from_env(text: str, tp: Any, path: tuple[str, ...], source: _Source) -> Any:
    try:
        return _coerce(text, tp, from_env=True)
    except _TypeMismatch as mismatch:
        variable = source.variable(path)
        raise InvalidArgument(
            f"environment variable {variable} (setting {_dotted(path)}): "
            f"expected {mismatch.expected}, got {text!r}",
            field=_dotted(path),
            reason="INVALID_SETTING",
            metadata={"variable": variable},
        ) from None


def _describe(value: Any) -> str:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"


def _coerce(value: Any, tp: Any, *, from_env: bool) -> Any:
    """``value`` as ``tp``; environment values arrive as ``str`` and are parsed."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"unsupported settings type {tp!r}: only 'X | None' unions")
        if value is None or (from_env and value == ""):
            return None
        try:
            return _coerce(value, members[0], from_env=from_env)
        except _TypeMismatch as mismatch:
            raise _TypeMismatch(f"{mismatch.expected} or null") from None
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if value == choice or (from_env and isinstance(value, str) and value == str(choice)):
                return choice
        raise _TypeMismatch("one of " + ", ".join(repr(choice) for choice in choices))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported settings type {tp!r}: only 'tuple[X, ...]'")
        item_type = args[0]
        if from_env:
            items: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list):
            items = value
        else:
            raise _TypeMismatch(f"list of {_type_name(item_type)}")
        try:
            return tuple(_coerce(item, item_type, from_env=from_env) for item in items)
        except _TypeMismatch:
            raise _TypeMismatch(f"list of {_type_name(item_type)}") from None
    if origin is not None:
        raise TypeError(f"unsupported settings type {tp!r}")
    return _coerce_scalar(value, tp, from_env=from_env)


def _coerce_scalar(value: Any, tp: Any, *, from_env: bool) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.strip().lower() in _TRUE:
            return True
        if from_env and value.strip().lower() in _FALSE:
            return False
        raise _TypeMismatch("bool (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_env:
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise _TypeMismatch("int")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise _TypeMismatch("float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _TypeMismatch("str")
    if tp is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise _TypeMismatch("path (a non-empty string)")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value == member.value or (from_env and value == str(member.value)):
                return member
        raise _TypeMismatch("one of " + ", ".join(repr(member.value) for member in tp))
    raise TypeError(f"unsupported settings type {tp!r}")


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)
