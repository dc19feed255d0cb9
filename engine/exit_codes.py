"""The process exit codes of `sagactl`, in one light module (the CLI's root imports it,
so `sagactl --version` loads nothing else of the engine)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
"""The saga did not succeed: compensated, stuck or cancelled (or the run is held)."""
EXIT_PLUGIN_ERRORS = 1
"""`sagactl actions --strict`: a plugin failed to load."""
EXIT_BAD_INPUT = 2
"""A definition, an argument, an input, an unknown run: the caller's mistake."""
CRASH_EXIT_CODE = 75
"""What a process killed by a `crash` fault exits with (`sagactl resume` finishes the run)."""
EXIT_CRASHED = CRASH_EXIT_CODE
EXIT_INTERRUPTED = 130
