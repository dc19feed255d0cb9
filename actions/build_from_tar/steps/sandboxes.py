"""build.resolve_version, build.start_sandboxes, build.stop_old_sandboxes: run a version.

start_sandboxes starts a version's services and checks their health before the pivot;
stop_old_sandboxes stops what the active version replaced, after it. Both sagas use them:
build-from-tar (a new version) and rollback (an earlier one).
"""

from __future__ import annotations

import hashlib

from sagactl.engine import Action, ActionContext, Dependencies, InputError, Inputs, Outputs

from .. import records
from .. import schemas as s
from ..entry import upload_source_dir
from ..sandboxes import Plan, launch, record, stop_all
from ..values import mapping, maybe_text, text

SANDBOX = s.obj(
    {
        "id": {"type": "string", "minLength": 1},
        "service": {"type": "string", "pattern": s.SERVICE_NAME_PATTERN},
        "url": {"type": ["string", "null"]},
    }
)
TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": 86400}


class ResolveVersion(Action):
    """Looks up a recorded version of the app: its image, digest, services and source."""

    description = "Look up a recorded version"
    input_schema = s.obj({"app": s.APP, "version": s.VERSION})
    output_schema = s.obj(
        {
            "version": s.VERSION,
            "image": s.PATH,
            "digest": s.DIGEST,
            "services": s.SERVICES,
            "source_dir": {"type": "string"},
        }
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        app, version = str(inputs["app"]), str(inputs["version"])
        async with ctx.transaction() as tx:
            found = await records.get_version(tx, version)
        if found is None or found["app"] != app:
            raise InputError(f"app {app!r} has no version {version!r}")
        return {
            "version": version,
            "image": found["image"],
            "digest": found["digest"],
            "services": found["services"],
            "source_dir": found["source_dir"] or "",
        }


class StartSandboxes(Action):
    """Starts every service of the version and waits until each is healthy (its port
    accepts connections; its `health` path answers 2xx/3xx). A version that fails is
    stopped again and the action fails for good, so the saga compensates it before the
    pivot while the previous version keeps serving. Compensation stops the sandboxes."""

    description = "Start the version's sandboxes and check their health"
    input_schema = s.obj(
        {
            "app": s.APP,
            "version": s.VERSION,
            "image": s.PATH,
            "digest": s.DIGEST,
            "services": s.SERVICES,
            "source_dir": {"type": "string"},
            "health_timeout": TIMEOUT,
        },
        ["app", "version", "image", "digest", "services"],
    )
    output_schema = s.obj({"sandboxes": {"type": "array", "items": SANDBOX}})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        version = str(inputs["version"])
        planned = Plan(
            app=str(inputs["app"]),
            version=version,
            image=str(inputs["image"]),
            digest=str(inputs["digest"]),
            source_dir=maybe_text(inputs.get("source_dir")) or upload_source_dir(ctx),
            services={
                name: dict(mapping(body)) for name, body in mapping(inputs["services"]).items()
            },
        )
        # The same ids on every attempt of this action: a rerun after a crash replaces
        # what the cut-short attempt started instead of leaving it running.
        key = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:10]
        started = await launch(
            ctx.deps,
            planned,
            lambda service: f"{version}-{service}-{key}",
            health_timeout=_seconds(inputs.get("health_timeout")),
        )
        for sandbox in started:
            ctx.progress(None, f"{sandbox.service} healthy at {sandbox.url or 'no port'}")
        async with ctx.transaction() as tx:
            await record(tx, started)
        return {
            "sandboxes": [
                {"id": sandbox.id, "service": sandbox.service, "url": sandbox.url}
                for sandbox in started
            ]
        }

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        listed = outputs.get("sandboxes")
        items = listed if isinstance(listed, list) else []
        ids = {text(mapping(item)["id"]) for item in items}
        async with ctx.transaction() as tx:
            running = await records.running_sandboxes(tx, str(inputs["app"]))
            mine = [sandbox for sandbox in running if sandbox.id in ids]
            await stop_all(ctx.deps, mine)
            for sandbox in mine:
                await records.mark_sandbox(tx, sandbox.id, "stopped")


class StopOldSandboxes(Action):
    """Stops (SIGTERM, grace, SIGKILL) the app's sandboxes that the active version
    replaced: those of older versions, or with `others` every version but the active one
    (a rollback). Retried forward, never compensated; a sandbox already gone is simply
    marked stopped. Sandboxes of a newer version still starting are left alone."""

    description = "Stop sandboxes the active version replaced"
    input_schema = s.obj(
        {"app": s.APP, "version": s.VERSION, "others": {"type": "boolean"}}, ["app", "version"]
    )
    output_schema = s.obj(
        {"stopped": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        app = str(inputs["app"])
        async with ctx.transaction() as tx:
            shown = await records.show_app(tx, app)
            active = shown["active_version"] or str(inputs["version"])
            old = _replaced(
                await records.running_sandboxes(tx, app), active, bool(inputs.get("others"))
            )
            stopped = await stop_all(ctx.deps, old)
            for sandbox_id in stopped:
                await records.mark_sandbox(tx, sandbox_id, "stopped")
        return {"stopped": stopped}


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _replaced(
    running: list[records.SandboxRecord], active: str, others: bool
) -> list[records.SandboxRecord]:
    number = records.version_number(active)
    return [
        sandbox
        for sandbox in running
        if sandbox.version != active
        and (others or records.version_number(sandbox.version) < number)
    ]


def resolve_version_factory(deps: Dependencies) -> ResolveVersion:
    return ResolveVersion()


def start_sandboxes_factory(deps: Dependencies) -> StartSandboxes:
    return StartSandboxes()


def stop_old_sandboxes_factory(deps: Dependencies) -> StopOldSandboxes:
    return StopOldSandboxes()
