"""The finalizer: each action's `finalize` hook, once, when its run's outcome is settled.

It runs when the run is about to be recorded succeeded, compensated or cancelled, for the
actions that started, latest first. Each hook's end is recorded (`action_finalized`,
committed with the hook's own transaction), so recovery runs only the hooks not yet
recorded; the run's final record follows them.
"""

from __future__ import annotations

import anyio
import structlog

from ..event_payloads import ActionFinalized
from ..events import EventKind
from .attempts import AttemptRunner, rollback
from .journal import Journal, error_text

log = structlog.get_logger("sagactl")


class Finalizer:
    """The `finalize` hooks of one run."""

    def __init__(self, journal: Journal, runner: AttemptRunner) -> None:
        self._journal = journal
        self._runner = runner
        order = runner.saga.topological_order()
        self._hooked = [name for name in reversed(order) if runner.action(name).finalizes()]
        """Actions whose plugin has the hook, latest first (most sagas: none)."""

    def pending(self) -> list[str]:
        """Actions that started and whose hook has not run yet."""
        actions = self._journal.status.actions
        return [n for n in self._hooked if actions[n].attempts and not actions[n].finalized]

    async def run(self) -> None:
        journal, runner = self._journal, self._runner
        for name in self.pending():
            ctx = runner.context(name)
            try:
                with structlog.contextvars.bound_contextvars(action=name):
                    await runner.finalize(name, ctx)
            except anyio.get_cancelled_exc_class():
                await rollback(ctx)  # the run is not over: the hook runs again on resume
                raise
            except Exception as exc:
                await rollback(ctx)
                log.warning("finalize failed", action=name, error=error_text(exc))
                failed = ActionFinalized(error=error_text(exc))
                await journal.commit([journal.record(EventKind.ACTION_FINALIZED, name, failed)])
                continue
            tx = ctx.take_transaction()
            await journal.commit([journal.record(EventKind.ACTION_FINALIZED, name)], tx)
