"""`sagactl run NAME --from RUN`: a new run of RUN's pinned definition, with its inputs but
those given anew, linked to RUN in its log."""

from __future__ import annotations

import sys

import click

from ..api import Engine, RunResult, check_inputs, new_run_id
from ..errors import InputError
from ..faults import FaultPlan
from ..model import CompiledSaga
from ..saga_registry import SagaRegistry
from .definition_commands import _catalog
from .live import LiveView
from .options import with_engine
from .run_inputs import RunIdAnnouncer, parse_inputs, report


def run_fork(
    name: str,
    source: str,
    pairs: tuple[str, ...],
    run_id: str | None,
    faults: tuple[str, ...],
    *,
    detach: bool,
    quiet: bool,
    db: str | None,
) -> None:
    """Checks everything before the new id is printed (bad input prints no id); exits."""
    plan = FaultPlan.from_env(faults)
    the_id = run_id or new_run_id()
    view = LiveView(quiet=quiet or detach)

    async def go(engine: Engine) -> RunResult | None:
        record = await engine.store.get_run(source)
        named = name if name == record.saga else SagaRegistry(_catalog()).resolve(name).name
        if named != record.saga:
            raise InputError(f"--from {source}: that run is of saga {record.saga}, not {named}")
        saga = CompiledSaga.from_dict(record.definition)
        unknown = plan.unknown_actions(saga.actions)
        if unknown:
            raise InputError(f"--fault names {unknown[0]!r}, not an action of {saga.name}")
        edits = parse_inputs(saga, pairs)
        check_inputs(saga, {**record.inputs, **edits})
        if detach:
            click.echo(await engine.start_fork(source, edits, new_run_id=the_id))
            return None
        result = await engine.fork(source, edits, new_run_id=the_id)
        announce()
        return result

    announce = RunIdAnnouncer(the_id)
    with view:
        result = with_engine(db, go, on_event=[announce, view], faults=plan)
    sys.exit(0 if result is None else report(result))
