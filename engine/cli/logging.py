"""structlog for the CLI: a console renderer on a terminal, JSON lines otherwise, on stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from ..settings import LOG_LEVEL

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def level_for(verbose: int) -> int:
    """`-v` info, `-vv` debug; else `$SAGACTL_LOG_LEVEL`; else warning."""
    if verbose >= 2:
        return logging.DEBUG
    if verbose == 1:
        return logging.INFO
    return _LEVELS[LOG_LEVEL.read()]


def configure(verbose: int = 0, *, logs_only: bool = False) -> None:
    """Point structlog at stderr, filtered at the chosen level (stdout stays for results).

    One style per stream: stderr carries people's lines (the live view, `error:` lines)
    for every command but a daemon's, so log records are worded for people there too.
    JSON lines only for a command whose stderr holds nothing but logs (`logs_only`, the
    worker) when that stderr is not a terminal.
    """
    renderer: structlog.types.Processor
    if logs_only and not sys.stderr.isatty():
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = human_line
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_for(verbose)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


_NOT_SHOWN = ("timestamp", "run_id", "level", "event", "action")


def human_line(_logger: object, method: str, record: MutableMapping[str, Any]) -> str:
    """`warning: [action] what happened (key: value, ...)`, like the live view's lines."""
    level = str(record.get("level", method))
    action = record.get("action")
    where = f"[{action}] " if action else ""
    details = ", ".join(f"{k}: {v}" for k, v in sorted(record.items()) if k not in _NOT_SHOWN)
    return f"{level}: {where}{record.get('event', '')}" + (f" ({details})" if details else "")
