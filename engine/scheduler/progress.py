"""The progress flusher: actions' progress reports, emitted at once and saved cheaply.

A report goes to subscribers at once and rides along with the run's next commit. Only
when no commit comes for `interval` seconds (a long, quiet action) does the flusher
write it on its own, so progress never costs a commit per report.
"""

from __future__ import annotations

import anyio
import anyio.abc

from ..action import JSON
from ..events import Event, EventKind
from .journal import Journal


class ProgressFlusher:
    """Takes the reports of one run's actions (`report` is the contexts' progress sink)."""

    def __init__(self, journal: Journal, interval: float) -> None:
        self._journal = journal
        self._interval = interval
        self._group: anyio.abc.TaskGroup | None = None
        self._flushing = False

    def attach(self, group: anyio.abc.TaskGroup | None) -> None:
        """Where the flush loop runs once a report needs it (None: nowhere, from now on)."""
        self._group = group

    @property
    def flushing(self) -> bool:
        """The flush loop is running (a report started it)."""
        return self._flushing

    def report(self, action: str, fraction: float | None, message: str, n: int | None) -> None:
        journal = self._journal
        data: dict[str, JSON] = {"fraction": fraction, "message": message, "bytes": n}
        # ^ the `ActionProgress` payload, typed as the JSON the store saves
        journal.note_progress(action, data)
        journal.emit(
            Event(journal.run_id, EventKind.ACTION_PROGRESS, action, data, journal.clock.now())
        )
        if not self._flushing and self._group is not None:
            self._flushing = True  # started on the first report: most runs never need it
            self._group.start_soon(self._flush)

    async def _flush(self) -> None:
        try:
            while True:
                await anyio.sleep(self._interval)
                if self._journal.has_progress:
                    await self._journal.commit([])
        finally:
            self._flushing = False
