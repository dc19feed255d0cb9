"""The durable log: one `Store` interface, a backend chosen from a URL.

`sqlite:///path` or a bare path -> `SqliteStore`; `postgresql://...` -> `PostgresStore`
(imported only when asked for). Default: `$SAGACTL_DB`, else `sagactl.db` in the user's
state directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ..errors import InputError
from ..lazy_exports import lazy_exports as _lazy_exports
from ..store_location import ENV as ENV
from ..store_location import default_url as default_url

if _TYPE_CHECKING:
    from .base import Store as Store
    from .base import StoreTransaction as StoreTransaction
    from .migrations import Migration as Migration
    from .migrations import register_migrations as register_migrations
    from .pages import RunSummary as RunSummary
    from .records import Claim as Claim
    from .records import ClaimLost as ClaimLost
    from .records import Created as Created
    from .records import NewRun as NewRun
    from .records import RunBusy as RunBusy
    from .records import RunExists as RunExists
    from .records import RunRecord as RunRecord
    from .records import StoreError as StoreError
    from .records import StoreUnusable as StoreUnusable

_EXPORTS = {
    "Store": ".base",
    "StoreTransaction": ".base",
    "Migration": ".migrations",
    "register_migrations": ".migrations",
    "RunSummary": ".pages",
    **dict.fromkeys(
        (
            "Claim",
            "ClaimLost",
            "Created",
            "NewRun",
            "RunBusy",
            "RunExists",
            "RunRecord",
            "StoreError",
            "StoreUnusable",
        ),
        ".records",
    ),
}
"""Each public name and the module that defines it, imported on first use: the commands
that only read runs import the records, not the `Store` interface or the migrations."""


def open_store(url: str | os.PathLike[str] | None = None, *, commit_on_loop: bool = False) -> Store:
    """The store for `url` (not yet opened: `async with open_store(url) as store: ...`).
    `commit_on_loop`: SQLite commits on the event loop while the lock is free (`SqliteStore`);
    for a process whose loop serves only its sagas. PostgreSQL ignores it."""
    text = default_url() if url is None else os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(text)
        return store
    scheme = text.split("://", 1)[0] if "://" in text else None
    if scheme not in (None, "sqlite"):
        raise InputError(f"unknown database URL scheme {scheme!r}: use sqlite:/// or postgresql://")
    from .sqlite import SqliteStore

    return SqliteStore(text, commit_on_loop=commit_on_loop)


__all__ = [
    "ENV",
    "Claim",
    "ClaimLost",
    "Created",
    "Migration",
    "NewRun",
    "RunBusy",
    "RunExists",
    "RunRecord",
    "RunSummary",
    "Store",
    "StoreError",
    "StoreTransaction",
    "StoreUnusable",
    "default_url",
    "open_store",
    "register_migrations",
]

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, __all__)
