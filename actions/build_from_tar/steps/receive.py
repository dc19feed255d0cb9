"""build.receive_tar: stage the uploaded tar durably, check every member, unpack it."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import anyio.to_thread
from sagactl.engine import Action, ActionContext, Dependencies, FatalError, Inputs, Outputs

from .. import appconfig, procfile
from .. import schemas as s
from ..precheck import FileCapture
from ..settings import registry_of, settings_of
from ..staging import StagingArea, extract, unpacking_dir
from ..streams import StreamGone
from ..values import maybe_text

READ_WHOLE_LATER = (
    ("Procfile", procfile.MAX_BYTES),
    *((place, appconfig.MAX_BYTES) for place in appconfig.PLACES),
)
"""Files later steps read whole: refused from their tar header when over their cap."""
STAGED_AND_CHECKED = "upload staged and checked"
"""The progress message said once the upload is durable, every member checked and its
config sure to pass; unpacking follows. `sagactl serve` answers the upload then."""


class ReceiveTar(Action):
    """Streams the upload to a staged file (fsync, sha256, size cap), checking every member
    on the way, then unpacks the staged file into a fresh source directory.

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
        stream_id = str(inputs["stream_id"])
        source_dir = settings.sources_dir / stream_id
        # Whole paths must fit under the directory they are unpacked in: checked while the
        # upload streams in, so unpacking never meets ENAMETOOLONG.
        limits = replace(
            settings.limits.under(unpacking_dir(source_dir)), file_caps=READ_WHOLE_LATER
        )
        area = StagingArea(settings.staging_dir, limits)
        registry = registry_of(ctx.deps)
        # The upload arrives on this machine and is staged on its disk: only a worker here
        # may ever run (or recover) this build (README, "Builds across machines").
        await ctx.pin_to_node()
        try:
            await anyio.to_thread.run_sync(_prepare, area, settings.staged_ttl)
        except OSError as exc:
            raise FatalError(
                f"staging directory {area.directory} is unusable: {cause_of(exc)}"
            ) from None
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
                # Unpacked (whole or in part) by an attempt that crashed before its
                # checkpoint: nothing of it is kept.
                await anyio.to_thread.run_sync(_remove_unpacked, source_dir)
                raise FatalError(
                    f"upload {stream_id} is gone and was not staged whole ({exc})"
                ) from None

            def on_progress(received: int) -> None:
                ctx.progress(None, "receiving upload", bytes=received)

            capture = FileCapture()
            try:
                # Staged and checked in one pass that writes each byte once; the config
                # files are kept on the way, for the prediction below.
                staged = await area.stage(stream_id, reader, on_progress, observer=capture)
            except OSError as exc:
                # The reader is consumed: a retry could not read it again, so say why now.
                registry.failed(stream_id, cause_of(exc))
                raise FatalError(
                    f"upload {stream_id} could not be staged in {area.directory}: {cause_of(exc)}"
                ) from None
            path, sha256, size = staged.path, staged.sha256, staged.size
            await ctx.checkpoint({"staged": True, "sha256": sha256, "size": size})
            # Durable and checked: a server may answer its uploader now, while this
            # unpacks (only when the config checks are sure to pass, see precheck).
            if await anyio.to_thread.run_sync(capture.config_is_sound, area.directory):
                ctx.progress(None, STAGED_AND_CHECKED, bytes=size)
        try:
            await anyio.to_thread.run_sync(
                lambda: extract(path, source_dir, limits=limits, sha256=sha256)
            )
        except OSError as exc:
            raise FatalError(
                f"upload {stream_id} could not be unpacked in {settings.sources_dir}: "
                f"{cause_of(exc)}"
            ) from None
        registry.set_staged(stream_id, path)
        ctx.progress(1.0, "upload staged and unpacked", bytes=size)
        return {"path": str(path), "sha256": sha256, "size": size, "source_dir": str(source_dir)}

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        settings = settings_of(ctx.deps)
        stream_id = str(inputs["stream_id"])
        area = StagingArea(settings.staging_dir, settings.limits)
        await anyio.to_thread.run_sync(area.remove, stream_id)
        source_dir = Path(maybe_text(outputs.get("source_dir")) or settings.sources_dir / stream_id)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(source_dir, ignore_errors=True))

    async def finalize(self, ctx: ActionContext, inputs: Inputs) -> None:
        """The run is over, whatever its outcome: the staged upload has served (the
        unpacked source stays, versions run from it). Staged files of runs that never end
        (stuck, then abandoned) are left to the sweep of stale uploads."""
        settings = settings_of(ctx.deps)
        area = StagingArea(settings.staging_dir, settings.limits)
        await anyio.to_thread.run_sync(area.remove, str(inputs["stream_id"]))


def _remove_unpacked(source_dir: Path) -> None:
    for path in (source_dir, unpacking_dir(source_dir)):
        shutil.rmtree(path, ignore_errors=True)


def _prepare(area: StagingArea, staged_ttl: float) -> None:
    area.directory.mkdir(parents=True, exist_ok=True)
    area.sweep(staged_ttl)


def cause_of(exc: OSError) -> str:
    """The system's words for a disk or directory error (`No space left on device`)."""
    return exc.strerror or type(exc).__name__


def receive_tar_factory(deps: Dependencies) -> ReceiveTar:
    return ReceiveTar()
