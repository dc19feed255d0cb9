"""The reads of runs a read-only command makes (`RunReads`), and their SQL implementation
(`SqlReads`), written once for every SQL store and for the SQLite reader without an event
loop (`sqlite_reader.py`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import RunNotFound
from ..events import Event
from .records import RunRecord
from .sql import Row, Statements, by_action, event_of, record_from_row

if TYPE_CHECKING:
    from ..action import JSON

Params = Sequence[Any] | dict[str, Any]


class RunReads(Protocol):
    """What `status`, `list` and `logs` read: a `Store`, or a `SqliteReader`."""

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
        unchanged_since: float | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]: ...

    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]: ...

    async def progress(self, run_id: str) -> dict[str, JSON]: ...


class SqlReads(ABC):
    """The reads of `RunReads` (and checkpoints) through the shared SQL of `sql.py`; a
    subclass says how one statement runs."""

    sql: ClassVar[Statements]
    no_limit: ClassVar[int | None]
    """The `LIMIT` parameter that means no limit."""

    @abstractmethod
    async def _query(self, sql: str, params: Params = ()) -> list[Row]:
        """The rows of one read, by column name."""

    @abstractmethod
    def _not_found(self, run_id: str) -> RunNotFound:
        """`RunNotFound` naming this database."""

    async def get_run(self, run_id: str) -> RunRecord:
        found = await self._query(self.sql.get_run, (run_id,))
        if not found:
            raise self._not_found(run_id)
        return record_from_row(found[0])

    async def list_runs(
        self,
        *,
        states: Collection[str] | None = None,
        limit: int = 1000,
        saga: str | None = None,
        unchanged_since: float | None = None,
        parent: str | None = None,
    ) -> list[RunRecord]:
        sql = self.sql.list_runs(
            None if states is None else len(states),
            saga is not None,
            unchanged_since is not None,
            parent is not None,
        )
        params: list[Any] = [
            *(states or ()),
            *([saga] if saga is not None else []),
            *([unchanged_since] if unchanged_since is not None else []),
            *([parent] if parent is not None else []),
            limit,
        ]
        return [record_from_row(row) for row in await self._query(sql, params)]

    async def read_log(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        params = (run_id, after_seq, self.no_limit if limit is None else limit)
        return [event_of(run_id, row) for row in await self._query(self.sql.read_log, params)]

    async def checkpoints(self, run_id: str) -> dict[str, JSON]:
        return by_action(await self._query(self.sql.checkpoints, (run_id,)))

    async def progress(self, run_id: str) -> dict[str, JSON]:
        return by_action(await self._query(self.sql.progress, (run_id,)))
