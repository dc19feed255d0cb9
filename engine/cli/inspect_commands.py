"""`sagactl status`, `list` and `logs`: reading runs from the store, never changing them."""

from __future__ import annotations

import datetime
import json
import time
from typing import TYPE_CHECKING, Any

import click

from ..events import Event
from ..states import FINISHED, RunState
from .options import DB_OPTION, count, seconds_of, with_reader, with_store
from .tables import Bold, Line, print_table

if TYPE_CHECKING:
    from ..results import RunResult
    from ..store.reads import RunReads

STATES = [str(s) for s in RunState]
_SETTLED = FINISHED | {RunState.STUCK, RunState.PAUSED}
"""Where `logs -f` stops: nothing more happens to the run without an operator."""


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@DB_OPTION
def status(run_id: str, as_json: bool, db: str | None) -> None:
    """Show RUN's state and each action's state, attempts, error (and outputs in JSON);
    a for_each action's elements, each on its own row."""
    from ..run_status import run_status  # the store only: no engine, scheduler or networkx

    result: RunResult = with_reader(db, lambda s: run_status(s, run_id))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
        return
    before: list[Line] = [(f"run {result.run_id}  saga {result.saga}  ", Bold(result.state))]
    holder = _holder(result.owner, result.lease_expires, result.node, result.concurrency_key)
    if holder:
        before.append((holder,))
    if result.parent is not None:
        before.append((f"child of run {result.parent.run_id} (action {result.parent.action})",))
    for wait in result.waits:
        until = f" until {_when(wait['deadline'])} UTC" if wait.get("deadline") else ""
        before.append((f"{wait['action']} waits for signal {wait['signal']!r}{until}",))
    if result.error:
        before.append((f"error: {result.error}",))
    after: list[Line] = []
    if result.outputs is not None:
        after.append((f"outputs: {json.dumps(result.outputs, sort_keys=True)}",))
    rows: list[tuple[str, ...]] = []
    _action_rows(rows, result, "")
    print_table(
        ("action", "state", "attempts", "error or reason"), rows, before=before, after=after
    )


def _action_rows(rows: list[tuple[str, ...]], result: RunResult, indent: str) -> None:
    """One row per action; a child saga's actions nested under the action that ran it."""
    for name, action in result.actions.items():
        note = action.error or action.reason or ""
        rows.append((indent + name, str(action.state), str(action.attempts), note))
        for index, element in sorted((action.elements or {}).items()):
            row = (str(element.state), str(element.attempts), element.error or "")
            rows.append((f"{indent}  {name}[{index}]", *row))
        child = result.children.get(name)
        if child is not None:
            rows.append((f"{indent}  run {child.run_id}", str(child.state), "", ""))
            _action_rows(rows, child, indent + "    ")


@click.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Only these.")
@click.option(
    "--older-than",
    "age",
    metavar="AGE",
    help="Only runs whose last change is older than AGE (stuck for 1h: --state stuck"
    " --older-than 1h).",
)
@click.option("--limit", type=count(), default=1000, show_default=True)
@click.option("--parent", metavar="RUN", help="Only the child saga runs RUN started.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, oldest first.")
@DB_OPTION
def list_runs(
    states: tuple[str, ...],
    age: str | None,
    limit: int,
    parent: str | None,
    as_json: bool,
    db: str | None,
) -> None:
    """List runs, oldest first: id, saga, state, started, finished."""
    since = None if age is None else time.time() - seconds_of(age, "--older-than")
    records = with_reader(
        db,
        lambda s: s.list_runs(
            states=list(states) or None, limit=limit, unchanged_since=since, parent=parent
        ),
    )
    rows: list[dict[str, Any]] = [
        {
            "run_id": r.run_id,
            "saga": r.saga,
            "state": r.state,
            "started": r.started,
            "finished": r.finished,
            "owner": r.owner,
            "lease_expires": r.lease_expires,
            "node": r.node,
            "parent": None if r.parent is None else r.parent.run_id,
            "concurrency_key": r.concurrency_key,
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ("run", "saga", "state", "started (UTC)", "finished (UTC)", "held by / key")
    shown = [
        (
            row["run_id"],
            row["saga"],
            row["state"],
            _when(row["started"]),
            _when(row["finished"]),
            _holder(row["owner"], row["lease_expires"], row["node"], row["concurrency_key"]),
        )
        for row in rows
    ]
    # Never cut a run id: it is copied into other commands.
    print_table(headers, shown, min_width=160, no_wrap=(0,))


def _holder(
    owner: str | None, lease_expires: float | None, node: str | None, key: str | None = None
) -> str:
    """Who holds a run: its owner (a worker or process), lease expiry, node pin, and the
    concurrency key it takes turns on."""
    parts = [f"key {key}"] if key else []
    if owner:
        parts.append(f"owner {owner}")
    if lease_expires:
        parts.append(f"lease until {_when(lease_expires)}")
    if node:
        parts.append(f"pinned to {node}")
    return ", ".join(parts)


def format_event(event: Event) -> str:
    """One log line: sequence, UTC time, kind, action and the data as JSON."""
    subject = event.action or "-"
    data = json.dumps(dict(event.data), sort_keys=True, default=str) if event.data else ""
    return f"{event.seq:>5} {_when(event.at)} {event.kind:<22} {subject} {data}".rstrip()


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run finishes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@DB_OPTION
def logs(run_id: str, follow: bool, as_json: bool, db: str | None) -> None:
    """Print RUN's events, oldest first (with -f, new ones as they come)."""

    def show(event: Event) -> None:
        if as_json:
            line = json.dumps(
                {
                    "seq": event.seq,
                    "at": event.at,
                    "kind": event.kind,
                    "action": event.action,
                    "data": dict(event.data),
                },
                default=str,
            )
        else:
            line = format_event(event)
        click.echo(line)

    async def read(store: RunReads) -> None:
        after = 0
        while True:
            # The run's state first: events written before it are all read below.
            done = RunState((await store.get_run(run_id)).state) in _SETTLED
            for event in await store.read_log(run_id, after_seq=after):
                show(event)
                after = max(after, event.seq)
            if not follow or done:
                return
            import anyio  # -f only: the rest reads without an event loop

            await anyio.sleep(0.2)

    # Following waits between reads: under the store's event loop.
    (with_store if follow else with_reader)(db, read)
