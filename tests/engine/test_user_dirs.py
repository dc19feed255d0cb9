"""`user_dirs`: the folders platformdirs would give, read without importing it."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest
from sagactl.engine.user_dirs import user_cache_dir, user_state_dir


@pytest.mark.parametrize("value", [None, "", "relative/dir", "/tmp/xdg", "/tmp/xdg/", " /tmp/x"])
def test_same_folders_as_platformdirs(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set, unset, empty, relative (ignored) or absolute XDG variables: the same answer."""
    for variable in ("XDG_CACHE_HOME", "XDG_STATE_HOME"):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    assert user_cache_dir() == Path(platformdirs.user_cache_dir("sagactl"))
    assert user_state_dir() == Path(platformdirs.user_state_dir("sagactl"))
