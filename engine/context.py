"""`ActionContext` as the runtime implements it for one attempt of one action."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import structlog

from .action import JSON, Transaction
from .deps import Dependencies
from .json_values import check_json
from .store.base import Claim, Store, StoreTransaction
from .tracing import NOOP_TRACER, Tracer

ProgressSink = Callable[[str, float | None, str, int | None], None]


class RunContext:
    """What an action sees while it runs or compensates. One per attempt."""

    def __init__(
        self,
        store: Store,
        claim: Claim,
        action: str,
        attempt: int,
        deps: Dependencies,
        last_checkpoint: JSON | None,
        on_progress: ProgressSink,
        on_checkpoint: Callable[[str, JSON], None],
        compensating: bool = False,
        index: int | None = None,
        tracer: Tracer = NOOP_TRACER,
    ) -> None:
        """`index` is the element of a `for_each` action this attempt runs. (Passed by
        position in the scheduler: a class called with keywords packs them into a dict
        and unpacks them again, ~4,500 instructions for these, once per attempt.)"""
        self._store = store
        self._claim = claim
        self._action = action
        self._index = index
        self._key = action if index is None else f"{action}/{index}"
        """What the attempt is: the action, or one element of it."""
        self._attempt = attempt
        self._deps = deps
        self._last_checkpoint = last_checkpoint
        self._on_progress = on_progress
        self._on_checkpoint = on_checkpoint
        self.compensating = compensating
        self._tracer = tracer
        self._log: Any = None
        self._tx: StoreTransaction | None = None

    @property
    def run_id(self) -> str:
        return self._claim.run_id

    @property
    def action(self) -> str:
        return self._action

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def idempotency_key(self) -> str:
        return f"{self._claim.run_id}/{self._key}"

    @property
    def log(self) -> Any:
        if self._log is None:  # bound on first use: most actions never log
            self._log = structlog.get_logger("sagactl").bind(run_id=self.run_id, action=self.action)
        return self._log

    @property
    def tracer(self) -> Tracer:
        return self._tracer

    @property
    def deps(self) -> Dependencies:
        return self._deps

    @property
    def last_checkpoint(self) -> JSON | None:
        return self._last_checkpoint

    def progress(
        self, fraction: float | None, message: str = "", *, bytes: int | None = None
    ) -> None:
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        self._on_progress(self._action, fraction, message, bytes)

    async def checkpoint(self, data: JSON) -> None:
        check_json(data, f"checkpoint of {self._action}")  # NotJson: a plugin bug, loudly
        if self._tx is not None:
            # The transaction holds the write lock until completion: a checkpoint now would
            # wait for it forever (on SQLite). Checkpoint before opening the transaction.
            raise RuntimeError("checkpoint() cannot be called while transaction() is open")
        with anyio.CancelScope(shield=True):
            await self._store.save_checkpoint(self._claim, self._key, data)
        self._last_checkpoint = data
        self._on_checkpoint(self._key, data)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    async def pin_to_node(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._store.pin_node(self._claim)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        # Opened once per attempt; leaving the block does not commit: the engine commits
        # it with the completion record, or rolls it back when the attempt fails.
        if self._tx is None:
            self._tx = await self._store.begin(self._claim)
        yield self._tx

    def take_transaction(self) -> StoreTransaction | None:
        """The engine's side: the open transaction to commit with the completion, if any."""
        tx, self._tx = self._tx, None
        return tx
