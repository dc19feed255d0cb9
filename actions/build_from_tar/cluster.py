"""Resolves the cluster host to an IP address, with timeout, retries and a local fallback."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from sagactl.engine import FatalError

DEFAULT_HOST = "cluster.local"
FALLBACK_IP = "127.0.0.1"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    host: str = DEFAULT_HOST
    timeout: float = 2.0
    """Seconds per lookup."""
    retries: int = 2
    """Lookups after the first one fails."""
    retry_delay: float = 0.2
    strict: bool = False
    """Fail instead of falling back to 127.0.0.1 (single-machine mode)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    host: str
    ip: str
    fallback: bool = False


async def _lookup(host: str) -> str:
    infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    # Prefer IPv4: the sandboxes and builders reach the cluster on it first.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


async def resolve(
    settings: ClusterSettings, host: str | None = None, *, logger: Any = None
) -> Resolved:
    """The host's address; after `retries` more failed lookups, 127.0.0.1 with a warning,
    or FatalError when strict."""
    host = host or settings.host
    last: BaseException | None = None
    for attempt in range(settings.retries + 1):
        if attempt:
            await anyio.sleep(settings.retry_delay)
        try:
            with anyio.fail_after(settings.timeout):
                return Resolved(host, await _lookup(host))
        except (OSError, TimeoutError) as exc:
            last = exc
    reason = "timed out" if isinstance(last, TimeoutError) else str(last)
    if settings.strict:
        raise FatalError(
            f"cannot resolve cluster host {host!r} after {settings.retries + 1} tries: {reason}"
        )
    (logger or log).warning(
        "cluster host does not resolve: single-machine mode",
        host=host,
        fallback=FALLBACK_IP,
        reason=reason,
    )
    return Resolved(host, FALLBACK_IP, fallback=True)
