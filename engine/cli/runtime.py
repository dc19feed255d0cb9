"""What the runtime commands share: the `--db` option and running one Engine call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import click

from ..api import Engine
from ..events import EventHandler
from ..faults import FaultPlan
from ..model import CompiledSaga

T = TypeVar("T")

DB_OPTION = click.option(
    "--db",
    envvar="SAGACTL_DB",
    default=None,
    metavar="URL",
    help="Run store: sqlite:///PATH or postgresql://... (default: $SAGACTL_DB or the state dir).",
)


def with_engine(
    db: str | None,
    call: Callable[[Engine], Awaitable[T]],
    *,
    on_event: EventHandler | Sequence[EventHandler] | None = None,
    faults: FaultPlan | None = None,
    **options: Any,
) -> T:
    """`call(engine)` on an Engine over `db` (with the installed plugins), run to its end."""

    async def main() -> T:
        async with Engine(db, on_event=on_event, faults=faults, **options) as engine:
            return await call(engine)

    return anyio.run(main)


def run_graph(db: str | None, run_id: str) -> tuple[CompiledSaga, dict[str, str]]:
    """RUN's pinned compiled saga (never the file as it is now) and each action's state."""

    async def read(engine: Engine) -> tuple[CompiledSaga, dict[str, str]]:
        record = await engine.store.get_run(run_id)
        result = await engine.status(run_id)
        saga = CompiledSaga.from_dict(record.definition)
        return saga, {name: str(a.state) for name, a in result.actions.items()}

    return with_engine(db, read)
