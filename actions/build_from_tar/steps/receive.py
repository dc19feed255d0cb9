"""build.receive_tar: stage the uploaded tar durably, check every member, unpack it."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio.to_thread
from sagactl.engine import Action, ActionContext, Dependencies, FatalError, Inputs, Outputs

from .. import schemas as s
from ..settings import registry_of, settings_of
from ..staging import StagingArea, extract
from ..streams import StreamGone


class ReceiveTar(Action):
    """Streams the upload to a staged file (fsync, sha256, size cap), checks every member,
    and unpacks it into a fresh source directory.

    Once the upload is staged whole, a checkpoint records its size and sha256: a rerun after
    a crash (the uploader long gone) recovers from the staged file if it still matches, and
    fails clearly otherwise. A rerun without that checkpoint needs the live reader.
    """

    description = "Stage the uploaded tar (checked member by member) and unpack it"
    input_schema = s.obj({"stream_id": s.STREAM_ID})
    output_schema = s.obj(
        {
            "path": s.PATH,
            "sha256": s.SHA256_HEX,
            "size": {"type": "integer", "minimum": 0},
            "source_dir": s.PATH,
        }
    )

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        settings = settings_of(ctx.deps)
        area = StagingArea(settings.staging_dir, settings.limits)
        stream_id = str(inputs["stream_id"])
        registry = registry_of(ctx.deps)
        # The upload arrives on this machine and is staged on its disk: only a worker here
        # may ever run (or recover) this build (README, "Builds across machines").
        await ctx.pin_to_node()
        await anyio.to_thread.run_sync(area.sweep, settings.staged_ttl)
        checkpoint = ctx.last_checkpoint
        if isinstance(checkpoint, dict) and checkpoint.get("staged"):
            sha256, size = str(checkpoint["sha256"]), int(checkpoint["size"])
            found = await anyio.to_thread.run_sync(area.verify, stream_id, sha256, size)
            if found is None:
                await anyio.to_thread.run_sync(area.remove, stream_id)
                raise FatalError(
                    f"upload {stream_id}: the staged file is missing or changed since it was "
                    f"staged ({size} bytes, sha256 {sha256[:12]}...): cannot recover it"
                )
            path = found
            ctx.log.info("recovered upload from the staged file", size=size)
        else:
            try:
                reader = registry.claim(stream_id)
            except StreamGone as exc:
                await anyio.to_thread.run_sync(area.remove, stream_id)
                raise FatalError(
                    f"upload {stream_id} is gone and was not staged whole ({exc})"
                ) from None

            def on_progress(received: int) -> None:
                ctx.progress(None, "receiving upload", bytes=received)

            staged = await area.stage(stream_id, reader, on_progress)
            path, sha256, size = staged.path, staged.sha256, staged.size
            await ctx.checkpoint({"staged": True, "sha256": sha256, "size": size})
        registry.set_staged(stream_id, path)
        source_dir = settings.sources_dir / stream_id
        await anyio.to_thread.run_sync(
            lambda: extract(path, source_dir, limits=settings.limits, sha256=sha256)
        )
        ctx.progress(1.0, "upload staged and unpacked", bytes=size)
        return {"path": str(path), "sha256": sha256, "size": size, "source_dir": str(source_dir)}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        settings = settings_of(ctx.deps)
        stream_id = str(inputs["stream_id"])
        area = StagingArea(settings.staging_dir, settings.limits)
        await anyio.to_thread.run_sync(area.remove, stream_id)
        source_dir = Path(outputs.get("source_dir") or settings.sources_dir / stream_id)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(source_dir, ignore_errors=True))


def receive_tar_factory(deps: Dependencies) -> ReceiveTar:
    return ReceiveTar()
