"""build.receive_tar: stage the uploaded tar durably, check every member, unpack it."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import schemas as s


class ReceiveTar(Action):
    """Streams the upload to a staged file (fsync, sha256, size cap), checks every member,
    and unpacks it into a fresh source directory."""

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

    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        raise NotImplementedError

    async def compensate(self, ctx: ActionContext, inputs: Inputs, outputs: Outputs) -> None:
        raise NotImplementedError


def receive_tar_factory(deps: Dependencies) -> Action:
    return ReceiveTar(deps)
