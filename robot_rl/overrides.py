"""Typed dataclass configs from YAML presets and `key=value` overrides (the form TD-MPC2 users type).

One way to configure every command: a dataclass with defaults, optionally a YAML file (`config=path.yaml`)
or a named preset, then `key=value` pairs from the command line. Nested dataclasses take dotted keys
(`planner.samples=256`). Values are coerced to the annotated type; anything unknown or malformed is
refused with the key, the source and what was expected.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value that does not fit the dataclass it is meant for."""


def parse_pairs(args: list[str]) -> dict[str, str]:
    """`["steps=100", "task=panda-reach"]` -> `{"steps": "100", "task": "panda-reach"}`."""
    pairs: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"argument {arg!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML layer of config keys. `base: other.yaml` (beside it) layers the file on another one."""
    path = Path(path)
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: field 'base' is {base!r}; expected the name of another YAML file")
    return _merged(load_yaml(path.parent / base), data)


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(under)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def build(cls: type[T], *layers: dict[str, Any], sources: tuple[str, ...] = ()) -> T:
    """Instantiate `cls` from its defaults overlaid by each layer in turn (later layers win).

    A layer maps dotted or nested keys to values; strings are coerced to the field's type.
    `sources` names each layer in error messages (e.g. a file path or "command line").
    """
    obj = cls()
    for i, layer in enumerate(layers):
        source = sources[i] if i < len(sources) else f"layer {i}"
        for key, value in flatten(layer).items():
            obj = _set(obj, key.split("."), value, key, source)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A plain nested dict (YAML/JSON-safe) of a config dataclass."""
    return _plain(dataclasses.asdict(obj))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def flatten(layer: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _set(obj: Any, path: list[str], value: Any, key: str, source: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head = path[0]
    if head not in fields:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key {key!r}; expected one of: {known}")
    hints = typing.get_type_hints(type(obj))
    current = getattr(obj, head)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{source}: key {key!r}: {head!r} has no sub-keys")
        return dataclasses.replace(obj, **{head: _set(current, path[1:], value, key, source)})
    return dataclasses.replace(obj, **{head: _coerce(value, hints[head], key, source)})


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{source}: key {key!r}: cannot be None")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == str(value):
                return choice
        raise ConfigError(f"{source}: key {key!r}={value!r}; expected one of {list(args)}")
    if origin in (list, tuple):
        items = value
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            items = [v.strip() for v in text.split(",") if v.strip()] if text else []
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{source}: key {key!r}={value!r}; expected a list")
        item_type = args[0] if args else str
        coerced = [_coerce(v, item_type, key, source) for v in items]
        return tuple(coerced) if origin is tuple else coerced
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{source}: key {key!r}={value!r}; expected true or false")
    if hint in (int, float):
        try:
            number = float(value) if hint is float else int(float(value))
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: key {key!r}={value!r}; expected {hint.__name__}") from None
        if hint is int and float(value) != number:
            raise ConfigError(f"{source}: key {key!r}={value!r}; expected an integer")
        return number
    if hint is str:
        return str(value)
    if hint is Path:
        return Path(str(value))
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"{source}: key {key!r} is a group; set its fields as {key}.<name>=...")
    return value
