"""`sagactl worker`, `sagactl stats` and `sagactl db upgrade`: the multi-worker operations."""

from __future__ import annotations

import json
import time

import anyio
import click

from ..alerts import stuck_summary
from ..store import open_store
from .options import DB_OPTION, FiniteFloat, count


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=count(1, 10_000),
    default=4,
    show_default=True,
    help="Runs driven at once by this worker.",
)
@click.option(
    "--poll",
    type=FiniteFloat(min=0.05, max=3600),
    default=5.0,
    show_default=True,
    help="Seconds between polls for expired leases (new runs arrive by NOTIFY).",
)
@click.option(
    "--grace",
    type=FiniteFloat(min=0, max=86400),
    default=30.0,
    show_default=True,
    help="Seconds SIGTERM lets runs in hand finish before handing them back.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics on http://0.0.0.0:PORT/metrics.",
)
@DB_OPTION
def worker(
    concurrency: int, poll: float, grace: float, metrics_port: int | None, db: str | None
) -> None:
    """Claim and drive queued runs (and runs whose lease expired) until SIGTERM.

    Also prunes finished runs past their retention in the background."""
    from ..worker import run_worker

    anyio.run(
        lambda: run_worker(
            db, concurrency=concurrency, poll=poll, grace=grace, metrics_port=metrics_port
        )
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@DB_OPTION
def stats(as_json: bool, db: str | None) -> None:
    """Run counters: started, succeeded, compensated, stuck, recovered, taken over."""

    async def read() -> dict[str, int]:
        async with open_store(db) as store:
            counters = await store.stats()
            stuck = await store.stuck_runs()
        return {**counters, **stuck_summary(stuck, time.time())}

    counters = anyio.run(read)
    if as_json:
        click.echo(json.dumps(counters, sort_keys=True))
        return
    for name, value in counters.items():
        click.echo(f"{name.replace('_', ' '):<20} {value}")


@click.group()
def db() -> None:
    """The database: schema migrations."""


@db.command()
@DB_OPTION
def upgrade(db: str | None) -> None:
    """Apply pending migrations (also done on every start; safe with many workers)."""

    async def apply() -> dict[str, int]:
        async with open_store(db) as store:  # opening applies them, under the migration lock
            return await store.migrations_applied()

    versions = anyio.run(apply)
    click.echo("schema up to date: " + ", ".join(f"{ns} v{v}" for ns, v in versions.items()))
