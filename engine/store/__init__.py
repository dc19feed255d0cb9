"""The durable log: one `Store` interface, a backend chosen from a URL.

`sqlite:///path` or a bare path -> `SqliteStore`; `postgresql://...` -> `PostgresStore`
(imported only when asked for). Default: `$SAGACTL_DB`, else `sagactl.db` in the user's
state directory.
"""

from __future__ import annotations

import os

from ..errors import InputError
from ..store_location import ENV as ENV
from ..store_location import default_url as default_url
from .base import Claim as Claim
from .base import ClaimLost as ClaimLost
from .base import Created as Created
from .base import NewRun as NewRun
from .base import RunBusy as RunBusy
from .base import RunExists as RunExists
from .base import RunRecord as RunRecord
from .base import Store as Store
from .base import StoreError as StoreError
from .base import StoreTransaction as StoreTransaction
from .base import StoreUnusable as StoreUnusable
from .migrations import Migration as Migration
from .migrations import register_migrations as register_migrations
from .pages import RunSummary as RunSummary


def open_store(url: str | os.PathLike[str] | None = None) -> Store:
    """The store for `url` (not yet opened: `async with open_store(url) as store: ...`)."""
    text = default_url() if url is None else os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        store: Store = PostgresStore(text)
        return store
    scheme = text.split("://", 1)[0] if "://" in text else None
    if scheme not in (None, "sqlite"):
        raise InputError(f"unknown database URL scheme {scheme!r}: use sqlite:/// or postgresql://")
    from .sqlite import SqliteStore

    return SqliteStore(text)


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
