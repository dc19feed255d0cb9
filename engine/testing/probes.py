"""What an author hands the kit to observe an action's effect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..action import JSON, Transaction
from ..store import Store, open_store

Probe = Callable[[Transaction], Awaitable[JSON]]
"""Returns a JSON snapshot of the effect under test (rows, files, a remote resource...).

It is given a transaction on the run's database, for effects kept there; a probe of an
effect elsewhere ignores it. Two snapshots are compared with `==`: leave out what changes
by itself (timestamps, run ids)."""


async def probe_store(store: Store, probe: Probe) -> JSON:
    """`probe(tx)` in one transaction outside any run of the open `store`."""
    async with store.transaction() as tx:
        return await probe(tx)


async def probe_db(db: str, probe: Probe) -> JSON:
    """`probe(tx)` on a store of its own on `db`, opened and closed around it."""
    async with open_store(db) as store:
        return await probe_store(store, probe)
