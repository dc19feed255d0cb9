"""The keys of the log context the scheduler sets per run and per action.

structlog keeps each key of its context-local log context in a context variable of its
own; setting that variable is what `bind_contextvars` does, at a fifteenth of the cost
(it formats the key, looks the variable up and returns a dict of tokens on every call),
and a run sets the action once per action.
"""

from __future__ import annotations

import contextvars
from typing import Any

import structlog


def _variable(key: str) -> contextvars.ContextVar[Any]:
    """The variable structlog keeps `key` in (bound, then reset at once, to find it)."""
    token = structlog.contextvars.bind_contextvars(**{key: None})[key]
    token.var.reset(token)
    return token.var


RUN_ID = _variable("run_id")
"""The run a task drives."""

ACTION = _variable("action")
"""The action a task runs."""
