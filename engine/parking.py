"""Parked runs: runs in the store that no process holds, woken by a condition.

Two things park a run, and one mechanism wakes both: a condition kept in the runs table
that any process can test, and a claim taken only once it holds.

- A run with a concurrency key (`concurrency:` in the saga) waits `queued` until fewer
  than its `limit` runs submitted before it on the same key are unfinished
  (`Store.turn`). A process that created or resumed it holds it and waits here
  (`wait_turn`); a PostgreSQL worker claims a queued run only once its turn came.
- A run whose every action in hand waits for a signal (`wait.signal`) is parked
  `waiting` and released. A signal (`Store.send_signal`) makes it due (`Store.wake`), and
  so does its timer (`wake_at`, the earliest deadline). On PostgreSQL a worker claims
  due runs; on SQLite the process sending the signal drives the run itself, and
  `resume --all` takes those whose timer ran out.

Deciding to wait and parking are two steps, so a signal could arrive between them: after
parking, the parking process looks again (`due_now`) and wakes the run itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from .event_payloads import RunQueued
from .events import Event, EventKind
from .store.base import Store

TURN_POLL = 0.2
"""Seconds between two looks at the key by a run waiting for its turn."""


async def wait_turn(
    store: Store,
    run_id: str,
    emit: Callable[[Event], None],
    stopped: Callable[[], bool],
    *,
    poll: float = TURN_POLL,
) -> None:
    """Return once the run may start on its concurrency key (or once `stopped()`: it is
    being cancelled); tells subscribers (`run_queued`) how many runs are ahead of it."""
    shown: int | None = None
    while not stopped():
        turn = await store.turn(run_id)
        if turn is None or turn.admitted:
            return
        if turn.ahead != shown:
            shown = turn.ahead
            data = RunQueued(key=turn.key, ahead=turn.ahead, limit=turn.limit)
            emit(Event(run_id, EventKind.RUN_QUEUED, None, data, time.time()))
        await anyio.sleep(poll)


def is_due(waits: Sequence[Mapping[str, Any]], pending: set[str], now: float) -> bool:
    """Whether a parked run has something to do: a signal it waits for came, or a
    deadline passed."""
    return any(
        w.get("signal") in pending or (w.get("deadline") is not None and w["deadline"] <= now)
        for w in waits
    )


async def due_now(store: Store, run_id: str, waits: Sequence[Mapping[str, Any]]) -> bool:
    """`is_due` for a run just parked, looked up in the store."""
    return bool(waits) and is_due(waits, await store.pending_signals(run_id), time.time())
