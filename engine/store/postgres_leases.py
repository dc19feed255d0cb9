"""PostgreSQL's claims as leases: the SQL only the PostgreSQL store runs.

A lease's end is computed with the database clock (`now()`), never a worker's; taking a
run raises its fence, so the previous owner's writes are refused. Runs that become
claimable are announced with NOTIFY on the store's channel (`CHANNEL_SQL`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from psycopg.rows import dict_row

from .base import Claim
from .postgres_writer import Conn

CHANNEL = "sagactl_runs"
"""The channel of a store in the `public` schema."""
CHANNEL_SQL = (
    "CASE current_schema() WHEN 'public' THEN 'sagactl_runs'"
    " ELSE 'sagactl_runs_' || left(md5(current_schema()), 16) END"
)
"""The store's channel, worked out by the server. NOTIFY reaches every listener of the
database, so stores in other schemas of it have channels of their own (named by a hash:
a channel name has at most 63 bytes) and their workers do not wake each other."""


async def listen(conn: Conn) -> None:
    """Subscribes `conn` to its store's channel."""
    cursor = await conn.execute(f"SELECT {CHANNEL_SQL}")
    found = await cursor.fetchone()
    assert found is not None
    # A plain lower-case name (CHANNEL_SQL), so it needs no quoting.
    await conn.execute(f"LISTEN {found[0]}")


async def take(
    conn: Conn, where: str, params: tuple[Any, ...], *, limit: int, token: str, lease: float
) -> list[Claim]:
    """Lease up to `limit` runs matching `where` that nobody holds (or whose lease ran
    out), oldest first, skipping rows other workers are taking; counts the takeovers."""
    return await (await send_take(conn, where, params, limit=limit, token=token, lease=lease))()


async def send_take(
    conn: Conn, where: str, params: tuple[Any, ...], *, limit: int, token: str, lease: float
) -> Callable[[], Awaitable[list[Claim]]]:
    """`take` as one statement sent (pipeline mode); returns what reads the claims."""
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "WITH c AS (SELECT run_id, owner FROM runs WHERE " + where + " AND (owner IS NULL"
        " OR lease_expires < now()) ORDER BY created, run_id LIMIT %s"
        " FOR UPDATE SKIP LOCKED),"
        " taken AS (UPDATE runs r SET owner = %s, fence = r.fence + 1,"
        " lease_expires = now() + make_interval(secs => %s)"
        " FROM c WHERE r.run_id = c.run_id"
        " RETURNING r.run_id, r.fence, c.owner AS previous),"
        " counted AS (INSERT INTO counters SELECT 'taken_over', count(*) FROM taken"
        " WHERE previous IS NOT NULL HAVING count(*) > 0 ON CONFLICT (name)"
        " DO UPDATE SET value = counters.value + excluded.value)"
        " SELECT * FROM taken",
        (*params, limit, token, lease),
    )

    async def claims() -> list[Claim]:
        taken = await cursor.fetchall()
        await cursor.close()
        return [
            Claim(r["run_id"], token, int(r["fence"]), taken_over=r["previous"] is not None)
            for r in taken
        ]

    return claims


async def start_lease(conn: Conn, run_id: str, lease: float) -> None:
    """The lease of a run its creator claims."""
    await conn.execute(
        "UPDATE runs SET lease_expires = now() + make_interval(secs => %s) WHERE run_id = %s",
        (lease, run_id),
    )


async def renew(conn: Conn, held: Mapping[str, Claim], *, token: str, lease: float) -> set[str]:
    """Extend the leases of `held` still ours (same fence); returns those still ours.

    One statement that waits for no lock: a run row locked by a write in flight (its append
    renews the lease itself) is skipped, and counts as held while the snapshot shows it
    ours. So a renewal never queues behind the owner's own writes, nor deadlocks with them."""
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            "WITH mine AS (SELECT run_id FROM runs WHERE owner = %(token)s"
            " AND run_id = ANY(%(held)s) FOR UPDATE SKIP LOCKED),"
            " renewed AS (UPDATE runs r SET lease_expires = now() + make_interval(secs =>"
            " %(lease)s) FROM mine WHERE r.run_id = mine.run_id RETURNING r.run_id, r.fence)"
            " SELECT run_id, fence FROM renewed UNION ALL"
            " SELECT run_id, fence FROM runs WHERE owner = %(token)s AND run_id = ANY(%(held)s)"
            " AND run_id NOT IN (SELECT run_id FROM renewed)",
            {"token": token, "held": list(held), "lease": lease},
            prepare=True,
        )
        found = await cursor.fetchall()
    return {r["run_id"] for r in found if held[r["run_id"]].fence == r["fence"]}


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
    await conn.execute(f"SELECT pg_notify({CHANNEL_SQL}, %s)", (run_id,))
