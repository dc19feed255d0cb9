"""The outbound-only network namespace RUN steps get: the registries, never the host.

A fresh named netns per build, given user-mode NAT by slirp4netns with
`--disable-host-loopback` (so 10.0.2.2 does not lead to the host's 127.0.0.1), and an
OUTPUT rule in the netns rejecting every address the host holds (so a service bound to the
host's own interfaces is not reachable either). RUN steps run without capabilities, so they
cannot change those rules. slirp4netns exits when the build process does (`--exit-fd`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio
import anyio.to_thread

from .base import ImageBuildFailed

NETNS_DIR = Path("/run/netns")
PREFIX = "sagactl-build-"
SLIRP_HOST = "10.0.2.2"
SLIRP_DNS = "10.0.2.3"
TOOLS = ("ip", "iptables", "slirp4netns")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def host_addresses() -> list[str]:
    """Every IPv4 address of the host's interfaces (loopback included)."""
    shown = subprocess.run(
        ["ip", "-json", "-4", "addr", "show"], capture_output=True, text=True, check=True
    )
    found = {SLIRP_HOST}
    for interface in json.loads(shown.stdout or "[]"):
        for info in interface.get("addr_info", []):
            local = info.get("local")
            if local and ipaddress.ip_address(local).version == 4:
                found.add(local)
    return sorted(found)


def _check(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageBuildFailed(f"{' '.join(argv[:4])}... failed: {done.stderr.strip()[:300]}")


def _create(name: str, refused: Iterable[str]) -> None:
    _check(["ip", "netns", "add", name])
    for address in refused:
        rule = ["iptables", "-w", "-A", "OUTPUT", "-d", address, "-j", "REJECT"]
        _check(["ip", "netns", "exec", name, *rule])


def _delete(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def sweep_stale() -> None:
    """Deletes build namespaces left by a process that died (their name holds its pid)."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        if not entry.name.startswith(PREFIX):
            continue
        pid = entry.name.removeprefix(PREFIX).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _delete(entry.name)


def _start_slirp(name: str) -> tuple[subprocess.Popen[bytes], int]:
    ready_read, ready_write = os.pipe()
    exit_read, exit_write = os.pipe()
    try:
        process = subprocess.Popen(
            [
                "slirp4netns",
                "--configure",
                "--disable-host-loopback",
                "--netns-type=path",
                f"--ready-fd={ready_write}",
                f"--exit-fd={exit_read}",
                str(NETNS_DIR / name),
                "tap0",
            ],
            pass_fds=(ready_write, exit_read),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(ready_write)
        os.close(exit_read)
    with os.fdopen(ready_read, "rb") as ready:
        signal = ready.read(1)
    if signal != b"1":
        os.close(exit_write)
        process.wait(10)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise ImageBuildFailed(f"slirp4netns did not configure the build network: {stderr[:300]}")
    return process, exit_write


@contextlib.asynccontextmanager
async def outbound_network() -> AsyncIterator[str]:
    """Yields buildah's `--network` value (`ns:/run/netns/NAME`) for one build."""
    missing = missing_tools()
    if missing:
        raise ImageBuildFailed(
            f"the outbound build network needs {', '.join(missing)} (scripts/setup installs "
            "them); or build without network (SAGACTL_BUILD_NETWORK=none)"
        )
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    await anyio.to_thread.run_sync(sweep_stale)
    refused = await anyio.to_thread.run_sync(host_addresses)
    await anyio.to_thread.run_sync(_create, name, refused)
    process: subprocess.Popen[bytes] | None = None
    exit_write = -1
    try:
        process, exit_write = await anyio.to_thread.run_sync(_start_slirp, name)
        yield f"ns:{NETNS_DIR / name}"
    finally:
        with anyio.CancelScope(shield=True):
            if process is not None:
                os.close(exit_write)  # slirp4netns exits when this end closes
                try:
                    await anyio.to_thread.run_sync(process.wait, 10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    await anyio.to_thread.run_sync(process.wait)
                if process.stderr is not None:
                    process.stderr.close()
            await anyio.to_thread.run_sync(_delete, name)
