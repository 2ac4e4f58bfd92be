"""Registries: names -> classes that own their ``Config``, filled by a class decorator.

``TASKS`` holds the zoo (``hypersiren fit NAME``, ``hypersiren zoo``), ``PRIORS`` the prior methods
(``hypersiren train prior --method NAME``, checkpoints' ``model.method``). A registry imports every module of its
package the first time it is read, so a new entry is one new file that decorates its class:

    @TASKS.register
    class FitInpaint(FitImage):
        name = "inpaint"
        ...
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Iterator

from hypersiren.errors import InputError


class Registry:
    """Classes of one kind keyed by their ``key`` attribute (e.g. ``name``), found in ``package``."""

    def __init__(self, what: str, package: str, key: str):
        self.what, self.package, self.key = what, package, key
        self._entries: dict[str, type] = {}
        self._loaded = False

    def register(self, cls: type) -> type:
        """Class decorator: make ``cls`` known under ``getattr(cls, key)``."""
        name = getattr(cls, self.key)
        if self._entries.get(name, cls) is not cls:
            raise ValueError(f"two {self.what}s are named {name!r}: {self._entries[name].__qualname__} and "
                             f"{cls.__qualname__}")
        self._entries[name] = cls
        return cls

    def _load(self) -> dict[str, type]:
        if not self._loaded:
            self._loaded = True
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")
        return self._entries

    def __getitem__(self, name: str) -> type:
        entries = self._load()
        if name not in entries:
            raise InputError(f"unknown {self.what} {name!r}; expected one of {', '.join(sorted(entries))}")
        return entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._load()))

    def __len__(self) -> int:
        return len(self._load())

    def items(self) -> list[tuple[str, type]]:
        """(name, class) pairs in name order."""
        return [(name, self._load()[name]) for name in self]

    def owner(self, config) -> type:
        """The registered class whose ``Config`` is exactly the class of ``config``."""
        for cls in self._load().values():
            if type(config) is cls.Config:
                return cls
        raise InputError(f"no {self.what} is configured by a {type(config).__qualname__}")

    def configs(self) -> dict[str, type]:
        """name -> the class's ``Config`` (what a variant config field chooses from)."""
        return {name: cls.Config for name, cls in self.items()}


TASKS = Registry("zoo task", "hypersiren.tasks", key="name")
PRIORS = Registry("prior method", "hypersiren.priors", key="method")
