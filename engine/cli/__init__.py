"""The `sagactl` command line: one click group, commands from our modules and from plugins."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """The console script. `sagactl --version` alone is answered before click and the
    command modules are imported: it is what scripts and shells call most often."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from importlib.metadata import version

        print(f"sagactl, version {version('sagactl')}")  # click's own wording
        return
    from .main import main as run

    run(argv)


__all__ = ["main"]
