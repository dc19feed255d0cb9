"""Versioned schema migrations by namespace: the engine's own and those other packages register.

Other packages' records live in the same database as the log. A package adds its tables
with `register_migrations("acme", [Migration(1, {"sqlite": ..., ...})])` at
import time, or through an entry point in the group `sagactl.migrations` naming such a list
(or a zero-argument callable returning one). Each store applies, in one transaction per
migration, every version above the highest recorded in its `schema_migrations` table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..deps import Dependencies
from ..errors import PluginError
from ..plugin_registry import Group, Plugin, describe_exception, plugin_error
from . import schema
from .pages import INDEXES as PAGE_INDEXES
from .pruning import EXPIRY_INDEXES

ENTRY_POINT_GROUP = "sagactl.migrations"
CORE = "engine"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: `sql` maps a dialect (`sqlite`, `postgresql`) to a script."""

    version: int
    sql: Mapping[str, str]
    description: str = ""

    def script(self, dialect: str, namespace: str) -> str:
        try:
            return self.sql[dialect]
        except KeyError:
            raise PluginError(
                f"migration {namespace} v{self.version} has no {dialect} script",
                group=ENTRY_POINT_GROUP,
                name=namespace,
                distribution=None,
            ) from None


@dataclass(slots=True)
class _Registry:
    by_namespace: dict[str, tuple[Migration, ...]] = field(default_factory=dict)
    entry_points_loaded: bool = False


_registry = _Registry()


def check_migrations(namespace: str, migrations: object) -> tuple[Migration, ...]:
    """The migrations in version order; they must be `Migration`s numbered 1, 2, 3, ..."""
    if not isinstance(migrations, list | tuple) or not all(
        isinstance(m, Migration) for m in migrations
    ):
        raise TypeError(f"migrations of {namespace!r} must be a list of Migration")
    steps = tuple(sorted(migrations, key=lambda m: m.version))
    expected = list(range(1, len(steps) + 1))
    if [m.version for m in steps] != expected:
        raise ValueError(f"migrations of {namespace!r} must be numbered 1..n without gaps")
    return steps


def _migrations(plugin: Plugin[object], deps: Dependencies | None) -> tuple[Migration, ...]:
    """A `sagactl.migrations` entry point names a list of `Migration` (or a zero-argument
    callable returning one); the entry point's name is the namespace."""
    try:
        steps = plugin.obj() if callable(plugin.obj) else plugin.obj
        return check_migrations(plugin.name, steps)
    except Exception as exc:
        raise plugin_error(
            plugin, f"failed to give its migrations: {describe_exception(exc)}"
        ) from exc


MIGRATIONS: Group[tuple[Migration, ...]] = Group(ENTRY_POINT_GROUP, "migrations", _migrations)
"""Declared to the plugin registry in `sagactl.groups` (see pyproject.toml)."""


def register_migrations(namespace: str, migrations: Iterable[Migration]) -> None:
    """Add (or replace) a namespace's migrations; versions must be 1, 2, 3, ... in order."""
    _registry.by_namespace[namespace] = check_migrations(namespace, list(migrations))


def registered() -> Mapping[str, tuple[Migration, ...]]:
    """Every namespace's migrations, the engine's first, entry points loaded on first call.

    A `sagactl.migrations` plugin that fails to load is left out, like any broken plugin,
    and reported with the others (`load_plugins().errors`, `sagactl actions`) and in the log.
    """
    if not _registry.entry_points_loaded:
        from ..plugins import load_plugins  # not at import: `core_pending` needs no plugin

        _registry.entry_points_loaded = True
        plugins = load_plugins().registry(MIGRATIONS)
        for plugin in plugins:
            _registry.by_namespace[plugin.name] = plugin.obj
        for error in plugins.errors:
            import structlog  # not at import: light commands never log

            structlog.get_logger("sagactl").warning("migrations left out", error=str(error))
    ordered = {CORE: _registry.by_namespace[CORE]}
    ordered.update((k, v) for k, v in sorted(_registry.by_namespace.items()) if k != CORE)
    return MappingProxyType(ordered)


def pending(applied: Mapping[str, int]) -> list[tuple[str, Migration]]:
    """The registered migrations above the versions `applied`, in the order they apply."""
    return [
        (namespace, step)
        for namespace, steps in registered().items()
        for step in steps
        if step.version > applied.get(namespace, 0)
    ]


def core_pending(applied: Mapping[str, int]) -> bool:
    """Whether migrations of the engine's own tables remain above the versions `applied`
    (what reading runs needs; other namespaces' tables are not read with them)."""
    return applied.get(CORE, 0) < len(_registry.by_namespace[CORE])


register_migrations(
    CORE,
    [
        Migration(1, schema.scripts(schema.V1), "runs, run log, checkpoints, progress"),
        Migration(2, schema.scripts(schema.V2), "run node affinity, counters"),
        Migration(3, schema.scripts(PAGE_INDEXES), "pages of runs"),
        Migration(4, schema.scripts(schema.V4), "trace ids, retention, tombstones"),
        Migration(5, schema.scripts(schema.V5), "child runs' parent link"),
        Migration(6, schema.scripts(schema.V6), "concurrency keys, waiting runs, signals"),
        Migration(7, schema.scripts(schema.V7), "pause requests"),
        Migration(8, schema.search_scripts(), "runs found by id, saga or input (search)"),
        Migration(9, schema.scripts(schema.V9), "recoveries counted from an index (stats)"),
        Migration(10, schema.scripts(EXPIRY_INDEXES), "finished runs by expiry (retention)"),
        Migration(11, schema.scripts(schema.V11), "started runs counted from an index (stats)"),
        Migration(12, schema.scripts(schema.V12), "pinned definitions stored once per text"),
        Migration(13, schema.V13, "SQLite: no indexes that others begin with"),
        Migration(14, schema.V14, "SQLite: a run's search words written without a sort"),
        Migration(15, schema.V15, "SQLite: child runs indexed by parent, no other run"),
    ],
)

MigrationSource = Callable[[], Sequence[Migration]]
