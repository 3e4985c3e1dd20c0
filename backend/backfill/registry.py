"""The backfills the application knows, by name.

Shipped backfills live in `backend.shipped_backfills`; a deployment (or a test) can add
modules through the BACKFILL_MODULES setting. Importing a module registers its
classes through the `register` decorator.
"""
from __future__ import annotations

import importlib
from typing import Callable, Iterable, Iterator

from backend.backfill.definition import Backfill
from backend.backfill.settings import SettingsError

# schema_jobs: the family of index builds and validations a revision schedules.
SHIPPED_MODULES = ("backend.shipped_backfills", "backend.backfill.schema_jobs")


class UnknownBackfill(LookupError):
    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown backfill {name!r} (known: {known_list})")


class Catalog:
    def __init__(self) -> None:
        self._by_name: dict[str, Backfill] = {}
        # Backfills known by a name prefix rather than one by one (schema jobs: their
        # definitions are rows of the database), made on first use from the name.
        self._families: dict[tuple[str, ...], Callable[[str], Backfill]] = {}
        self._made: dict[str, Backfill] = {}

    def add_family(self, prefixes: tuple[str, ...], make: Callable[[str], Backfill]) -> None:
        self._families[prefixes] = make

    def _of_family(self, name: str) -> Backfill | None:
        if name in self._made:
            return self._made[name]
        for prefixes, make in self._families.items():
            if name.startswith(prefixes):
                made = self._made[name] = make(name)
                return made
        return None

    def register(self, cls: type[Backfill]) -> type[Backfill]:
        existing = self._by_name.get(cls.name)
        if existing is not None and type(existing).__qualname__ != cls.__qualname__:
            raise ValueError(f"two backfills are named {cls.name!r}: {type(existing).__name__} and {cls.__name__}")
        self._by_name[cls.name] = cls()
        return cls

    def unregister(self, name: str) -> None:
        self._by_name.pop(name, None)

    def get(self, name: str) -> Backfill:
        try:
            return self._by_name[name]
        except KeyError:
            made = self._of_family(name)
            if made is None:
                raise UnknownBackfill(name, self._by_name) from None
            return made

    def __contains__(self, name: str) -> bool:
        return name in self._by_name or any(name.startswith(prefixes) for prefixes in self._families)

    def __iter__(self) -> Iterator[Backfill]:
        return iter(self._by_name.values())

    def names(self) -> list[str]:
        return sorted(self._by_name)


# One per process on purpose: a backfill module registers its classes when it is
# imported, which happens once per process; load_catalog hands this object to whoever
# builds a service, and nothing else reads it.
catalog = Catalog()
register = catalog.register


def load_catalog(extra_modules: Iterable[str] = ()) -> Catalog:
    """Import the shipped backfills and `extra_modules`, and return the catalog."""
    for module in SHIPPED_MODULES:
        importlib.import_module(module)
    for module in extra_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SettingsError(f"BACKFILL_MODULES: cannot import {module!r} ({exc})") from None
    return catalog
