"""build_from_tar: register an upload, run build-from-tar to its end, clean up, return it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import anyio
from sagactl.engine import (
    ActionContext,
    CompiledSaga,
    Dependencies,
    Engine,
    Event,
    InputError,
    RunResult,
    RunState,
    SagaError,
    SagaRegistry,
)
from sagactl.engine.plugins import load_plugins
from sagactl.engine.store import Store

from . import records
from .backends import check_builder
from .settings import BuildSettings, default_registry, settings_of
from .staging import StagingArea
from .streams import StreamRegistry

SAGA = "build-from-tar"


class BuildFailed(SagaError):
    """The build saga did not succeed (compensated, stuck, cancelled); `result` says how."""

    code = "build_failed"

    def __init__(self, result: BuildResult) -> None:
        where = f" at {result.failed_action}" if result.failed_action else ""
        super().__init__(f"build of {result.app} {result.state}{where}: {result.error}")
        self.result = result


@dataclass(frozen=True, slots=True)
class BuildResult:
    run_id: str
    app: str
    state: RunState
    stream_id: str
    """The upload's id in the StreamRegistry (the build's run is `run_id_for(stream_id)`)."""
    version: str | None = None
    image: str | None = None
    digest: str | None = None
    previous_version: str | None = None
    active_version: str | None = None
    """The app's active version when the build returned: `version`, or a newer one when
    builds finished out of order (this one is then built but not active)."""
    error: str | None = None
    failed_action: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "app": self.app,
            "state": self.state.value,
            "stream_id": self.stream_id,
            "version": self.version,
            "image": self.image,
            "digest": self.digest,
            "previous_version": self.previous_version,
            "active_version": self.active_version,
            "activated": self.ok and self.active_version == self.version,
            "error": self.error,
            "failed_action": self.failed_action,
        }

    @classmethod
    def from_run(cls, app: str, stream_id: str, run: RunResult) -> BuildResult:
        def output(action: str, name: str) -> Any:
            status = run.actions.get(action)
            outputs: Mapping[str, Any] = (getattr(status, "outputs", None) or {}) if status else {}
            return outputs.get(name)

        return cls(
            run_id=run.run_id,
            app=app,
            state=run.state,
            stream_id=stream_id,
            version=output("create_version", "version_id") or output("get_next_version", "version"),
            image=output("build_image", "image"),
            digest=output("build_image", "digest"),
            previous_version=output("set_active_version", "previous_version"),
            error=run.error,
            failed_action=run.failed_action,
        )


RUN_PREFIX = "build-"


def run_id_for(stream_id: str) -> str:
    """The run id of the build of `stream_id`: one upload, one run, however often retried."""
    return f"{RUN_PREFIX}{stream_id}"


def upload_source_dir(ctx: ActionContext) -> str | None:
    """Where receive_tar unpacked this run's upload (for a definition that does not pass
    `source_dir` on), when the run is a build of a stream and the directory is there."""
    if not ctx.run_id.startswith(RUN_PREFIX):
        return None
    path = settings_of(ctx.deps).sources_dir / ctx.run_id.removeprefix(RUN_PREFIX)
    return str(path) if path.is_dir() else None


def load_saga() -> CompiledSaga:
    """The installed build-from-tar definition, compiled against the installed actions."""
    return SagaRegistry(load_plugins().actions).get(SAGA)


async def build_from_tar_async(
    app: str,
    stream: Any,
    *,
    on_progress: Callable[[Event], None] | None = None,
    builder: str | None = None,
    db: str | os.PathLike[str] | Store | None = None,
    deps: Dependencies | None = None,
    registry: StreamRegistry | None = None,
    saga: CompiledSaga | None = None,
    faults: Any = None,
    stream_id: str | None = None,
    **engine_options: Any,
) -> BuildResult:
    """Build `stream` (a binary file or an async byte source holding a tar, plain or gzip)
    as a new version of `app`; returns it once activated.

    Raises InputError when the upload or the app is bad input (a hostile tar, a broken
    app.toml), BuildFailed when the saga otherwise did not succeed. Staged files are removed
    when the run ends, whatever the outcome. `faults` (`ACTION:KIND[@WHEN]` specs or a
    FaultPlan) and `engine_options` (e.g. a clock) go to the engine.
    """
    deps = deps or Dependencies()
    if registry is None:
        registry = deps.maybe(StreamRegistry)  # not `or`: an empty registry is falsy
    if registry is None:
        registry = default_registry()
    settings: BuildSettings = settings_of(deps)
    if builder:
        settings = replace(settings, builder=builder)
        deps.provide(BuildSettings, settings)
    if settings.builder:  # a name nobody installed is refused before anything starts
        check_builder(settings.builder)
    deps.provide(StreamRegistry, registry)
    stream_id = registry.register(stream, stream_id=stream_id)
    area = StagingArea(settings.staging_dir, settings.limits)

    def remove_staged(sid: str, _outcome: str) -> None:
        area.remove(sid)

    registry.on_cleanup(stream_id, remove_staged)
    outcome = "failed"
    try:
        async with Engine(
            db, deps=deps, on_event=on_progress, faults=faults, **engine_options
        ) as engine:
            run = await engine.run(
                saga or load_saga(),
                {"app": app, "stream_id": stream_id},
                run_id=run_id_for(stream_id),
            )
            async with engine.store.transaction() as tx:  # what is active now, not at the pivot
                active = await records.active_version(tx, app)
        outcome = str(run.state)
    finally:
        registry.release(stream_id, outcome)
    result = BuildResult.from_run(app, stream_id, run)
    if result.ok:
        return replace(result, active_version=active)
    if run.bad_input:
        raise InputError(run.error or "bad input")
    raise BuildFailed(result)


def build_from_tar(app: str, stream: Any, **options: Any) -> BuildResult:
    """`build_from_tar_async` from synchronous code."""
    return anyio.run(lambda: build_from_tar_async(app, stream, **options))
