"""SVG and PNG: DOT piped through Graphviz's `dot` program."""

from __future__ import annotations

import shutil
import subprocess

from ..errors import InputError, SagaError

TIMEOUT = 60.0
"""Seconds `dot` may take; a saga drawing takes milliseconds."""


def run_dot(source: str, fmt: str) -> bytes:
    """`source` laid out by Graphviz in `fmt` (svg, png)."""
    program = shutil.which("dot")
    if program is None:
        raise InputError("Graphviz 'dot' not found: install the graphviz package")
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SagaError(f"Graphviz 'dot' took more than {TIMEOUT:g}s") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.decode("utf-8", "replace").split())
        raise SagaError(f"Graphviz 'dot -T{fmt}' failed: {message}")
    return done.stdout
