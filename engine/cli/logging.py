"""structlog for the CLI: a console renderer on a terminal, JSON lines otherwise, on stderr."""

from __future__ import annotations

import logging
import sys

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


def configure(verbose: int = 0) -> None:
    """Point structlog at stderr, filtered at the chosen level (stdout stays for results)."""
    renderer: structlog.types.Processor
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
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
