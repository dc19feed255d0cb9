"""`POST /api/apps/{app}/rollback`: make an earlier version of an app active again.

The body is optional: `{"version": N}` names the version (`<app>-vN`); without it the
newest version older than the active one is chosen, as `sagactl app rollback` does. The
`rollback` saga runs here (its sandboxes started and health-checked beside the serving
version, then activated, then the others stopped) and the answer comes when it ends:
`200 {"app", "active_version", "run_id"}`, 404 for an unknown app or version, 409 when
there is nothing older or the saga did not succeed (the active version is unchanged).
"""

from __future__ import annotations

from typing import Any

from sagactl.actions.build_from_tar import records
from sagactl.actions.build_from_tar.rollback import SAGA, older_version
from sagactl.engine import InputError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .api_builds import APP_NAME
from .errors import ApiError, problem, read_json
from .services import services_of


def version_asked(app: str, body: Any) -> str | None:
    """The version id the body names (`{"version": N}`), None when it names none."""
    if not isinstance(body, dict) or set(body) - {"version"}:
        raise ApiError(422, 'the body must be {} or {"version": N}')
    number = body.get("version")
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ApiError(422, f"version must be a version number (1, 2, ...), got {number!r}")
    return f"{app}-v{number}"


async def post_rollback(request: Request) -> Response:
    services = services_of(request)
    app = request.path_params["app"]
    if not APP_NAME.match(app):
        return problem(400, f"bad app name {app!r}: use 1-63 of a-z, 0-9 and '-', a letter first")
    asked = version_asked(app, await read_json(request, services.config.max_body))
    async with services.store.transaction() as tx:
        try:
            shown = await records.show_app(tx, app)
        except InputError:
            raise ApiError(404, f"no app named {app!r}") from None
        found = await records.get_version(tx, asked) if asked else None
    if asked is None:
        try:
            target = older_version(app, shown)
        except InputError as exc:
            raise ApiError(409, str(exc)) from None
    elif found is None or found["app"] != app:
        raise ApiError(404, f"app {app!r} has no version {asked!r}")
    else:
        target = asked
    run = await services.engine.run(services.sagas.get(SAGA), {"app": app, "version": target})
    if run.state == "succeeded":
        return JSONResponse({"app": app, "active_version": target, "run_id": run.run_id})
    where = f" at {run.failed_action}" if run.failed_action else ""
    return problem(
        422 if run.bad_input else 409,
        f"rollback of {app} to {target} {run.state}{where}: {run.error}",
        run_id=run.run_id,
    )


routes = [Route("/api/apps/{app}/rollback", post_rollback, methods=["POST"])]
