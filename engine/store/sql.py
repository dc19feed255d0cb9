"""The SQL both stores run, written once, and the conversions between rows and records.

Statements are written with SQLite's placeholders: `?` by position, `:name` by name (a
value a statement needs twice is named, never passed twice). `Statements(POSTGRESQL)`
holds the same text translated for psycopg. The words the dialects spell differently are
the fields of a `Dialect`; SQL that only one backend runs (PostgreSQL's leases) stays in
that backend.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

from ..events import Event, EventKind
from ..json_values import Encoded
from ..states import FINISHED, RELEASING, RunState, run_state_of
from ..tracing import trace_id_of
from .parking_sql import KEY_SEQ
from .records import Claim, Created, NewRun, ParentLink, RunRecord, check_same_request
from .schema import MIGRATIONS_TABLE, POSTGRESQL, SQLITE, script

if TYPE_CHECKING:
    from ..action import JSON

# One encoder for every record: `json.dumps` with options builds a new encoder per call.
# Only finite JSON enters the store: NaN and infinities are refused, never written.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)
_MAKE_C_ENCODER: Callable[..., Callable[[Any, int], Sequence[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)


def _encode(value: Any) -> str:
    """`_ENCODER.encode(value)`, the same text and errors: the C encoder `encode` would make
    (through `iterencode`), made here; its two Python frames were a fifth of the cost of
    encoding a record's data (3 k of 16 k instructions)."""
    if _MAKE_C_ENCODER is None:  # no _json module
        return _ENCODER.encode(value)
    # markers (a fresh dict: circular references refused), default, string encoder,
    # indent, key and item separators, sort_keys, skipkeys, allow_nan.
    encoder = _MAKE_C_ENCODER(
        {},
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        True,
        False,
        False,
    )
    return "".join(encoder(value, 0))


def dumps(value: Any) -> str:
    """JSON as the log stores it: compact, keys sorted (an `Encoded` value's own text)."""
    if type(value) is Encoded:
        return value.text
    return _encode(value)


class Row(Protocol):
    """A row read by column name (`sqlite3.Row`, psycopg's `dict_row`)."""

    def __getitem__(self, key: str, /) -> Any: ...


def record_from_row(row: Row, *, definition: Mapping[str, Any] | None = None) -> RunRecord:
    """A RunRecord from a row of `Statements.select_runs`. `definition`: the row's pinned
    definition as it was just written (an `Encoded`, read-only), not decoded again: the
    largest column, and a run's creation reads its row back in the writer thread."""
    return RunRecord(
        run_id=row["run_id"],
        saga=row["saga"],
        state=RunState(row["state"]),
        definition_hash=row["definition_hash"],
        definition=json.loads(row["definition"]) if definition is None else definition,
        inputs=json.loads(row["inputs"]),
        plugin_versions=json.loads(row["plugin_versions"]),
        created=row["created"],
        updated=row["updated"],
        started=row["started"],
        finished=row["finished"],
        error=row["error"],
        error_code=row["error_code"],
        owner=row["owner"],
        cancel_requested=bool(row["cancel_requested"]),
        node=row["node"],
        lease_expires=row["lease_expires"],
        trace_id=row["trace_id"],
        parent=ParentLink(row["parent_run_id"], row["parent_action"])
        if row["parent_run_id"] is not None
        else None,
        concurrency_key=row["concurrency_key"],
        wake_at=row["wake_at"],
    )


_PLACEHOLDER = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|%|\?|(?<![:\w]):([A-Za-z_]\w*)"
)


def translate(sql: str) -> str:
    """SQLite placeholders -> psycopg's: `?` -> `%s`, `:name` -> `%(name)s`, a literal `%`
    -> `%%`; quoted strings, identifiers, comments and `::type` casts are left alone."""

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return token

    return _PLACEHOLDER.sub(sub, sql)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the stores' shared SQL says differently on each database."""

    name: str
    lease_expires: str
    """The `lease_expires` column as Unix time (SQLite: no leases, NULL)."""
    release: str
    """The assignments that release a claim."""
    unheld: str
    """The condition of a run no live owner holds, as far as SQL can tell (SQLite asks
    the owner locks afterwards)."""
    lock: str
    """Suffix of a read whose row the transaction then writes."""
    by_state: str
    """After `FROM runs` in a query of a few states' runs, oldest first. SQLite's planner,
    once `ANALYZE` has seen a million runs in a handful of states, walks every run in
    creation order instead (the claim of `resume --all` went from 1 ms to 2 s): the
    index is named."""


DIALECTS = {
    SQLITE: Dialect(SQLITE, "NULL", "owner = NULL", "TRUE", "", " INDEXED BY runs_by_state_newest"),
    POSTGRESQL: Dialect(
        POSTGRESQL,
        "extract(epoch FROM lease_expires)::float8",
        "owner = NULL, lease_expires = NULL",
        "owner IS NULL OR lease_expires < now()",
        " FOR UPDATE",
        "",
    ),
}

# A run's pinned definition: in `run_definitions`, once per distinct text, for runs made
# since migration 12; in the run's own row before (the row then names no digest).
DEFINITION_COLUMN = (
    "coalesce((SELECT body FROM run_definitions WHERE digest = runs.definition_digest),"
    " runs.definition) AS definition"
)
_RUN_COLUMNS = (
    f"run_id, saga, state, definition_hash, {DEFINITION_COLUMN}, inputs, plugin_versions, created,"
    " updated, started, finished, error, error_code, owner, cancel_requested, node, trace_id,"
    " parent_run_id, parent_action, concurrency_key, wake_at"
)
_CLAIMED = "run_id = :run AND owner = :owner AND fence = :fence"


class Statements:
    """Every shared statement, ready for one dialect's driver."""

    def __init__(self, dialect_name: str) -> None:
        d = self.dialect = DIALECTS[dialect_name]
        self._ready: Callable[[str], str] = translate if d.name == POSTGRESQL else str
        ready = self._ready
        self.select_runs = ready(
            f"SELECT {_RUN_COLUMNS}, {d.lease_expires} AS lease_expires FROM runs"
        )
        self.get_run = self.select_runs + ready(" WHERE run_id = ?")
        self.owner_of = ready("SELECT owner FROM runs WHERE run_id = ?")
        self.last_seq = ready("SELECT last_seq FROM runs WHERE run_id = ?")
        self.insert_run = ready(
            "INSERT INTO runs (run_id, saga, state, definition_hash, definition,"
            " definition_digest, inputs, plugin_versions, created, updated, owner, fence,"
            " last_seq, node, trace_id, retention, parent_run_id, parent_action,"
            " concurrency_key, concurrency_limit, key_seq) VALUES (:run_id, :saga, :state,"
            " :definition_hash, '', :definition_digest, :inputs, :plugin_versions, :now, :now,"
            " :owner, :fence, 1, :node, :trace_id, :retention, :parent_run_id, :parent_action,"
            f" :key, :limit, {KEY_SEQ}) ON CONFLICT (run_id) DO NOTHING"
            # SQLite's RETURNING fills a temporary table: its store counts the rows instead.
            + (" RETURNING run_id" if d.name == POSTGRESQL else "")
        )
        self.insert_definition = ready(
            "INSERT INTO run_definitions (digest, body) VALUES (?, ?)"
            " ON CONFLICT (digest) DO NOTHING"
        )
        self.insert_log = ready("INSERT INTO run_log VALUES (?, ?, ?, ?, ?, ?)")
        self.read_log = ready(
            "SELECT seq, at, kind, action, data FROM run_log"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        """Parameters: run id, after seq, limit (no limit: -1 on SQLite, None on PostgreSQL)."""
        self.checkpoints = ready("SELECT action, data FROM action_checkpoints WHERE run_id = ?")
        self.progress = ready("SELECT action, data FROM action_progress WHERE run_id = ?")
        self.save_checkpoint, self.save_progress = (
            ready(
                f"INSERT INTO {table} (run_id, action, at, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (run_id, action) DO UPDATE SET at = excluded.at, data = excluded.data"
            )
            for table in ("action_checkpoints", "action_progress")
        )
        self.check_claim = ready(f"SELECT 1 FROM runs WHERE {_CLAIMED}{d.lock}")
        self.release = ready(f"UPDATE runs SET {d.release} WHERE {_CLAIMED} RETURNING state")
        self.pin_node = ready("UPDATE runs SET node = ? WHERE run_id = ?")
        self.request_cancel = ready("UPDATE runs SET cancel_requested = TRUE WHERE run_id = ?")
        self.tombstone = ready("SELECT pruned FROM run_tombstones WHERE run_id = ?")
        self.stats = ready(
            "SELECT (SELECT count(*) FROM runs WHERE started IS NOT NULL) AS started,"
            " (SELECT count(*) FROM runs WHERE state = 'succeeded') AS succeeded,"
            " (SELECT count(*) FROM runs WHERE state = 'compensated') AS compensated,"
            " (SELECT count(*) FROM runs WHERE state = 'stuck') AS stuck,"
            " (SELECT count(*) FROM run_log WHERE kind = 'run_resumed') AS recovered,"
            " (SELECT coalesce(max(value), 0) FROM counters WHERE name = 'taken_over')"
            " AS taken_over"
        )
        self.stats_names: tuple[str, ...] = (
            "started",
            "succeeded",
            "compensated",
            "stuck",
            "recovered",
            "taken_over",
        )
        self.migrations_table = script(MIGRATIONS_TABLE, d.name)
        self.migrations_applied = ready(
            "SELECT namespace, max(version) AS version FROM schema_migrations GROUP BY namespace"
        )
        self.record_migration = ready("INSERT INTO schema_migrations VALUES (?, ?, ?)")

    def list_runs(
        self, states: int | None, saga: bool, unchanged: bool = False, parent: bool = False
    ) -> str:
        """Runs oldest first, filtered by `states` states (their number), a saga, a time
        their last record is older than, and a parent run."""
        where = [f"state IN ({_marks(states)})"] if states is not None else []
        where += ["saga = ?"] if saga else []
        where += ["updated < ?"] if unchanged else []
        where += ["parent_run_id = ?"] if parent else []
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        hint = self.dialect.by_state if states is not None else ""
        return self.select_runs + self._ready(f"{hint}{clause} ORDER BY created, run_id LIMIT ?")

    def unheld(self, states: int) -> str:
        """Runs in `states` states (their number) nobody holds, as SQL can tell."""
        return self._ready(
            f"SELECT run_id, owner FROM runs{self.dialect.by_state}"
            f" WHERE state IN ({_marks(states)})"
            f" AND ({self.dialect.unheld}) AND parent_run_id IS NULL ORDER BY created, run_id"
        )

    def cancel_requests(self, ids: int) -> str:
        """Which of `ids` run ids (their number) were flagged for cancellation."""
        return self._ready(
            f"SELECT run_id FROM runs WHERE cancel_requested = TRUE AND run_id IN ({_marks(ids)})"
        )

    def append(
        self, moves: bool, releases: bool, *, renews: bool = False, nulls: tuple[str, ...] = ()
    ) -> str:
        """The run row's update for an append: claim checked, `last_seq` moved on; with
        `renews` (PostgreSQL), the lease renewed too (`:lease` seconds from now). It
        returns `last_seq` (and a released `concurrency_key`) on PostgreSQL only: on
        SQLite, it checks `last_seq` before (`:seq`) instead, and writes NULL for the
        parameters `nulls` (`with_nulls`)."""
        sqlite = self.dialect.name == SQLITE
        return _append_sql(self.dialect.name, moves, releases, renews, nulls if sqlite else ())


@cache
def statements(dialect_name: str) -> Statements:
    """The shared statements for one dialect, made once per process."""
    return Statements(dialect_name)


@lru_cache(maxsize=256)
def with_nulls(sql: str, nulls: tuple[str, ...]) -> str:
    """SQLite's `sql` with NULL written for its named parameters `nulls`: sqlite3 binds a
    None only after a failed adapter look-up (~3,300 instructions a value)."""
    names = set(nulls)

    def sub(match: re.Match[str]) -> str:
        return "NULL" if match.group(1) in names else match.group(0)

    return _PLACEHOLDER.sub(sub, sql)


@lru_cache(maxsize=256)
def numbered(sql: str) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """SQLite's `sql` with its named parameters numbered (`:name` -> `?1`, the same number
    wherever a name recurs), and the function picking their values out of a mapping in that
    order: sqlite3 binds a named parameter by asking the statement its name and looking it
    up in the mapping (~1,000 instructions a value), a numbered one by its place."""
    names: dict[str, int] = {}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if match.group(0) == "?":
            raise ValueError(f"a statement with ? parameters as well as named ones: {sql}")
        if not name:
            return match.group(0)
        return f"?{names.setdefault(name, len(names) + 1)}"

    text = _PLACEHOLDER.sub(sub, sql)
    if len(names) == 1:
        (only,) = names
        return text, lambda params: (params[only],)
    return text, itemgetter(*names) if names else lambda params: ()


def _marks(count: int) -> str:
    return ", ".join("?" * count) if count else "NULL"


@cache
def _append_sql(
    dialect_name: str, moves: bool, releases: bool, renews: bool, nulls: tuple[str, ...]
) -> str:
    sets = ["last_seq = last_seq + :n", "updated = :now"]
    if renews:
        sets.append("lease_expires = now() + make_interval(secs => :lease)")
    if moves:
        sets += ["state = :state", "error = :error", "error_code = :code"]
        # Kept as it is when NULL: left out, so the index of started runs is not rewritten.
        sets += [] if "started" in nulls else ["started = coalesce(started, :started)"]
        sets += ["finished = :finished", "wake_at = :wake_at"]
    if releases:
        sets.append(DIALECTS[dialect_name].release)
    sql = f"UPDATE runs SET {', '.join(sets)} WHERE {_CLAIMED}"
    if dialect_name == SQLITE:
        # SQLite's RETURNING fills a temporary table (27 k instructions): the store knows
        # `last_seq` before (`:seq`, checked here), or reads it (on PostgreSQL, RETURNING
        # saves a round trip).
        return with_nulls(f"{sql} AND last_seq = :seq", nulls)
    # A released key lets the next run in (PostgreSQL announces it: `postgres_transaction`).
    returning = "last_seq, concurrency_key" if releases else "last_seq"
    return translate(f"{sql} RETURNING {returning}")


@dataclass(frozen=True, slots=True)
class Creation:
    """A new run's row and first record, as `create_run` writes them."""

    params: Mapping[str, Any]
    definition_row: tuple[str, str]
    """(digest, text) of the pinned definition, for `Statements.insert_definition`."""
    log_row: tuple[Any, ...]
    record: Event
    claim: Claim | None
    nulls: tuple[str, ...]
    """The parameters that are None, for `with_nulls` (SQLite)."""


@lru_cache(maxsize=64)
def definition_digest(text: str) -> str:
    """The key of a pinned definition's text (the same few texts, run after run)."""
    return hashlib.sha256(text.encode()).hexdigest()


def creation(run: NewRun, owner: str | None, now: float) -> Creation:
    definition = dumps(run.definition)
    digest = definition_digest(definition)
    params = {
        "run_id": run.run_id,
        "saga": run.saga,
        "state": RunState.QUEUED.value,
        "definition_hash": run.definition_hash,
        "definition_digest": digest,
        "inputs": dumps(run.inputs),
        "plugin_versions": dumps(run.plugin_versions),
        "now": now,
        "owner": owner,
        "fence": 0 if owner is None else 1,
        "node": run.node,
        "trace_id": trace_id_of(run.run_id),
        "retention": run.retention,
        "parent_run_id": run.parent.run_id if run.parent else None,
        "parent_action": run.parent.action if run.parent else None,
        "key": run.concurrency_key,
        "limit": run.concurrency_limit,
    }
    data = {"state": "queued", "saga": run.saga, "definition_hash": run.definition_hash}
    return Creation(
        params,
        (digest, definition),
        (run.run_id, 1, now, EventKind.RUN_CREATED.value, None, dumps(data)),
        Event(run.run_id, EventKind.RUN_CREATED, None, data, now, 1),
        None if owner is None else Claim(run.run_id, owner, 1),
        tuple(name for name, value in params.items() if value is None),
    )


def created_record(run: NewRun, new: Creation, appending: Appending | None) -> RunRecord:
    """The run's row as `create_run` wrote it, without reading it back: its insert
    (`new`), then the move of `appending`'s update (`Statements.append`)."""
    inserted, moved = new.params, {} if appending is None else appending.params
    return RunRecord(
        run_id=run.run_id,
        saga=run.saga,
        state=RunState(moved.get("state", inserted["state"])),
        definition_hash=run.definition_hash,
        definition=run.definition,
        inputs=json.loads(inserted["inputs"]),
        plugin_versions=json.loads(inserted["plugin_versions"]),
        created=inserted["now"],
        updated=moved.get("now", inserted["now"]),
        started=moved.get("started"),
        finished=moved.get("finished"),
        error=moved.get("error"),
        error_code=moved.get("code"),
        owner=None if appending is not None and appending.releases else inserted["owner"],
        node=run.node,
        trace_id=inserted["trace_id"],
        parent=run.parent,
        concurrency_key=run.concurrency_key,
        wake_at=moved.get("wake_at"),
    )


def created_before(existing: RunRecord, run: NewRun) -> Created:
    """`create_run` of an id that exists: the run as it is, if it is the same request."""
    check_same_request(existing, run)
    return Created(existing, False, None)


_MOVED = ("error", "code", "started", "finished", "wake_at")
"""The parameters of a run row's move that are often None."""


class Appending:
    """One append's statements and parameters, prepared before a writer runs them: the
    SQLite writer thread is the bottleneck with many sagas in flight, so it only executes
    (JSON is encoded here)."""

    __slots__ = (
        "claim",
        "log_rows",
        "now",
        "nulls",
        "params",
        "progress_rows",
        "records",
        "releases",
    )

    def __init__(
        self,
        claim: Claim,
        records: Sequence[Event],
        progress: Mapping[str, JSON] | None,
        now: float,
    ) -> None:
        self.claim, self.records, self.now = claim, records, now
        state: RunState | None = None
        error = code = wake_at = None
        for record in records:
            moved = run_state_of(record)
            if moved is not None:
                state, error, code = moved, record.data.get("error"), record.data.get("code")
                wake_at = record.data.get("wake_at")  # a parked run's timer
        self.releases = state in RELEASING
        self.params: dict[str, Any] = {
            "n": len(records),
            "now": now,
            "run": claim.run_id,
            "owner": claim.owner,
            "fence": claim.fence,
        }
        if state is not None:
            self.params.update(
                state=state.value,
                error=None if error is None else str(error),
                code=None if code is None else str(code),
                started=now if state is RunState.RUNNING else None,
                finished=now if state in FINISHED else None,
                wake_at=wake_at if state is RunState.WAITING else None,
            )
            self.nulls = tuple(name for name in _MOVED if self.params[name] is None)
        else:
            self.nulls = ()
        # Rows without their seq (known only once the run row moved): (run, at, kind, ...).
        # The kind as a plain str: sqlite3 binds a str subclass (the enum) only after a
        # failed adapter look-up, which formats two AttributeErrors in the writer thread.
        self.log_rows = [
            (claim.run_id, r.at or now, str(r.kind), r.action, dumps(dict(r.data))) for r in records
        ]
        self.progress_rows = (
            [(claim.run_id, action, now, dumps(data)) for action, data in progress.items()]
            if progress
            else []
        )

    def sql(self, statements: Statements) -> str:
        return statements.append("state" in self.params, self.releases, nulls=self.nulls)

    def numbered_rows(self, last_seq: int) -> list[tuple[Any, ...]]:
        """The log rows with their seq, given the run's `last_seq` after the update."""
        first = last_seq - len(self.log_rows) + 1
        return [(r[0], first + i, *r[1:]) for i, r in enumerate(self.log_rows)]

    def numbered(self, last_seq: int) -> list[Event]:
        """The records as written, with their seq."""
        first, run_id, now = last_seq - len(self.records) + 1, self.claim.run_id, self.now
        return [
            Event(run_id, r.kind, r.action, r.data, r.at or now, first + i)
            for i, r in enumerate(self.records)
        ]


def by_action(rows: Iterable[Row]) -> dict[str, JSON]:
    """Action -> decoded data, from `(action, data)` rows."""
    return {row["action"]: json.loads(row["data"]) for row in rows}


def event_of(run_id: str, row: Row) -> Event:
    """A log record from a `read_log` row."""
    return Event(run_id, row["kind"], row["action"], json.loads(row["data"]), row["at"], row["seq"])
