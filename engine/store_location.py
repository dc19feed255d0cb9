"""Where the run store is when no `--db` says: `$SAGACTL_DB`, else a file in the user's
state directory. Outside the store package, so naming the variable (the CLI's `--db`
option) does not import the store."""

from __future__ import annotations

import os

ENV = "SAGACTL_DB"


def default_url() -> str:
    """`$SAGACTL_DB`, else `sqlite:///<user state dir>/sagactl/sagactl.db`."""
    configured = os.environ.get(ENV)
    if configured:
        return configured
    from .user_dirs import user_state_dir

    return "sqlite://" + str(user_state_dir() / "sagactl.db")
