"""Strict conversion of plain data (parsed YAML, JSON pushes) into frozen dataclasses.

Every plugin declares its config section as a frozen dataclass whose fields use
:func:`setting`. :func:`build` turns a mapping into that dataclass or raises a
:class:`~toyd.errors.ConfigError` naming the dotted key path, the bad value and a hint;
unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, Union

from .errors import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING


class Secret(str):
    """A string that came from ``$env``/``$file``; never shown in logs or reprs."""

    def __repr__(self) -> str:
        return "'***'"


# a key whose name says it holds a credential: its value is never shown in an error
SECRET_KEY = re.compile(
    r"token|password|passwd|passphrase|secret|api_?key|credential|psk", re.IGNORECASE
)
_KINDS = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "a mapping",
}


class Hidden:
    """Stands in for the value of a secret key in error messages: its kind, never the value."""

    def __init__(self, value: object) -> None:
        self.kind = _KINDS.get(type(value), "nothing" if value is None else type(value).__name__)

    def __repr__(self) -> str:
        return f"{self.kind}, not shown: the key holds a secret"


def is_secret(path: str, value: object = None) -> bool:
    """Whether the value at dotted ``path`` must never be printed (a ``$env``/``$file`` value or a credential key)."""
    return isinstance(value, Secret) or any(
        SECRET_KEY.search(part) for part in re.split(r"[.\[\]]", path)
    )


def setting(
    default: Any = _MISSING,
    *,
    doc: str,
    min: float | None = None,  # noqa: A002 - reads naturally at the call site
    max: float | None = None,  # noqa: A002
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare one config field with its documentation and optional numeric range."""
    metadata = {"doc": doc, "min": min, "max": max}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is _MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


LineLookup = Callable[[str], "int | None"]


@dataclasses.dataclass(frozen=True)
class Where:
    """Where data came from: a file (with a line lookup by key path) or a topic."""

    source: str = "<config>"
    lines: LineLookup = staticmethod(lambda path: None)  # type: ignore[assignment]

    def error(
        self, path: str, problem: str, *, value: object = _MISSING, hint: str = ""
    ) -> ConfigError:
        if value is not _MISSING and is_secret(path, value):
            value = Hidden(value)
        return ConfigError(
            problem,
            source=self.source,
            line=self.lines(path),
            path=path,
            value=None if value is _MISSING else value,
            has_value=value is not _MISSING,
            hint=hint,
        )


def build(cls: type[T], data: object, *, where: Where | None = None, path: str = "") -> T:
    """Validate ``data`` against dataclass ``cls`` and return an instance."""
    return _convert(cls, data, where or Where(), path)  # type: ignore[return-value]


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _convert(tp: Any, value: object, where: Where, path: str) -> object:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build_dataclass(tp, value, where, path)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, where, path)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = did_you_mean(value, choices) or "one of " + ", ".join(repr(c) for c in choices)
            raise where.error(path, "not an allowed value", value=value, hint=hint)
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = [m.value for m in tp]
            raise where.error(
                path, "not an allowed value", value=value, hint=f"one of {choices}"
            ) from None
    if origin is tuple or tp is tuple:
        return _convert_tuple(tp, value, where, path)
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        return _convert_mapping(tp, value, where, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise where.error(path, "expected true or false", value=value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(path, "expected a whole number", value=value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error(path, "expected a number", value=value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise where.error(path, "expected text", value=value, hint="quote the value in YAML")
        return value
    if tp is type(None):
        if value is not None:
            raise where.error(path, "expected nothing (null)", value=value)
        return None
    raise TypeError(f"schema type {tp!r} at {path or '<root>'} is not supported")


def _build_dataclass(cls: type, value: object, where: Where, path: str) -> object:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise where.error(path, f"expected a mapping of settings for {cls.__name__}", value=value)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in value:
        if key not in fields:
            known = sorted(fields)
            hint = did_you_mean(key, known) or (
                "known keys: " + ", ".join(known) if known else "this section takes no keys"
            )
            raise where.error(_join(path, key), "unknown key", hint=hint)
    kwargs: dict[str, object] = {}
    for name, field in fields.items():
        sub = _join(path, name)
        if name not in value:
            if field.default is _MISSING and field.default_factory is _MISSING:  # type: ignore[misc]
                raise where.error(
                    sub, "required key is missing", hint=field.metadata.get("doc", "")
                )
            continue
        converted = _convert(hints[name], value[name], where, sub)
        _check_range(field, converted, where, sub)
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks
        raise where.error(path, str(exc)) from None


def _check_range(field: dataclasses.Field, value: object, where: Where, path: str) -> None:
    lo, hi = field.metadata.get("min"), field.metadata.get("max")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = (
            f"between {lo} and {hi}"
            if lo is not None and hi is not None
            else (f"at least {lo}" if lo is not None else f"at most {hi}")
        )
        raise where.error(path, f"out of range: must be {bounds}", value=value)


def _convert_union(tp: Any, value: object, where: Where, path: str) -> object:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    errors: list[ConfigError] = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, where, path)
        except ConfigError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    names = " or ".join(_type_name(a) for a in args)
    raise where.error(path, f"expected {names}", value=value)


def _convert_tuple(tp: Any, value: object, where: Where, path: str) -> tuple:
    if not isinstance(value, (list, tuple)):
        raise where.error(path, "expected a list", value=value)
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], item, where, f"{path}[{i}]") for i, item in enumerate(value))
    if args and len(args) != len(value):
        raise where.error(path, f"expected a list of {len(args)} items", value=value)
    if not args:
        return tuple(value)
    return tuple(
        _convert(a, item, where, f"{path}[{i}]") for i, (a, item) in enumerate(zip(args, value))
    )


def _convert_mapping(tp: Any, value: object, where: Where, path: str) -> Mapping:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise where.error(path, "expected a mapping", value=value)
    args = typing.get_args(tp) or (str, Any)
    key_tp, val_tp = args
    out = {}
    for key, item in value.items():
        sub = _join(path, key)
        out[_convert(key_tp, key, where, sub)] = _convert(val_tp, item, where, sub)
    return types.MappingProxyType(out)


def _type_name(tp: Any) -> str:
    """A reader's name for a schema type: ``list of int``, ``'a' or 'b'``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)}"
    if origin in (dict, Mapping, typing.Mapping):
        return f"mapping of {_type_name(args[1])}" if args else "mapping"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " or ".join(repr(m.value) for m in tp)
    return {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}.get(
        getattr(tp, "__name__", ""), getattr(tp, "__name__", None) or str(tp)
    )


def did_you_mean(value: object, choices: typing.Iterable[object]) -> str:
    if not isinstance(value, str):
        return ""
    match = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def describe(cls: type) -> list[tuple[str, str, object, str]]:
    """List ``(key, type, default, doc)`` for each field: the data behind config docs."""
    rows = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.default is not _MISSING:
            default: object = field.default
        elif field.default_factory is not _MISSING:  # type: ignore[misc]
            default = field.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append(
            (field.name, _type_name(hints[field.name]), default, field.metadata.get("doc", ""))
        )
    return rows
