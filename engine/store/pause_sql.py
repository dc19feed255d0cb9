"""The SQL of pause requests (`sagactl pause` of a run a live process holds), both dialects.

The flag is a column of the runs table, as `cancel_requested` is: the owner of a run polls
it with the cancel flag, and a process taking a flagged run pauses it before anything starts.
"""

from __future__ import annotations

from functools import cache


def _mark(dialect: str) -> str:
    return "?" if dialect == "sqlite" else "%s"


@cache
def flag(dialect: str) -> str:
    """Set or clear the flag. Parameters: the flag, the run id."""
    mark = _mark(dialect)
    return f"UPDATE runs SET pause_requested = {mark} WHERE run_id = {mark}"


@cache
def flagged(dialect: str, ids: int) -> str:
    """Which of `ids` run ids (their number) are flagged."""
    mark = _mark(dialect)
    marks = ", ".join([mark] * ids) if ids else "NULL"
    return f"SELECT run_id FROM runs WHERE pause_requested = TRUE AND run_id IN ({marks})"
