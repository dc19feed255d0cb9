"""Selecting runs by a filter (`--filter 'saga=build-from-tar,state=stuck,before=2d'`) and
walking the matches page by page, never holding them all.

A filter is `KEY=VALUE` terms joined by commas: `saga=NAME`, `state=STATE` (several states
as `state=stuck|paused`, or the key repeated) and `before=DURATION` (created more than that
long ago). The matches are read in keyset pages (`Store.page_runs`), newest first; every
page also ends at the moment the filter was applied, so runs created later are never
among them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from .durations import EXAMPLES, parse_text_duration
from .errors import InputError
from .states import RunState
from .store.base import Store
from .store.pages import RunSummary

KEYS = ("saga", "state", "before")
PAGE = 500
"""Runs per page: one index range scan each."""


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a bulk operation acts on."""

    text: str
    saga: str | None = None
    states: tuple[str, ...] = ()
    older_than: float | None = None
    """Seconds: only runs created more than this long ago."""

    @classmethod
    def parse(cls, text: str) -> RunFilter:
        """`InputError` naming the bad term (the CLI exits 2 with one line)."""
        saga: str | None = None
        states: list[str] = []
        older_than: float | None = None
        for term in text.split(","):
            key, sep, value = term.strip().partition("=")
            key, value = key.strip(), value.strip()
            where = f"--filter {text!r}"
            if not sep or not key or not value:
                raise InputError(f"{where}: expected KEY=VALUE terms ({', '.join(KEYS)})")
            if key == "saga":
                if saga is not None and saga != value:
                    raise InputError(f"{where}: two sagas ({saga}, {value})")
                saga = value
            elif key == "state":
                for state in value.split("|"):
                    if state not in RunState.__members__.values():
                        known = ", ".join(str(s) for s in RunState)
                        raise InputError(f"{where}: no state {state!r} (states: {known})")
                    states.append(state)
            elif key == "before":
                try:
                    older_than = parse_text_duration(value)
                except ValueError:
                    raise InputError(
                        f"{where}: before={value}: expected a duration ({EXAMPLES})"
                    ) from None
            else:
                raise InputError(f"{where}: unknown key {key!r} (keys: {', '.join(KEYS)})")
        return cls(text, saga, tuple(dict.fromkeys(states)), older_than)

    @classmethod
    def of_saga(cls, saga: str, states: tuple[str, ...]) -> RunFilter:
        return cls(f"saga={saga},state={'|'.join(states)}", saga, states)


async def matches(
    store: Store, flt: RunFilter, *, now: float, page: int = PAGE
) -> AsyncIterator[list[RunSummary]]:
    """The runs matching `flt` as of `now` (unix time), `page` at a time, newest first.

    Each page starts below the last run of the one before (a keyset cursor), so acting on
    a page (which may change the runs' states) never shifts the pages still to come."""
    cutoff = now - (flt.older_than or 0.0)
    cursor: str | None = None
    while True:
        rows = await store.page_runs(
            states=flt.states or None,
            saga=flt.saga,
            before=cursor,
            limit=page,
            created_before=cutoff,
        )
        if rows:
            yield rows
        if len(rows) < page:
            return
        cursor = rows[-1].cursor


async def count(store: Store, flt: RunFilter, *, now: float) -> int:
    """How many runs match, counted page by page (bounded memory)."""
    return sum([len(rows) async for rows in matches(store, flt, now=now)])
