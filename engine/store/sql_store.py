"""What the SQLite and PostgreSQL stores do the same way, written once: every read, and the
writes that are one statement, through the shared SQL of `sql.py`.

A backend supplies how a statement runs (`_query` for reads, `_write_count` for one-statement
writes, each on its own connection and thread or task discipline) and everything that
differs: claims, appends, transactions, migrations.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Collection, Sequence

import anyio

from ..action import JSON
from . import parking_sql, pause_sql
from .base import Store, Turn
from .pages import CENSUS_SQL, RunSummary, page_sql, summaries
from .pruning import STUCK_SQL, TOMBSTONE, prune_candidates
from .reads import Params as Params
from .reads import SqlReads
from .sql import dumps, translate

CHUNK = 500
"""Run ids per `IN (...)` list."""


class SqlStore(SqlReads, Store):
    """A `Store` on one of the SQL databases of `sql.DIALECTS` (its reads of runs: `SqlReads`)."""

    @abstractmethod
    async def _write_count(self, sql: str, params: Params = ()) -> int:
        """Run one write statement in the next commit; the number of rows it changed."""

    # -- reads -------------------------------------------------------------------------

    async def page_runs(
        self,
        *,
        states: Collection[str] | None = None,
        saga: str | None = None,
        q: str | None = None,
        before: str | None = None,
        limit: int = 50,
        parent: str | None = None,
        created_before: float | None = None,
    ) -> list[RunSummary]:
        sql, params = page_sql(
            self.dialect,
            states=states,
            saga=saga,
            q=q,
            before=before,
            limit=limit,
            parent=parent,
            created_before=created_before,
        )
        return summaries(await self._query(sql, params))

    async def census(self) -> list[tuple[str, str, int, float]]:
        return [
            (str(r["saga"]), str(r["state"]), int(r["runs"]), float(r["oldest"]))
            for r in await self._query(CENSUS_SQL)
        ]

    async def stuck_runs(self) -> list[tuple[str, float]]:
        rows = await self._query(STUCK_SQL)
        return [(str(r["saga"]), float(r["updated"])) for r in rows]

    async def migrations_applied(self) -> dict[str, int]:
        rows = await self._query(self.sql.migrations_applied)
        return {str(row["namespace"]): int(row["version"]) for row in rows}

    async def stats(self) -> dict[str, int]:
        (row,) = await self._query(self.sql.stats)
        return {name: int(row[name]) for name in self.sql.stats_names}

    async def cancel_requested(self, run_id: str) -> bool:
        return bool(await self.cancel_requests([run_id]))

    async def cancel_requests(self, run_ids: Collection[str]) -> set[str]:
        ids, found = list(run_ids), set[str]()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = await self._query(self.sql.cancel_requests(len(chunk)), chunk)
            found.update(row["run_id"] for row in rows)
        return found

    # -- parked runs -------------------------------------------------------------------

    def _parking(self, sql: str) -> str:
        return translate(sql) if self.dialect == "postgresql" else sql

    async def turn(self, run_id: str) -> Turn | None:
        found = await self._query(self._parking(parking_sql.TURN), (run_id,))
        if not found:
            raise self._not_found(run_id)
        row = found[0]
        if row["concurrency_key"] is None:
            return None
        return Turn(str(row["concurrency_key"]), int(row["concurrency_limit"]), int(row["ahead"]))

    async def send_signal(self, run_id: str, name: str, data: JSON) -> bool:
        params = (run_id, name, self.now(), dumps(data))
        return await self._write_count(self._parking(parking_sql.INSERT_SIGNAL), params) == 1

    async def pending_signals(self, run_id: str) -> set[str]:
        rows = await self._query(self._parking(parking_sql.PENDING_SIGNALS), (run_id,))
        return {str(row["name"]) for row in rows}

    async def wake(self, run_id: str) -> bool:
        await self._write_count(self._parking(parking_sql.WAKE), (self.now(), run_id))
        return False

    async def due(self) -> list[str]:
        rows = await self._query(self._parking(parking_sql.DUE), (self.now(),))
        return [str(row["run_id"]) for row in rows]

    async def pause_requests(self, run_ids: Collection[str]) -> set[str]:
        ids, found = list(run_ids), set[str]()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = await self._query(pause_sql.flagged(self.dialect, len(chunk)), chunk)
            found.update(row["run_id"] for row in rows)
        return found

    # -- one-statement writes ----------------------------------------------------------

    async def request_pause(self, run_id: str, paused: bool = True) -> None:
        if await self._write_count(pause_sql.flag(self.dialect), (paused, run_id)) == 0:
            raise self._not_found(run_id)

    async def request_cancel(self, run_id: str) -> None:
        if await self._write_count(self.sql.request_cancel, (run_id,)) == 0:
            raise self._not_found(run_id)

    async def prune(
        self,
        *,
        finished_before: float | None = None,
        default_retention: float | None = None,
        page: int = 500,
        keep: Sequence[str] = (),
    ) -> int:
        queries = prune_candidates(
            self.dialect,
            now=self.now(),
            finished_before=finished_before,
            default_retention=default_retention,
            keep=keep,
        )
        total = 0
        for select, params in queries:
            while True:
                began = time.monotonic()
                async with self.transaction() as tx:
                    ids = [str(row[0]) for row in await tx.fetchall(select, [*params, page])]
                    if ids:
                        marks = ", ".join("?" * len(ids))
                        await tx.execute(TOMBSTONE.format(marks=marks), [self.now(), *ids])
                        await tx.execute(f"DELETE FROM runs WHERE run_id IN ({marks})", ids)
                total += len(ids)
                if len(ids) < page:
                    break
                # As long a pause as the page took: the runs' own writes get the write
                # lock at least half the time (SQLite's busy wait would lose every race).
                await anyio.sleep(time.monotonic() - began)
        return total

    async def tombstone(self, run_id: str) -> float | None:
        rows = await self._query(self.sql.tombstone, (run_id,))
        return float(rows[0]["pruned"]) if rows else None
