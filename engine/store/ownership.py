"""Which process owns a run on one host: a lock file per live store, held with `flock`.

Every `SqliteStore` holds an exclusive `flock` on its own file `<db>.owners/<token>.lock`
for as long as it is open; the token is what the runs table records as a run's owner. The
kernel drops the lock when the process dies, however it dies (SIGKILL included), so
"is the owner alive?" is "is its lock file still locked?", answered at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
from pathlib import Path


class OwnerLock:
    """This store's token and the lock that proves it is alive."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.host = socket.gethostname()
        self.token = f"{self.host}:{os.getpid()}:{secrets.token_hex(6)}"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(self.token), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd

    def release(self) -> None:
        """Remove the file and drop the lock: runs this store owned become orphans."""
        if self._fd is None:
            return
        try:
            self._path(self.token).unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def alive(self, owner: str) -> bool:
        """Whether the store that wrote `owner` into the runs table still runs."""
        if owner == self.token:
            return self._fd is not None
        host = owner.split(":", 1)[0]
        if host != self.host:
            return True  # another machine: we cannot tell, so never take its runs
        try:
            fd = os.open(self._path(owner), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return True
                raise
            # We got the lock: its owner is dead. Remove the file for the next reader.
            self._path(owner).unlink(missing_ok=True)
            return False
        finally:
            os.close(fd)

    def _path(self, token: str) -> Path:
        return self.directory / (token.replace("/", "_") + ".lock")
