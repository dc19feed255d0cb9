"""build.resolve_cluster_ip: the cluster host's address, or 127.0.0.1 in single-machine mode."""

from __future__ import annotations

from sagactl.engine import Action, ActionContext, Dependencies, Inputs, Outputs

from .. import schemas as s
from ..cluster import resolve
from ..settings import settings_of
from ..values import maybe_text


class ResolveClusterIp(Action):
    """Resolves the cluster host (default `cluster.local`), with timeout and retries."""

    description = "Resolve the cluster host's IP address"
    input_schema = s.obj({"host": {"type": "string", "minLength": 1, "maxLength": 253}}, [])
    output_schema = s.obj({"ip": {"type": "string", "minLength": 1}, "host": s.PATH})

    async def execute(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        settings = settings_of(ctx.deps)
        resolved = await resolve(settings.cluster, maybe_text(inputs.get("host")), logger=ctx.log)
        return {"ip": resolved.ip, "host": resolved.host}


def resolve_cluster_ip_factory(deps: Dependencies) -> ResolveClusterIp:
    return ResolveClusterIp()
