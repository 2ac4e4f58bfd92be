"""Command-line options generated from a config class (``hypersiren.config``), and the config read back.

Every field becomes one option: ``--hidden-features`` for ``hidden_features``, ``--flag`` for a bool that defaults
to False and ``--no-flag`` for one that defaults to True, a positional argument, choices, a range-checked number
(its ``Check`` parses the text), several words (or one comma-separated word) for a tuple. Nested configs add
their options in their own section; a variant field adds ``--<selector>`` and the options of every choice (unset
options keep the chosen class's default). ``defaults`` (a config instance) replaces the fields' defaults.
"""
from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields
from typing import Any

from hypersiren.config import Config, field_default, flag_of, type_hints, variant_name
from hypersiren.errors import InputError


def add_arguments(parser: argparse.ArgumentParser, config_cls: type[Config], defaults: Config | None = None) -> None:
    """Add an option for every field of ``config_cls`` (defaults from ``defaults`` if given)."""
    _add(parser, config_cls, defaults, None, {})


def from_args(config_cls: type[Config], args: argparse.Namespace, defaults: Config | None = None) -> Config:
    """The config the parsed options describe (checked: InputError)."""
    values = {}
    hints = type_hints(config_cls)
    for f in fields(config_cls):
        default = getattr(defaults, f.name) if defaults is not None else field_default(f)
        if "variants" in f.metadata:
            values[f.name] = _variant_from_args(f, args, default)
        elif _is_config(hints[f.name]):
            values[f.name] = from_args(_is_config(hints[f.name]), args, default)
        else:
            values[f.name] = getattr(args, f.name)
    return defaults.replace(**values) if defaults is not None else config_cls(**values)


def _is_config(hint: Any) -> type[Config] | None:
    return hint if isinstance(hint, type) and issubclass(hint, Config) else None


def _sections(config_cls: type[Config]) -> list[tuple[Any, str | None]]:
    """The fields with the ``--help`` section of the class that first declared them (its own ``title``), a
    subclass's own fields first: a task's options come before the shared network and training options."""
    classes = [c for c in config_cls.__mro__ if "__dataclass_fields__" in c.__dict__]
    origin = {f.name: max(i for i, c in enumerate(classes) if f.name in c.__dict__.get("__annotations__", {}))
              for f in fields(config_cls)}
    ordered = sorted(fields(config_cls), key=lambda f: origin[f.name])
    return [(f, f.metadata.get("group") or classes[origin[f.name]].__dict__.get("title")) for f in ordered]


def _add(parser, config_cls: type[Config], defaults: Config | None, section: str | None, groups: dict) -> None:
    hints = type_hints(config_cls)
    for f, own_section in _sections(config_cls):
        default = getattr(defaults, f.name) if defaults is not None else field_default(f)
        where = own_section or section
        if "variants" in f.metadata:
            _add_variant(_container(parser, where, None, groups), f, default)
        elif _is_config(hints[f.name]):
            nested = _is_config(hints[f.name])
            _add(parser, nested, default, nested.title or where, groups)
        else:
            target = _container(parser, where, f.metadata.get("exclusive"), groups)
            target.add_argument(*_names(f), **_kwargs(f, hints[f.name], default))


def _container(parser, section: str | None, exclusive: str | None, groups: dict):
    """The argument group ``section`` (created once), or its mutually exclusive group ``exclusive``."""
    target = parser
    if section:
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        target = groups[section]
    if exclusive:
        key = (section, exclusive)
        if key not in groups:
            groups[key] = target.add_mutually_exclusive_group()
        target = groups[key]
    return target


def _names(f) -> list[str]:
    if f.metadata.get("positional"):
        return [f.name]
    if f.metadata.get("flag") is None and field_default(f) is True:
        return ["--no-" + f.name.replace("_", "-")]
    return [flag_of(f)]


def _help(text: str, shown: Any) -> str:
    """The help line with ``(default: shown)`` appended (not for flags, unset defaults or a text that has one)."""
    if shown is None or isinstance(shown, bool) or "(default" in text:
        return text
    return f"{text} (default: {shown:g})" if isinstance(shown, float) else f"{text} (default: {shown})"


def _shown(f, value: Any) -> Any:
    if isinstance(value, tuple):
        return ("," if f.metadata.get("comma") else " ").join(map(str, value))
    return value


def _kwargs(f, hint: Any, default: Any) -> dict:
    """argparse keyword arguments of one field."""
    meta = f.metadata
    if default is MISSING:  # a required argument
        kwargs: dict[str, Any] = dict(help=meta.get("help", ""))
        if not meta.get("positional"):
            kwargs["required"] = True
    else:
        kwargs = dict(help=_help(meta.get("help", ""), _shown(f, default)), default=default)
    if meta.get("positional"):
        kwargs["metavar"] = meta.get("metavar", f.name)
        if field_default(f) is not MISSING:
            kwargs["nargs"] = "?"
    else:
        kwargs["dest"] = f.name
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
    if hint is bool:
        on_by_default = field_default(f) is True
        kwargs["action"] = "store_false" if on_by_default else "store_true"
        if on_by_default and _names(f)[0].startswith("--no-"):  # say what --no-NAME turns off
            kwargs["help"] = f"turn off (on by default): {kwargs['help']}"
        return kwargs
    if typing.get_origin(hint) is not tuple and type(None) in typing.get_args(hint):  # X | None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    many = typing.get_origin(hint) is tuple
    parse = meta["check"].parse if meta.get("check") else (typing.get_args(hint)[0] if many else hint)
    if many and meta.get("comma"):
        parse = _comma_list(parse, meta.get("choices"))
    else:
        if many:
            kwargs["nargs"] = "+"
            if meta.get("repeat"):  # argparse extends a copy of the default, so a default's items stay
                kwargs.update(action="extend", default=list(default or ()))
        if meta.get("choices") is not None:
            kwargs["choices"] = meta["choices"]
    kwargs["type"] = parse
    return kwargs


def _comma_list(parse, choices):
    """argparse type of a comma-separated list: each item parsed (and one of ``choices``)."""
    def read(text: str) -> tuple:
        items = tuple(parse(item) for item in text.split(",") if item)
        if not items or (choices is not None and any(item not in choices for item in items)):
            expected = ", ".join(map(str, choices)) if choices is not None else "values"
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {expected}, got {text!r}")
        return items

    return read


def _add_variant(group, f, default: Config) -> None:
    """``--<selector>`` and the union of the options of every choice, each defaulting to None (= unset)."""
    options = f.metadata["variants"]()
    current = variant_name(f, default)
    group.add_argument(f"--{f.metadata['selector']}", default=current, choices=sorted(options),
                       help=f"{f.metadata.get('help', '')} (default: {current})")
    declared: dict[str, list] = {}
    for name, config_cls in options.items():
        hints = type_hints(config_cls)
        for g in fields(config_cls):
            value = getattr(default, g.name) if type(default) is config_cls else field_default(g)
            declared.setdefault(g.name, []).append((name, g, hints[g.name], value))
    for entries in declared.values():
        _, g, hint, _ = entries[0]
        values = {method: value for method, _, _, value in entries}
        shown = next(iter(values.values())) if len(set(map(repr, values.values()))) == 1 else \
            ", ".join(f"{method} {value}" for method, value in values.items())
        prefix = "" if len(entries) == len(options) else "/".join(values) + ": "
        kwargs = _kwargs(g, hint, None)
        kwargs["help"] = prefix + _help(g.metadata.get("help", ""), _shown(g, shown))
        if hint is bool:
            kwargs.update(action="store_const", const=not field_default(g))
        group.add_argument(*_names(g), **kwargs)


def _variant_from_args(f, args: argparse.Namespace, default: Config) -> Config:
    options = f.metadata["variants"]()
    config_cls = options[getattr(args, f.metadata["selector"])]
    base = default if type(default) is config_cls else config_cls()
    selector, own = f.metadata["selector"], {g.name for g in fields(config_cls)}
    owners: dict[str, list[str]] = {}  # a given option the chosen method lacks -> the methods that have it
    for name, other in options.items():
        for g in fields(other):
            if g.name not in own and getattr(args, g.name, None) is not None:
                owners.setdefault(flag_of(g), []).append(name)
    if owners:  # it would be silently ignored
        flag, methods = next(iter(owners.items()))
        raise InputError(f"{flag} is an option of --{selector} {'/'.join(methods)}, not of --{selector} "
                         f"{getattr(args, selector)}")
    changes = {g.name: getattr(args, g.name) for g in fields(config_cls) if getattr(args, g.name, None) is not None}
    return base.replace(**changes)
