"""Typed configuration loading shared by the extraction presets, the training configs and the synthetic generator.

Owns: building (nested) dataclasses from YAML files or dicts, with every value checked against the field's type
and its declared bounds; `--set a.b.c=VALUE` overrides; `ConfigError`. Does not own any config's fields: those
live beside their users (`ragar_data.pipelines.config`, `ragar_data.training.config`, `ragar_data.synth.config`).

A field declares its bounds in its metadata, most simply with `setting(default, min=..., choices=...)`; a
dataclass may add checks that involve several fields in a `validate(self)` method returning
`[(key, problem), ...]`. Errors name where the value came from, the dotted key, what was expected and what was
found; an unknown key gets the closest known name and the list of known keys.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping, Set
from pathlib import Path
from typing import Any

import yaml

from ragar_data.errors import ConfigError

__all__ = ["ConfigError", "setting", "build", "check", "load_yaml", "parse_overrides", "apply_overrides"]


def setting(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,
            above: float | None = None, below: float | None = None, choices: tuple | None = None) -> Any:
    """A dataclass field with bounds: `min`/`max` inclusive, `above`/`below` exclusive, `choices` a tuple of
    allowed values. For a list or tuple field the bounds apply to each item. A list or dict default is copied
    per instance."""
    checks = {name: value for name, value in
              (("min", min), ("max", max), ("above", above), ("below", below), ("choices", choices))
              if value is not None}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=functools.partial(type(default), default), metadata=checks)
    return dataclasses.field(default=default, metadata=checks)


# ------------------------------------------------------------------------------------------------ building

def build(cls: type, values: Mapping, source: str, prefix: str = "") -> Any:
    """An instance of dataclass `cls` from `values`; missing keys keep their defaults. `source` names where the
    values came from (a file path, "override"); `prefix` is the dotted key of `values` inside that source."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: {prefix or 'top level'}: expected a mapping, found {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    for key in values:
        if key not in fields:
            raise ConfigError(_unknown_key(source, prefix, key, fields))
    kwargs = {name: _coerce(value, hints[name], fields[name], source, _join(prefix, name))
              for name, value in values.items()}
    instance = cls(**kwargs)
    _validate(instance, source, prefix)
    return instance


def check(instance: Any, source: str | None = None) -> None:
    """Coerce and check the fields of an existing dataclass instance in place (frozen ones too), then its
    `validate()`: for `__post_init__` of configs that users construct directly."""
    source = source or type(instance).__name__
    hints = _hints(type(instance))
    for field in dataclasses.fields(instance):
        if field.init:
            value = _coerce(getattr(instance, field.name), hints[field.name], field, source, field.name)
            object.__setattr__(instance, field.name, value)
    _validate(instance, source, "")


def load_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML file; errors name the file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(document).__name__}")
    return document


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _unknown_key(source: str, prefix: str, key: Any, fields: Mapping) -> str:
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f"; did you mean {_join(prefix, close[0])!r}?" if close else ""
    section = f"{prefix}" if prefix else "the top level"
    return f"{source}: unknown key {_join(prefix, key)!r}{hint} (known keys of {section}: {', '.join(fields)})"


def _validate(instance: Any, source: str, prefix: str) -> None:
    validate = getattr(instance, "validate", None)
    if validate is None:
        return
    problems = validate()
    if problems:
        raise ConfigError("; ".join(f"{source}: {_join(prefix, key)}: {problem}" for key, problem in problems))


# ------------------------------------------------------------------------------------------------ types

def _optional_inner(hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, (hint, False) otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(others) == 1 and len(others) < len(typing.get_args(hint)):
            return others[0], True
    return hint, False


def _describe(hint: Any) -> str:
    hint, optional = _optional_inner(hint)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}
    if hint in names:
        text = names[hint]
    elif dataclasses.is_dataclass(hint):
        text = "a mapping"
    elif typing.get_origin(hint) in (list, tuple):
        text = f"a list of {_describe(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    else:
        text = str(hint)
    return f"{text} or null" if optional else text


def _coerce(value: Any, hint: Any, field: dataclasses.Field, source: str, key: str) -> Any:
    inner, optional = _optional_inner(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: {key}: null is not allowed (expected {_describe(hint)})")
    if dataclasses.is_dataclass(inner):
        if dataclasses.is_dataclass(value) and isinstance(value, inner):
            return value
        return build(inner, value, source, key)
    converted = _convert(value, inner)
    if converted is _WRONG:
        raise ConfigError(f"{source}: {key}: expected {_describe(hint)}, found {value!r}")
    _check_bounds(converted, field.metadata, source, key)
    return converted


_WRONG = object()


def _convert(value: Any, hint: Any) -> Any:
    """`value` as type `hint`, or _WRONG. Numbers may come as strings: PyYAML reads `1e-4` as a string."""
    origin = typing.get_origin(hint)
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG
    if hint is int:
        number = _number(value)
        return int(number) if number is not _WRONG and math.isfinite(number) and number == int(number) else _WRONG
    if hint is float:
        number = _number(value)
        return float(number) if number is not _WRONG and math.isfinite(number) else _WRONG
    if hint is str:
        return value if isinstance(value, str) else _WRONG
    if hint is dict or origin is dict:
        return dict(value) if isinstance(value, Mapping) else _WRONG
    if origin in (list, tuple):
        if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping, Set)):
            return _WRONG  # a set has no order; numpy arrays are welcome
        item_hint = typing.get_args(hint)[0]
        items = [_convert(item, item_hint) for item in value]
        return _WRONG if any(item is _WRONG for item in items) else origin(items)
    raise TypeError(f"typed_config: unsupported field type {hint!r}")


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        return _WRONG
    if isinstance(value, numbers.Real):  # numpy scalars too
        return value
    if isinstance(value, str):
        try:
            return float(value) if not value.strip().lstrip("+-").isdigit() else int(value)
        except ValueError:
            return _WRONG
    return _WRONG


def _check_bounds(value: Any, checks: Mapping, source: str, key: str) -> None:
    if not checks:
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_bounds(item, checks, source, f"{key}[{index}]")
        return
    problem = _bound_problem(value, checks)
    if problem:
        raise ConfigError(f"{source}: {key}: must be {problem}, found {value!r}")


def _bound_problem(value: Any, checks: Mapping) -> str | None:
    if "choices" in checks and value not in checks["choices"]:
        return "one of " + ", ".join(map(repr, checks["choices"]))
    if isinstance(value, dict) or isinstance(value, str):
        return None
    rules = (("min", ">=", lambda v, b: v >= b), ("max", "<=", lambda v, b: v <= b),
             ("above", ">", lambda v, b: v > b), ("below", "<", lambda v, b: v < b))
    if all(passes(value, checks[name]) for name, _, passes in rules if name in checks):
        return None
    return " and ".join(f"{sign} {checks[name]}" for name, sign, _ in rules if name in checks)


# ------------------------------------------------------------------------------------------------ overrides

def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["optim.lr=3e-4"]` -> `{"optim.lr": "3e-4"}`; the text is typed by `apply_overrides`."""
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        dotted, text = item.split("=", 1)
        pairs[dotted.strip()] = text
    return pairs


def apply_overrides(instance: Any, overrides: Mapping | list[str] | tuple[str, ...], source: str = "override") -> Any:
    """A new instance with fields set by dotted name: `["detect.work_width=320"]` (text read as a YAML scalar, or
    kept as written for a string field) or `{"detect.work_width": 320}` (values used as given). Keys inside a
    `dict` field (backend options) are free; every other key must exist. The result is checked in full."""
    typed = isinstance(overrides, Mapping)
    pairs = overrides if typed else parse_overrides(overrides)
    values = dataclasses.asdict(instance)
    cls = type(instance)
    for dotted, value in pairs.items():
        target, name, hint = _locate(cls, values, dotted, source)
        target[name] = value if typed else _from_text(value, hint)
    return build(cls, values, source)


def _locate(cls: type, values: dict, dotted: str, source: str) -> tuple[dict, str, Any]:
    """The dict holding the last part of `dotted` inside `values` (a config's asdict), that part, and the type
    hint of the field (None inside a free `dict`)."""
    parts = dotted.split(".")
    target, hint = values, cls
    for depth, part in enumerate(parts):
        if hint is not None:
            inner, _ = _optional_inner(hint)
            if not dataclasses.is_dataclass(inner):
                raise ConfigError(f"{source}: {dotted}: {'.'.join(parts[:depth])} is not a section")
            fields = {f.name: f for f in dataclasses.fields(inner) if f.init}
            if part not in fields:
                raise ConfigError(_unknown_key(source, ".".join(parts[:depth]), part, fields))
            hint = _hints(inner)[part]
            field_type, _ = _optional_inner(hint)
            free = field_type is dict or typing.get_origin(field_type) is dict
        else:
            free = True
        if depth == len(parts) - 1:
            return target, part, hint
        if not isinstance(target.get(part), dict):
            if hint is not None and not free:
                raise ConfigError(f"{source}: {dotted}: {'.'.join(parts[:depth + 1])} is not a section")
            target[part] = {}
        target = target[part]
        if free:
            hint = None
    raise ConfigError(f"{source}: empty override key")


def _from_text(text: str, hint: Any) -> Any:
    """An override's text as the field's type: a string field keeps the text as written (so a folder named
    `2024` or `yes` stays a string); anything else is a YAML scalar (`320`, `0.5`, `true`, `null`, `[1, 2]`)."""
    inner, optional = _optional_inner(hint) if hint is not None else (None, False)
    if inner is str:
        return None if optional and text.strip() in ("", "null", "~", "None") else text
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    if isinstance(value, str) and typing.get_origin(inner) in (list, tuple):
        try:
            value = yaml.safe_load(f"[{text}]")  # `model.channels=4,8,8,16`
        except yaml.YAMLError:
            pass
    return value
