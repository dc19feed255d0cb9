"""Platform records (apps, versions, sandboxes) in the run store, through `Transaction`.

Portable SQL for SQLite and PostgreSQL with `?` placeholders. Writes happen inside an
action's `ctx.transaction()`, so they commit with the action's completion record: a crash
never leaves them half done or done twice; outside a run (`sagactl app`), inside the
store's `transaction()`. The tables are the store migrations of `migrations.py`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagactl.engine import JSON, InputError, Transaction

from .values import integer, maybe_integer, maybe_text, text


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _lock(tx: Transaction) -> str:
    """Row lock suffix: SQLite's write transaction already excludes other writers."""
    return " FOR UPDATE" if tx.dialect == "postgresql" else ""


VERSION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}-v[1-9][0-9]*$")


def version_name(app: str, number: int) -> str:
    return f"{app}-v{number}"


def version_number(version: str) -> int:
    return int(version.rsplit("-v", 1)[1])


@dataclass(frozen=True, slots=True)
class Allocated:
    version: str
    number: int
    artifact_id: str


async def allocate_version(tx: Transaction, app: str) -> Allocated:
    """The app's next version number, taken atomically (concurrent builds never collide)."""
    await tx.execute(
        "INSERT INTO apps (name, next_number, created) VALUES (?, 1, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (app, now()),
    )
    row = await tx.fetchone(f"SELECT next_number FROM apps WHERE name = ?{_lock(tx)}", (app,))
    assert row is not None
    number = integer(row[0])
    await tx.execute("UPDATE apps SET next_number = ? WHERE name = ?", (number + 1, app))
    return Allocated(version_name(app, number), number, uuid.uuid4().hex)


async def create_version(
    tx: Transaction,
    *,
    app: str,
    version: str,
    number: int,
    artifact_id: str,
    image: str,
    digest: str,
    services: dict[str, Any],
    source_dir: str | None = None,
    run_id: str | None = None,
) -> None:
    await tx.execute(
        "INSERT INTO apps (name, next_number, created) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (app, number + 1, now()),
    )
    await tx.execute(
        "INSERT INTO versions (id, app, number, artifact_id, image, digest, services, "
        "source_dir, run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            version,
            app,
            number,
            artifact_id,
            image,
            digest,
            json.dumps(services, sort_keys=True),
            source_dir,
            run_id,
            now(),
        ),
    )


async def delete_version(tx: Transaction, version: str) -> bool:
    """Removes a version that is neither active nor running a sandbox, with its stopped
    sandboxes' records; True if removed."""
    busy = await tx.fetchone(
        "SELECT 1 FROM apps WHERE active_version = ? UNION ALL "
        "SELECT 1 FROM sandboxes WHERE version = ? AND state = 'running'",
        (version, version),
    )
    if busy is not None:
        return False
    await tx.execute(
        "DELETE FROM sandbox_ports WHERE sandbox_id IN "
        "(SELECT id FROM sandboxes WHERE version = ?)",
        (version,),
    )
    await tx.execute("DELETE FROM sandboxes WHERE version = ?", (version,))
    changed = await tx.execute("DELETE FROM versions WHERE id = ?", (version,))
    return changed > 0


async def activate(
    tx: Transaction, app: str, version: str, *, rollback: bool = False
) -> tuple[str | None, bool]:
    """Makes `version` active unless a newer one already is; (previous active, changed).

    Builds of one app may finish out of order: activation only moves forward, so the final
    active version is the newest that was built. A rollback moves back on purpose.
    """
    row = await tx.fetchone(f"SELECT active_version FROM apps WHERE name = ?{_lock(tx)}", (app,))
    if row is None:
        raise InputError(f"no app named {app!r}")
    exists = await tx.fetchone("SELECT 1 FROM versions WHERE id = ? AND app = ?", (version, app))
    if exists is None:
        raise InputError(f"app {app!r} has no version {version!r}")
    previous = maybe_text(row[0])
    if previous == version or (
        not rollback
        and previous is not None
        and version_number(previous) >= version_number(version)
    ):
        return previous, False
    await tx.execute("UPDATE apps SET active_version = ? WHERE name = ?", (version, app))
    return previous, True


async def active_version(tx: Transaction, app: str) -> str | None:
    """The app's active version now (None for an unknown app or none active)."""
    row = await tx.fetchone("SELECT active_version FROM apps WHERE name = ?", (app,))
    return None if row is None else maybe_text(row[0])


async def restore_active(tx: Transaction, app: str, version: str, previous: str | None) -> bool:
    """Undo `activate`: back to `previous`, only if `version` is still the active one."""
    changed = await tx.execute(
        "UPDATE apps SET active_version = ? WHERE name = ? AND active_version = ?",
        (previous, app, version),
    )
    return changed > 0


@dataclass(frozen=True, slots=True)
class SandboxRecord:
    id: str
    app: str
    version: str
    service: str
    runtime: str
    state: str
    pid: int | None
    process_start: str | None
    command: str
    log_path: str | None
    created: str
    stopped: str | None
    port: int | None = None
    """The host port allocated to it (`$PORT`), if it listens."""

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port is not None else None

    @classmethod
    def from_row(cls, row: Sequence[JSON]) -> SandboxRecord:
        """A `sandboxes` row, its columns in the order of the fields."""
        id_, app, version, service, runtime, state, pid, start, command, log, made, stop = row[:12]
        return cls(
            text(id_),
            text(app),
            text(version),
            text(service),
            text(runtime),
            text(state),
            maybe_integer(pid),
            maybe_text(start),
            text(command),
            maybe_text(log),
            text(made),
            maybe_text(stop),
            maybe_integer(row[12]) if len(row) > 12 else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "service": self.service,
            "runtime": self.runtime,
            "state": self.state,
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "command": self.command,
            "log": self.log_path,
            "created": self.created,
            "stopped": self.stopped,
        }


_SANDBOX_COLUMNS = (
    "s.id, s.app, s.version, s.service, s.runtime, s.state, s.pid, s.process_start, "
    "s.command, s.log_path, s.created, s.stopped, p.port"
)
_SANDBOX_FROM = "sandboxes s LEFT JOIN sandbox_ports p ON p.sandbox_id = s.id"


async def add_sandbox(tx: Transaction, record: SandboxRecord) -> None:
    await tx.execute(
        "INSERT INTO sandboxes (id, app, version, service, runtime, state, pid, process_start, "
        "command, log_path, created, stopped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.app,
            record.version,
            record.service,
            record.runtime,
            record.state,
            record.pid,
            record.process_start,
            record.command,
            record.log_path,
            record.created,
            record.stopped,
        ),
    )
    if record.port is not None:
        await tx.execute(
            "INSERT INTO sandbox_ports (sandbox_id, port) VALUES (?, ?)", (record.id, record.port)
        )


async def running_sandboxes(
    tx: Transaction, app: str, *, older_than: int | None = None
) -> list[SandboxRecord]:
    """The app's sandboxes marked running; with `older_than`, only those of lower versions."""
    rows = await tx.fetchall(
        f"SELECT {_SANDBOX_COLUMNS} FROM {_SANDBOX_FROM} WHERE s.app = ? AND s.state = 'running' "
        "ORDER BY s.created, s.id",
        (app,),
    )
    records = [SandboxRecord.from_row(row) for row in rows]
    if older_than is not None:
        records = [r for r in records if version_number(r.version) < older_than]
    return records


async def mark_sandbox(tx: Transaction, sandbox_id: str, state: str) -> None:
    await tx.execute(
        "UPDATE sandboxes SET state = ?, stopped = ? WHERE id = ?",
        (state, now() if state != "running" else None, sandbox_id),
    )


async def show_app(tx: Transaction, app: str, *, host_paths: bool = False) -> dict[str, Any]:
    """`sagactl app show`: name, active version, versions (newest first) with sandboxes.

    The staged source's host path (`source_dir`) is shown only with `host_paths`: to the
    operator on the host (`app show --paths`), never to an uploader (the HTTP API)."""
    row = await tx.fetchone("SELECT name, active_version FROM apps WHERE name = ?", (app,))
    if row is None:
        raise InputError(f"no app named {app!r}")
    versions = await tx.fetchall(
        "SELECT id, number, artifact_id, image, digest, services, source_dir, created "
        "FROM versions WHERE app = ? ORDER BY number DESC",
        (app,),
    )
    sandboxes = await tx.fetchall(
        f"SELECT {_SANDBOX_COLUMNS} FROM {_SANDBOX_FROM} WHERE s.app = ? ORDER BY s.created, s.id",
        (app,),
    )
    by_version: dict[str, list[dict[str, Any]]] = {}
    for sandbox in sandboxes:
        record = SandboxRecord.from_row(sandbox)
        by_version.setdefault(record.version, []).append(record.to_dict())
    return {
        "name": row[0],
        "active_version": row[1],
        "versions": [
            {
                "version": v[0],
                "number": v[1],
                "artifact_id": v[2],
                "image": v[3],
                "digest": v[4],
                "services": json.loads(text(v[5])),
                **({"source_dir": v[6]} if host_paths else {}),
                "created": v[7],
                "sandboxes": by_version.get(text(v[0]), []),
            }
            for v in versions
        ],
    }


async def get_version(tx: Transaction, version: str) -> dict[str, Any] | None:
    row = await tx.fetchone(
        "SELECT id, app, number, image, digest, services, source_dir FROM versions WHERE id = ?",
        (version,),
    )
    if row is None:
        return None
    return {
        "version": row[0],
        "app": row[1],
        "number": row[2],
        "image": row[3],
        "digest": row[4],
        "services": json.loads(text(row[5])),
        "source_dir": row[6],
    }


async def list_apps(tx: Transaction) -> list[dict[str, Any]]:
    """Every app, by name: its active version and how many versions it has."""
    rows = await tx.fetchall(
        "SELECT a.name, a.active_version, count(v.id) FROM apps a"
        " LEFT JOIN versions v ON v.app = a.name GROUP BY a.name, a.active_version ORDER BY a.name"
    )
    return [{"name": r[0], "active_version": r[1], "versions": r[2]} for r in rows]
