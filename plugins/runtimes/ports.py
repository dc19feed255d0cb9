"""Host ports for sandboxes: one free port per sandbox, never two sandboxes on one port.

The kernel picks a free port (bind to port 0); a lease file `<dir>/<port>` created with
O_EXCL then reserves it across processes on this host until the sandbox stops, so a port
freed by the probe socket is not handed to a second sandbox before the first one listens.
A lease names its sandbox: a start repeated under the same id gets the same port back.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

ATTEMPTS = 64


class PortsExhausted(RuntimeError):
    """No free port could be leased."""


def _probe() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _owner(lease: Path) -> str | None:
    try:
        return lease.read_text()
    except FileNotFoundError:
        return None


def lease_port(leases: Path, owner: str) -> int:
    """A free port leased to `owner` (the one it already holds, if any)."""
    leases.mkdir(parents=True, exist_ok=True)
    for lease in leases.iterdir():
        if lease.name.isdigit() and _owner(lease) == owner:
            return int(lease.name)
    for _ in range(ATTEMPTS):
        port = _probe()
        try:
            fd = os.open(leases / str(port), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue  # leased to a sandbox that is not listening yet, or still starting
        with os.fdopen(fd, "w") as file:
            file.write(owner)
        return port
    raise PortsExhausted(f"no free port after {ATTEMPTS} tries (leases in {leases})")


def release_port(leases: Path, port: int | None, owner: str) -> None:
    """Ends `owner`'s lease of `port`; another owner's lease is left alone."""
    if port is None:
        return
    lease = leases / str(port)
    if _owner(lease) == owner:
        with contextlib.suppress(FileNotFoundError):
            lease.unlink()
