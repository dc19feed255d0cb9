"""The `sagactl` command line: one click group, commands from our modules and from plugins."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
