"""PostgreSQL's claims as leases: the SQL only the PostgreSQL store runs.

A lease's end is computed with the database clock (`now()`), never a worker's; taking a
run raises its fence, so the previous owner's writes are refused. Runs that become
claimable are announced with NOTIFY on `CHANNEL`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Claim
from .postgres_writer import Conn, rows

CHANNEL = "sagactl_runs"


async def take(
    conn: Conn, where: str, params: tuple[Any, ...], *, limit: int, token: str, lease: float
) -> list[Claim]:
    """Lease up to `limit` runs matching `where` that nobody holds (or whose lease ran
    out), oldest first, skipping rows other workers are taking; counts the takeovers."""
    taken = await rows(
        conn,
        "WITH c AS (SELECT run_id, owner FROM runs WHERE " + where + " AND (owner IS NULL"
        " OR lease_expires < now()) ORDER BY created, run_id LIMIT %s"
        " FOR UPDATE SKIP LOCKED)"
        " UPDATE runs r SET owner = %s, fence = r.fence + 1,"
        " lease_expires = now() + make_interval(secs => %s)"
        " FROM c WHERE r.run_id = c.run_id"
        " RETURNING r.run_id, r.fence, c.owner AS previous",
        (*params, limit, token, lease),
    )
    taken_over = sum(1 for r in taken if r["previous"] is not None)
    if taken_over:
        await conn.execute(
            "INSERT INTO counters VALUES ('taken_over', %s) ON CONFLICT (name)"
            " DO UPDATE SET value = counters.value + excluded.value",
            (taken_over,),
        )
    return [
        Claim(r["run_id"], token, int(r["fence"]), taken_over=r["previous"] is not None)
        for r in taken
    ]


async def start_lease(conn: Conn, run_id: str, lease: float) -> None:
    """The lease of a run its creator claims."""
    await conn.execute(
        "UPDATE runs SET lease_expires = now() + make_interval(secs => %s) WHERE run_id = %s",
        (lease, run_id),
    )


async def renew(conn: Conn, held: Mapping[str, Claim], *, token: str, lease: float) -> set[str]:
    """Extend the leases of `held` still ours (same fence); returns those renewed."""
    renewed = await rows(
        conn,
        "UPDATE runs SET lease_expires = now() + make_interval(secs => %s)"
        " WHERE owner = %s AND run_id = ANY(%s) RETURNING run_id, fence",
        (lease, token, list(held)),
    )
    return {r["run_id"] for r in renewed if held[r["run_id"]].fence == r["fence"]}


async def end_leases(conn: Conn, token: str) -> None:
    """Hand back every run `token` holds and say so: other workers take the runs at once
    (a hand-back, not a takeover: the owner is cleared as `release` does)."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE runs SET owner = NULL, lease_expires = NULL WHERE owner = %s", (token,)
        )
        await notify(conn, "")


async def notify(conn: Conn, run_id: str) -> None:
    """Announce a claimable run (or, with "", that some may be)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, run_id))
