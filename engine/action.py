"""The plugin contract: what an action is and what the engine hands it while it runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from .deps import Dependencies
from .json_values import plain_json
from .tracing import Tracer

JSON = Mapping[str, "JSON"] | Sequence["JSON"] | str | int | float | bool | None
"""A JSON-compatible value: an object, an array, a string, a number, a boolean or null.
Read-only containers, so that a `list[str]` or a frozen mapping is a JSON value too."""

Inputs = Mapping[str, JSON]
Outputs = dict[str, JSON]


@runtime_checkable
class Transaction(Protocol):
    """A database connection whose writes commit with the action's completion record.

    Parameters use the DB-API `?` placeholder style on every backend (the PostgreSQL store
    translates), so one action works on SQLite and PostgreSQL alike.
    """

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`, for the rare statement that differs."""
        ...

    async def execute(self, sql: str, params: Sequence[JSON] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def fetchone(self, sql: str, params: Sequence[JSON] = ()) -> tuple[JSON, ...] | None: ...

    async def fetchall(self, sql: str, params: Sequence[JSON] = ()) -> list[tuple[JSON, ...]]: ...


class ActionContext(Protocol):
    """What an action sees of the engine while it runs or compensates."""

    @property
    def run_id(self) -> str: ...

    @property
    def action(self) -> str:
        """The action's name in the saga definition."""
        ...

    @property
    def attempt(self) -> int:
        """1 on the first attempt; counts across retries and recoveries."""
        ...

    @property
    def idempotency_key(self) -> str:
        """`run_id/action`: the same on every attempt and after every recovery."""
        ...

    @property
    def log(self) -> Any:
        """A structlog logger bound to `run_id` and `action`."""
        ...

    @property
    def tracer(self) -> Tracer:
        """OpenTelemetry tracer: `with ctx.tracer.start_as_current_span("step"):` opens a
        child span of this attempt's span (a no-op tracer when tracing is off)."""
        ...

    @property
    def deps(self) -> Dependencies: ...

    @property
    def last_checkpoint(self) -> JSON | None:
        """What the previous attempt last passed to `checkpoint`, or None."""
        ...

    def progress(
        self, fraction: float | None, message: str = "", *, bytes: int | None = None
    ) -> None:
        """Report progress (fraction in [0, 1], or None when unknown) to subscribers."""
        ...

    async def checkpoint(self, data: JSON) -> None:
        """Durably record `data`; handed back as `last_checkpoint` on a rerun."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction that commits together with this action's completion record."""
        ...

    async def pin_to_node(self) -> None:
        """Pin the run to this machine (`$SAGACTL_NODE`, else the host name): from now on
        only a worker on this node claims it, e.g. because the action keeps its input on
        local disk. Durable before it returns."""
        ...


class Action(ABC):
    """One step of a saga. Subclass it, set the schemas, implement `execute`.

    Override `compensate` to make the action reversible; an action that does not is
    irreversible (as is one marked `compensate: false` in YAML).
    """

    input_schema: ClassVar[Mapping[str, JSON]] = {"type": "object"}
    output_schema: ClassVar[Mapping[str, JSON]] = {"type": "object"}
    description: ClassVar[str] = ""
    retryable: ClassVar[tuple[type[BaseException], ...]] = (Exception,)
    """Exception types worth retrying; `InputError` and `FatalError` never are."""

    @abstractmethod
    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        """Do the work; return outputs matching `output_schema`."""

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        """Undo `execute`. The default marks the action irreversible."""
        raise NotImplementedError

    async def finalize(self, ctx: ActionContext, inputs: Inputs) -> None:
        """Clean up once the run is over, whatever its outcome. Optional.

        Called once per run, for an action that started, when the run reaches a final
        state (succeeded, compensated, cancelled), after its compensations and before the
        run's final record. Recorded in the log, so a crash neither skips nor repeats a
        finished one (one interrupted half way runs again: keep it idempotent). A failure
        is logged and recorded, never retried, and changes nothing in the run's outcome.
        Not called for a run that is stuck (it is not over) or abandoned by an operator.
        """
        raise NotImplementedError

    @classmethod
    def compensable(cls) -> bool:
        return cls.compensate is not Action.compensate

    @classmethod
    def finalizes(cls) -> bool:
        """Whether the action has a `finalize` hook."""
        return cls.finalize is not Action.finalize


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """What the compiler, `sagactl schema` and `sagactl actions` know of an action without
    running it."""

    name: str
    """Entry-point name, the `uses:` of a definition (e.g. `acme.notify`)."""
    input_schema: Mapping[str, JSON]
    output_schema: Mapping[str, JSON]
    compensable: bool
    description: str = ""
    distribution: str | None = None
    version: str | None = None
    """The distribution's version; runs pin it."""

    def to_json(self) -> dict[str, Any]:
        """As `sagactl actions --json` prints it and the action cache keeps it."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "compensable": self.compensable,
            "description": self.description,
            "input_schema": plain_json(self.input_schema),
            "output_schema": plain_json(self.output_schema),
        }


class ActionCatalog(Protocol):
    """Lookup of installed actions by `uses:` name (the plugin registry implements it)."""

    def info(self, name: str) -> ActionInfo | None: ...

    def names(self) -> Sequence[str]: ...


ActionFactory = Callable[[Dependencies], Action]
"""What a `sagactl.actions` entry point names: builds an action from the container."""
