"""Configuration objects: frozen dataclasses that hold everything a task, a prior, the engine or an experiment
needs, each defined once beside the class it configures.

A field's ``option(default, help, ...)`` carries its command-line help, its check, its choices and (rarely) its
flag; ``hypersiren.cli.arguments`` turns a config class into command-line options and back. Every value is
checked when a config is built, from Python or from the command line: ``FitImage.Config(size=-1)`` raises
InputError naming the option. ``to_dict()`` is what ``config.json`` and checkpoints store, ``from_dict`` rebuilds
a config from it and refuses unknown keys and values of the wrong type.

    @dataclass(frozen=True, kw_only=True)
    class Config(TaskConfig):
        size: int = option(256, "longer side in pixels after resizing", check=positive_int)

What a number or word option accepts is a ``Check`` (``hypersiren.checks``, re-exported here).

A nested config field (``engine: EngineConfig = EngineConfig(steps=500)``) may be given as a dict of changes to
its default: ``FitImage.Config(input="camera", engine={"steps": 5})``. A ``variant`` field holds one of several
config classes chosen by name (the face prior's method); its dict form names the choice under ``selector``.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import MISSING, field, fields
from functools import lru_cache
from typing import Any, Callable, ClassVar, Mapping

from hypersiren.checks import RANGE_WORDS, Check, in_range, shown
from hypersiren.checks import (device_name, layer_count, non_negative_float, non_negative_int,  # noqa: F401 (re-export)
                               positive_float, positive_int, unit_fraction, width)
from hypersiren.errors import InputError


def option(default: Any = MISSING, help: str = "", *, check: Check | None = None, choices=None,
           flag: str | None = None, positional: bool = False, group: str | None = None, exclusive: str | None = None,
           comma: bool = False, repeat: bool = False, noun: str | None = None, metavar: str | None = None,
           resumable: bool = False) -> Any:
    """A config field. help: one line for ``--help`` (the default is appended); check: a ``Check``; choices: the
    allowed values; flag: the option's name when not ``--field-name``; positional: a positional argument;
    group: the ``--help`` section; exclusive: options sharing this name exclude each other; comma: a tuple given
    as one comma-separated word (else as several words); repeat: a tuple the option adds to each time it is given;
    noun: what an unknown choice is called in errors; resumable: the option may differ when a run is resumed (how
    long it trains, how it logs, what it renders or evaluates), others must match the stored config."""
    metadata = dict(help=help, check=check, choices=tuple(choices) if choices is not None else None, flag=flag,
                    positional=positional, group=group, exclusive=exclusive, comma=comma, repeat=repeat, noun=noun,
                    metavar=metavar, resumable=resumable)
    return field(default=default, metadata={k: v for k, v in metadata.items() if v not in (None, False)})


def override(config_cls: type, name: str, default: Any) -> Any:
    """Field ``name`` of ``config_cls`` with another default (same help and check), for a subclass."""
    base = next(f for f in fields(config_cls) if f.name == name)
    return field(default=default, metadata=base.metadata)


def variant(default: "Config", help: str, *, options: Callable[[], Mapping[str, type]], selector: str,
            group: str | None = None) -> Any:
    """A field holding one of the config classes ``options()`` names (name -> config class); the command line
    chooses it with ``--<selector>``, and its dict form stores the name under ``selector``."""
    return field(default=default, metadata=dict(help=help, variants=options, selector=selector, group=group))


class Config:
    """Base of every configuration (subclasses are ``@dataclass(frozen=True, kw_only=True)``).

    title: the ``--help`` section of its options when it is nested in another config (e.g. "training").
    """

    title: ClassVar[str | None] = None

    def __post_init__(self):
        hints = type_hints(type(self))
        for f in fields(self):
            value = _coerce(f, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    def replace(self, **changes):
        """A copy with ``changes`` (checked like a new config); a dict for a nested config changes its current value
        (for a variant field: unless the dict names another choice, which then starts from that choice's defaults)."""
        variants = {f.name: f for f in fields(self) if "variants" in f.metadata}
        for name, value in changes.items():
            current = getattr(self, name, None)
            if not isinstance(current, Config) or not isinstance(value, Mapping):
                continue
            if name in variants:
                selector, chosen = variants[name].metadata["selector"], variant_name(variants[name], current)
                if value.get(selector, chosen) != chosen:
                    continue  # another choice: built from its own defaults
                value = {k: v for k, v in value.items() if k != selector}
            changes[name] = current.replace(**value)
        return _build(type(self), self, changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (nested configs as dicts, tuples as lists) that ``from_dict`` reads back."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value = value.to_dict()
                if "variants" in f.metadata:
                    value = {f.metadata["selector"]: variant_name(f, getattr(self, f.name)), **value}
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The config ``to_dict`` gave; InputError (one line, naming the key) for unknown keys or bad values."""
        if not isinstance(data, Mapping):
            raise InputError(f"{cls.__qualname__}: expected a dict of options, got {type(data).__name__}")
        missing = [f.name for f in fields(cls) if f.name not in data and field_default(f) is MISSING]
        if missing:
            raise InputError(f"{cls.__qualname__}: missing option(s) {', '.join(missing)}")
        return _build(cls, None, data)


@lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a config class (its fields' types)."""
    return typing.get_type_hints(cls)


def flag_of(f: dataclasses.Field) -> str:
    """The command-line name of a field: ``--hidden-features`` for ``hidden_features``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def variant_name(f: dataclasses.Field, value: Config) -> str:
    """The name under which a variant field's ``options()`` know the class of ``value``."""
    for name, config_cls in f.metadata["variants"]().items():
        if type(value) is config_cls:
            return name
    raise InputError(f"{f.name}: {type(value).__qualname__} is none of {', '.join(f.metadata['variants']())}")


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (MISSING for a required field)."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _build(cls: type, base: Config | None, changes: Mapping[str, Any]) -> Config:
    names = {f.name for f in fields(cls)}
    unknown = [k for k in changes if k not in names]
    if unknown:
        keys = ", ".join(shown(k, quote=False) for k in unknown)
        raise InputError(f"{cls.__qualname__}: unknown option(s) {keys}; expected some of {', '.join(sorted(names))}")
    return dataclasses.replace(base, **changes) if base is not None else cls(**changes)


def _label(f: dataclasses.Field) -> str:
    return f.name if f.metadata.get("positional") else flag_of(f)


def _coerce(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    """``value`` checked against the field's type, check and choices; nested dicts become configs."""
    if "variants" in f.metadata:
        return _variant(f, value)
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, Mapping):
            return _build(hint, field_default(f), value)
        if not isinstance(value, hint):
            raise InputError(f"{f.name}: expected a {hint.__qualname__} (or a dict of changes), got {shown(value)}")
        return value
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise InputError(f"{_label(f)}: expected a list, got {shown(value)}")
        return tuple(_scalar(f, typing.get_args(hint)[0], item) for item in value)
    return _scalar(f, hint, value)


def _scalar(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    if isinstance(value, os.PathLike) and hint is str:
        value = os.fspath(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool) and in_range(value):
        value = float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise InputError(f"{_label(f)}: expected {_TYPE_WORDS[hint]}, got {shown(value)}")
    choices, check = f.metadata.get("choices"), f.metadata.get("check")
    if choices is not None and value not in choices:
        noun = f.metadata.get("noun") or f.name.replace("_", " ")
        raise InputError(f"unknown {noun} {shown(value)}; {f.name} must be one of {', '.join(map(str, choices))}")
    if check is not None and not check.ok(value):
        raise InputError(f"{_label(f)}: expected {check.expected(value)}, got {shown(value)}")
    if not in_range(value):
        raise InputError(f"{_label(f)}: expected {_TYPE_WORDS[hint]} {RANGE_WORDS[hint]}, got {shown(value)}")
    return value


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _variant(f: dataclasses.Field, value: Any) -> Config:
    options = f.metadata["variants"]()
    if isinstance(value, Config):
        variant_name(f, value)  # one of the options
        return value
    if not isinstance(value, Mapping):
        raise InputError(f"{f.name}: expected one of the {', '.join(options)} configs, got {shown(value)}")
    changes = dict(value)
    name = changes.pop(f.metadata["selector"], variant_name(f, f.default))
    if not isinstance(name, str) or name not in options:
        raise InputError(f"unknown {f.metadata['selector']} {shown(name)}; expected one of {', '.join(options)}")
    config_cls = options[name]
    return _build(config_cls, f.default if type(f.default) is config_cls else None, changes)
