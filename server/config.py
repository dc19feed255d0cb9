"""What a server is started with: where the store is, who may change things, the caps."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from sagactl.engine import InputError

TOKEN_ENV = "SAGACTL_TOKEN"
MAX_BODY = 1 << 20
"""Bytes a request other than an upload may send (JSON inputs, forms)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db: str | None = None
    """Store URL (None: `$SAGACTL_DB` or the state dir, as the CLI)."""
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    """With a token, every mutating request needs `Authorization: Bearer TOKEN`."""
    max_body: int = MAX_BODY
    poll: float = 0.5
    """Seconds between looks at the store for events of runs other processes drive."""
    resume_orphans: bool = True
    """Resume unfinished runs nobody holds at start, as `resume --all` does."""

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise InputError(f"--token / ${TOKEN_ENV} is empty")
        if not is_loopback(self.host) and not self.token:
            raise InputError(
                f"binding {self.host} (beyond this machine) needs a token: --token or ${TOKEN_ENV}"
            )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost` stay on this machine; anything else may not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None
