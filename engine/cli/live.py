"""The live view of a run on stderr: rich progress bars on a terminal, plain lines otherwise.

On a terminal each action has one line (state, elapsed time, progress bar) redrawn in
place; elsewhere (a pipe, a log file) each transition is one plain line, so the output
reads well in CI logs and can be followed with `tail -f`.
"""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeElapsedColumn

from ..events import Event, EventKind
from ..states import ACTION_KIND_STATE, ELEMENT_KINDS, ActionState, RunState
from .board import Board

K = EventKind
log = structlog.get_logger("sagactl.cli")

# What each action-level kind shows: the state it moves the action into (the state
# machine's), and two moments worth their own word.
_SHOWN: dict[EventKind, str] = {kind: str(state) for kind, state in ACTION_KIND_STATE.items()}
_SHOWN |= {K.ACTION_RETRYING: "retrying", K.COMPENSATION_FAILED: "compensation failed"}

_STYLE = {
    ActionState.RUNNING: "cyan",
    ActionState.SUCCEEDED: "green",
    ActionState.FAILED: "red",
    "retrying": "yellow",
    ActionState.COMPENSATING: "magenta",
    ActionState.COMPENSATED: "blue",
    "compensation failed": "red",
    ActionState.SKIPPED: "dim",
}


def describe(event: Event) -> str:
    """One plain line for a transition: `run_id action state (details)`."""
    data = event.data
    subject = f"{event.run_id} {event.action}" if event.action else event.run_id
    if event.kind is K.RUN_PAUSING:
        running = ", ".join(data.get("running") or []) or "none"
        return f"{event.run_id} pausing (waiting for the running actions: {running})"
    kind = ELEMENT_KINDS.get(event.kind, event.kind)
    if kind is not event.kind:  # an element of a fan-out: `run action[index] state`
        subject += f"[{data.get('index')}]"
    state = _SHOWN.get(kind, kind) if event.action else str(data.get("state", event.kind))
    details = []
    if "attempt" in data and kind in (K.ACTION_STARTED, K.COMPENSATION_STARTED):
        details.append(f"attempt {data['attempt']}")
    if data.get("delay") is not None and event.kind is K.ACTION_RETRYING:
        details.append(f"in {float(data['delay']):.2f}s")
    if data.get("error"):
        details.append(str(data["error"]))
    if data.get("reason"):
        details.append(str(data["reason"]))
    if event.kind is K.RUN_WAITING:
        details += [_waiting_for(event.run_id, wait) for wait in data.get("waits", ())]
    if event.kind is K.RUN_QUEUED:
        state = "queued"
        ahead = int(data["ahead"])
        details.append(
            f"waits for its turn on concurrency key {data['key']!r}:"
            f" {ahead} run{'s' if ahead != 1 else ''} ahead, {data['limit']} at a time"
        )
    return f"{subject} {state}" + (f" ({'; '.join(details)})" if details else "")


def _waiting_for(run_id: str, wait: Mapping[str, Any]) -> str:
    deadline = wait.get("deadline")
    until = "" if deadline is None else f" until {_utc(float(deadline))}"
    send = f"sagactl signal {run_id} {wait.get('signal')}"
    return f"{wait.get('action')} waits for signal {wait.get('signal')!r}{until}: {send}"


def _utc(stamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class LiveView:
    """An `on_event` handler drawing the run; use it as a context manager around the run."""

    def __init__(
        self, actions: Sequence[str] = (), *, stream: IO[str] | None = None, quiet: bool = False
    ) -> None:
        self._stream = stream or sys.stderr
        self._quiet = quiet
        self._fancy = not quiet and self._stream.isatty()
        self._progress: Board | None = None
        self._tasks: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}
        self._elements: dict[str, tuple[int, int]] = {}
        """Fan-out -> (elements succeeded, elements in all), for its bar."""
        self._actions = list(actions)
        self._root: str | None = None
        """The run the view was opened for: the first one it hears of."""
        if self._fancy:
            self._progress = Board(
                TextColumn("{task.description}", justify="left"),
                TextColumn("{task.fields[state]}"),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[message]}", style="dim"),
                console=Console(file=self._stream),
                transient=False,
            )

    def __enter__(self) -> LiveView:
        if self._progress is not None:
            for name in self._actions:
                self._task(name)
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _task(self, name: str) -> TaskID:
        assert self._progress is not None
        if name not in self._tasks:
            width = max((len(a) for a in self._actions), default=len(name))
            self._tasks[name] = self._progress.add_task(
                name.ljust(width), total=1.0, start=False, state="[dim]pending", message=""
            )
        return self._tasks[name]

    def _line(self, run_id: str, action: str) -> str:
        """A child saga's actions (run `ROOT/ACTION`) show as `ACTION/CHILD_ACTION`."""
        root = self._root or run_id
        if run_id != root and run_id.startswith(root + "/"):
            return f"{run_id[len(root) + 1 :]}/{action}"
        return action

    def __call__(self, event: Event) -> None:
        if self._root is None:
            self._root = event.run_id
        if event.kind is not K.ACTION_PROGRESS:  # -v: every transition as a structured line
            log.info(event.kind, run_id=event.run_id, action=event.action, seq=event.seq)
        if self._quiet:
            return
        if self._progress is None:
            if event.kind is not K.ACTION_PROGRESS:
                print(describe(event), file=self._stream, flush=True)
            return
        if event.action is None:
            shown = (RunState.COMPENSATING, RunState.STUCK, RunState.WAITING, RunState.PAUSED)
            if event.data.get("state") in shown or event.kind in (K.RUN_QUEUED, K.RUN_PAUSING):
                self._progress.console.print(describe(event))
            return
        if event.kind is K.ACTION_FINALIZED:
            return  # the action's state stays as it was
        line = self._line(event.run_id, event.action)
        task = self._task(line)
        if event.kind in ELEMENT_KINDS:
            self._element(task, event)
            return
        if event.kind is K.ACTION_PROGRESS:
            fraction = event.data.get("fraction")
            self._progress.touch(
                task,
                completed=float(fraction) if fraction is not None else None,
                message=str(event.data.get("message") or ""),
            )
            return
        state = _SHOWN.get(event.kind, event.kind)
        style = _STYLE.get(state, "")
        if event.kind in (K.ACTION_STARTED, K.COMPENSATION_STARTED):
            self._started.setdefault(line, time.monotonic())
            self._progress.reset(task, start=True, total=1.0, completed=0)  # draws nothing
        done = event.kind in (K.ACTION_SUCCEEDED, K.ACTION_COMPENSATED)
        self._progress.touch(
            task,
            str(state),
            state=f"[{style}]{state}" if style else state,
            completed=1.0 if done else None,
            message=str(event.data.get("error") or "") if not done else self._tally(event.action),
        )
        if (
            done
            or event.kind in (K.ACTION_SKIPPED, K.COMPENSATION_FAILED)
            or (event.kind is K.ACTION_FAILED and event.data.get("final"))
        ):
            self._progress.stop_task(task)

    def _tally(self, action: str) -> str:
        """`done/all elements` for a fan-out, else nothing."""
        done, total = self._elements.get(action, (0, 0))
        return f"{done}/{total} elements" if action in self._elements else ""

    def _element(self, task: TaskID, event: Event) -> None:
        """A fan-out's bar counts its elements: succeeded of all."""
        assert self._progress is not None and event.action is not None
        done, total = self._elements.get(event.action, (0, 0))
        total = int(event.data.get("of", total))
        if event.kind is K.ELEMENT_SUCCEEDED:
            done += 1
        self._elements[event.action] = (done, total)
        self._progress.touch(
            task, completed=done / total if total else None, message=self._tally(event.action)
        )
