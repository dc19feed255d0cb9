"""The live view's board on a terminal: rich's Progress, drawn at a steady rate and cut to
the terminal's height.

Drawing the table costs about a millisecond of CPU per row, so a 300-action saga drawn
on every event took far longer than the run itself. The board is never drawn by an event:
events only change the rows, and rich's refresh thread draws a few times a second. When
there are more rows than the terminal has lines, it shows the rows worth seeing (those
under way or in trouble, then the latest finished, then the next pending) and one line
counting the others by state; `sagactl status RUN` lists them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.progress import Progress, Task, TaskID
from rich.text import Text

REFRESH_PER_SECOND = 4
"""How often the refresh thread draws (each draw holds the interpreter a few ms)."""

QUIET_STATES = frozenset({"pending", "succeeded", "skipped", "compensated"})
"""Rows that need no attention: the first to be left off a board that does not fit."""


class Board(Progress):
    """A Progress whose rows carry `phase` (the plain state) and `touched` (a counter of
    changes) among their fields; `touch` updates a row without drawing."""

    def __init__(self, *columns: Any, **options: Any) -> None:
        super().__init__(*columns, refresh_per_second=REFRESH_PER_SECOND, **options)
        self._changes = 0

    def refresh(self) -> None:
        """Nothing: events never draw (rich calls this from `reset` and `update`); the
        refresh thread and `stop` draw the live display themselves."""

    def touch(self, task: TaskID, phase: str | None = None, **changes: Any) -> None:
        """`update` the row, noting that it changed (and its new phase, if given)."""
        self._changes += 1
        if phase is not None:
            changes["phase"] = phase
        self.update(task, touched=self._changes, **changes)

    def get_renderables(self) -> Iterable[RenderableType]:
        tasks = self.tasks
        if not tasks:  # also while rich's __init__ draws a first, empty board
            yield self.make_tasks_table(tasks)
            return
        room = max(self.console.size.height - 2, 3)
        if len(tasks) <= room:
            yield self.make_tasks_table(tasks)
            return
        shown = window(tasks, room - 1)
        yield self.make_tasks_table(shown)
        ids = {task.id for task in shown}
        yield Text(left_off([t for t in tasks if t.id not in ids]), style="dim")


def window(tasks: list[Task], room: int) -> list[Task]:
    """At most `room` rows, in board order: those under way or in trouble first, then
    the latest finished and the next pending, half the room left each (or what the other
    does not need)."""
    active: list[Task] = []
    done: list[Task] = []
    pending: list[Task] = []
    for task in tasks:
        phase = task.fields.get("phase", "pending")
        (pending if phase == "pending" else done if phase in QUIET_STATES else active).append(task)
    latest = sorted(active + done, key=lambda task: -int(task.fields.get("touched", 0)))
    chosen = [task for task in latest if task in active][:room]
    left = room - len(chosen)
    finished = [task for task in latest if task not in active]
    take = min(len(finished), max((left + 1) // 2, left - len(pending)))
    chosen += finished[:take] + pending[: left - take]
    return sorted(chosen, key=lambda task: int(task.id))


def left_off(tasks: list[Task]) -> str:
    """`… 280 more: 150 succeeded, 130 pending`."""
    counts = Counter(str(task.fields.get("phase", "pending")) for task in tasks)
    states = ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items()))
    return f"… {len(tasks)} more: {states}"
