"""The user's cache and state folders for sagactl, as platformdirs names them.

On Linux they are read from the XDG variables here: importing platformdirs costs a few
milliseconds on every start of every command, more than `sagactl status` needs for its
own work. Elsewhere platformdirs answers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "sagactl"


def user_cache_dir() -> Path:
    """`platformdirs.user_cache_dir("sagactl")`."""
    if sys.platform == "linux":
        return _xdg("XDG_CACHE_HOME", "~/.cache")
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP))


def user_state_dir() -> Path:
    """`platformdirs.user_state_dir("sagactl")`."""
    if sys.platform == "linux":
        return _xdg("XDG_STATE_HOME", "~/.local/state")
    import platformdirs

    return Path(platformdirs.user_state_dir(APP))


def _xdg(variable: str, default: str) -> Path:
    """The variable's folder when it holds an absolute path (else the default), as
    platformdirs reads it."""
    base = os.environ.get(variable, "")
    return Path(base if os.path.isabs(base) else os.path.expanduser(default), APP)
