"""The dependency container handed to plugin factories: instances looked up by type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class MissingDependency(LookupError):
    """Nothing provides the requested type."""


class Dependencies:
    """Instances keyed by type; a provider is a ready instance or a lazy zero-argument factory.

    Lazy providers are called once, on first `get`, so a plugin that does not need an
    expensive service never starts it.
    """

    def __init__(self) -> None:
        self._instances: dict[type[Any], Any] = {}
        self._factories: dict[type[Any], Callable[[], Any]] = {}

    def provide(self, kind: type[T], instance: T) -> None:
        self._instances[kind] = instance
        self._factories.pop(kind, None)

    def provide_lazy(self, kind: type[T], factory: Callable[[], T]) -> None:
        self._factories[kind] = factory
        self._instances.pop(kind, None)

    def get(self, kind: type[T]) -> T:
        if kind in self._instances:
            return cast(T, self._instances[kind])
        factory = self._factories.pop(kind, None)
        if factory is None:
            raise MissingDependency(f"no {kind.__qualname__} was provided to the plugins")
        instance = factory()
        self._instances[kind] = instance
        return cast(T, instance)

    def maybe(self, kind: type[T]) -> T | None:
        try:
            return self.get(kind)
        except MissingDependency:
            return None

    def __contains__(self, kind: type[Any]) -> bool:
        return kind in self._instances or kind in self._factories
