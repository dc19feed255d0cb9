"""`sagactl status`, `list` and `logs`: reading runs from the store, never changing them."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

import anyio
import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..events import Event
from ..states import FINISHED, RunState
from .options import DB_OPTION, count, with_engine, with_store

if TYPE_CHECKING:
    from ..api import RunResult
    from ..store import Store

STATES = [str(s) for s in RunState]
_SETTLED = FINISHED | {RunState.STUCK}
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
    result: RunResult = with_engine(db, lambda e: e.status(run_id))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=False))
        return
    console = Console()
    console.print(f"run {result.run_id}  saga {result.saga}  [bold]{result.state}[/bold]")
    holder = _holder(result.owner, result.lease_expires, result.node)
    if holder:
        console.print(holder, markup=False)
    if result.error:
        console.print(f"error: {result.error}", markup=False)
    table = Table("action", "state", "attempts", "error or reason")
    for name, action in result.actions.items():
        note = action.error or action.reason or ""
        table.add_row(name, str(action.state), str(action.attempts), Text(note))
        for index, element in sorted((action.elements or {}).items()):
            row = (str(element.state), str(element.attempts), Text(element.error or ""))
            table.add_row(f"  {name}[{index}]", *row)
    console.print(table)


@click.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Only these.")
@click.option("--limit", type=count(), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, oldest first.")
@DB_OPTION
def list_runs(states: tuple[str, ...], limit: int, as_json: bool, db: str | None) -> None:
    """List runs, oldest first: id, saga, state, started, finished."""
    records = with_store(db, lambda s: s.list_runs(states=list(states) or None, limit=limit))
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
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("run", "saga", "state", "started (UTC)", "finished (UTC)", "held by")
    table.columns[0].no_wrap = True  # a run id is copied into other commands: never cut it
    for row in rows:
        table.add_row(
            row["run_id"],
            row["saga"],
            row["state"],
            _when(row["started"]),
            _when(row["finished"]),
            _holder(row["owner"], row["lease_expires"], row["node"]),
        )
    Console(width=max(Console().width, 160)).print(table)


def _holder(owner: str | None, lease_expires: float | None, node: str | None) -> str:
    """Who holds a run: its owner (a worker or process), lease expiry and node pin."""
    parts = []
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

    async def read(store: Store) -> None:
        after = 0
        while True:
            # The run's state first: events written before it are all read below.
            done = RunState((await store.get_run(run_id)).state) in _SETTLED
            for event in await store.read_log(run_id, after_seq=after):
                show(event)
                after = max(after, event.seq)
            if not follow or done:
                return
            await anyio.sleep(0.2)

    with_store(db, read)
