"""structlog for the CLI: a console renderer on a terminal, JSON lines otherwise, on stderr."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, MutableMapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..settings import LOG_LEVEL

if TYPE_CHECKING:
    import importlib.machinery

    import structlog

DEBUG, INFO, WARNING = 10, 20, 30
_LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": 40, "critical": 50}
"""The `logging` module's numbers, which structlog filters by (importing `logging` costs a
light command more than it logs: nothing)."""


def level_for(verbose: int) -> int:
    """`-v` info, `-vv` debug; else `$SAGACTL_LOG_LEVEL`; else warning."""
    if verbose >= 2:
        return DEBUG
    if verbose == 1:
        return INFO
    return _LEVELS[LOG_LEVEL.read()]


def configure(verbose: int = 0, *, logs_only: bool = False) -> None:
    """Point structlog at stderr, filtered at the chosen level (stdout stays for results).

    One style per stream: stderr carries people's lines (the live view, `error:` lines)
    for every command but a daemon's, so log records are worded for people there too.
    JSON lines only for a command whose stderr holds nothing but logs (`logs_only`, the
    worker) when that stderr is not a terminal.

    structlog is configured when something imports it (at once if it is imported):
    importing it costs more than `sagactl status` itself, which never logs.
    """
    level = level_for(verbose)  # a bad $SAGACTL_LOG_LEVEL stops every command at start
    as_json = logs_only and not sys.stderr.isatty()
    global _pending
    if _pending is not None and _pending in sys.meta_path:
        sys.meta_path.remove(_pending)
    _pending = None
    if "structlog" in sys.modules:
        _apply(level, as_json)
    else:
        _pending = _WhenImported("structlog", lambda: _apply(level, as_json))
        sys.meta_path.insert(0, _pending)


def _apply(level: int, as_json: bool) -> None:
    import structlog

    renderer: structlog.types.Processor
    renderer = structlog.processors.JSONRenderer(sort_keys=True) if as_json else human_line
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class _WhenImported:
    """Runs `then` right after the module `name` is first imported, by anyone (ourselves or
    a plugin), before the importer gets it back. A meta path finder by its `find_spec`
    (not a subclass of `importlib.abc.MetaPathFinder`: importing that module costs more
    than a light command's own work)."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # the real finders find it; this hook is done
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if spec is None or loader is None:
            return spec
        load = loader.exec_module
        then = self.then

        def exec_module(module: ModuleType) -> None:
            load(module)
            then()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_pending: _WhenImported | None = None


_NOT_SHOWN = ("timestamp", "run_id", "level", "event", "action")


def human_line(_logger: object, method: str, record: MutableMapping[str, Any]) -> str:
    """`warning: [action] what happened (key: value, ...)`, like the live view's lines."""
    level = str(record.get("level", method))
    action = record.get("action")
    where = f"[{action}] " if action else ""
    details = ", ".join(f"{k}: {v}" for k, v in sorted(record.items()) if k not in _NOT_SHOWN)
    return f"{level}: {where}{record.get('event', '')}" + (f" ({details})" if details else "")
