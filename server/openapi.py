"""`GET /api/openapi.json`: the OpenAPI 3.1 description of the HTTP API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ERROR = {"$ref": "#/components/schemas/Error"}
RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
APP = {"name": "app", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(ERROR, "error: one line, as the CLI prints it") for c in codes}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


RUN = {"$ref": "#/components/schemas/Run"}
OPERATOR: dict[str, Any] = {"parameters": [RUN_ID]}
MUTATING: dict[str, Any] = {"security": [{"bearer": []}, {}]}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "sagactl",
        "version": "1",
        "description": "Runs of declarative sagas, and builds of apps from tar uploads. "
        "With a token set, every request other than GET needs Authorization: Bearer.",
    },
    "paths": {
        "/api/apps/{app}/builds": {
            "post": _op(
                "Build an uploaded tar (plain or gzip): the body is streamed into the build",
                {
                    "202": _json(
                        {"type": "object", "properties": {"run_id": {"type": "string"}}},
                        "the upload is staged and checked; the build goes on",
                    ),
                    "200": _json({"$ref": "#/components/schemas/Build"}, "?wait=1: the result"),
                    **_errors(400, 401, 403, 413, 422),
                },
                parameters=[
                    APP,
                    {"name": "wait", "in": "query", "schema": {"type": "integer", "enum": [0, 1]}},
                ],
                requestBody={
                    "required": True,
                    "content": {
                        "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
                        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                **MUTATING,
            )
        },
        "/api/runs": {
            "get": _op(
                "Runs, newest first, a page at a time (keyset: pass `next` as `before`)",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "runs": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/RunRow"},
                                },
                                "next": {"type": ["string", "null"]},
                            },
                        },
                        "a page",
                    ),
                    **_errors(400),
                },
                parameters=[
                    {"name": n, "in": "query", "schema": {"type": t}}
                    for n, t in (
                        ("state", "string"),
                        ("saga", "string"),
                        ("q", "string"),
                        ("limit", "integer"),
                        ("before", "string"),
                    )
                ],
            ),
            "post": _op(
                "Start a saga by name",
                {
                    "202": _json({"type": "object"}, "the run exists: {run_id}"),
                    **_errors(400, 401, 403, 404, 413, 422),
                },
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["saga"],
                                "properties": {
                                    "saga": {"type": "string"},
                                    "inputs": {"type": "object"},
                                    "run_id": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                **MUTATING,
            ),
        },
        "/api/runs/{run_id}": {
            "get": _op(
                "A run: the `status --json` shape",
                {"200": _json(RUN, "the run"), **_errors(404)},
                **OPERATOR,
            )
        },
        "/api/runs/{run_id}/events": {
            "get": _op(
                "The run's log (`?after=SEQ`)",
                {"200": _json({"type": "object"}, "{events: [...]}"), **_errors(404)},
                **OPERATOR,
            )
        },
        "/api/runs/{run_id}/stream": {
            "get": _op(
                "Server-Sent Events: each record as committed, `id` = seq; resumes after "
                "Last-Event-ID (0: from the first); ends after the run settles",
                {"200": {"description": "text/event-stream"}, **_errors(400, 404)},
                **OPERATOR,
            )
        },
        **{
            f"/api/runs/{{run_id}}/{verb}": {
                "post": _op(
                    summary,
                    {code: _json(RUN, "the run"), **_errors(401, 403, 404, 409)},
                    **OPERATOR,
                    **MUTATING,
                )
            }
            for verb, summary, code in (
                ("cancel", "Compensate a running run", "202"),
                ("resume", "Continue a run nobody holds", "202"),
                ("retry", "Continue a stuck run with new attempts", "202"),
                ("abandon", "Give up on an unfinished run", "200"),
            )
        },
        "/api/sagas": {
            "get": _op("Installed sagas", {"200": _json({"type": "object"}, "{sagas: [...]}")})
        },
        "/api/sagas/{name}/graph": {
            "get": _op(
                "A saga's graph",
                {"200": {"description": "image/svg+xml or application/json"}, **_errors(400, 404)},
                parameters=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "format", "in": "query", "schema": {"enum": ["svg", "json"]}},
                ],
            )
        },
        "/api/apps": {
            "get": _op("Built apps", {"200": _json({"type": "object"}, "{apps: [...]}")})
        },
        "/api/apps/{app}": {
            "get": _op(
                "An app: the `app show --json` shape",
                {"200": _json({"type": "object"}, "the app"), **_errors(404)},
                parameters=[APP],
            )
        },
        "/api/apps/{app}/rollback": {
            "post": _op(
                "Make an earlier version active (the `rollback` saga); answered when it ends",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "app": {"type": "string"},
                                "active_version": {"type": "string"},
                                "run_id": {"type": "string"},
                            },
                        },
                        "the version is active",
                    ),
                    **_errors(400, 401, 403, 404, 409, 413, 422),
                },
                parameters=[APP],
                requestBody={
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"version": {"type": "integer", "minimum": 1}},
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                **MUTATING,
            )
        },
        "/healthz": {
            "get": _op("Liveness and the store", {"200": _json({"type": "object"}, "ok")})
        },
        "/metrics": {"get": _op("Prometheus metrics", {"200": {"description": "text/plain"}})},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "RunRow": {
                "type": "object",
                "properties": {
                    k: {"type": ["string", "number", "null"]}
                    for k in (
                        "run_id",
                        "saga",
                        "state",
                        "started",
                        "finished",
                        "owner",
                        "lease_expires",
                        "node",
                    )
                },
            },
            "Run": {
                "type": "object",
                "properties": {
                    "run_id": {"type": "string"},
                    "saga": {"type": "string"},
                    "state": {"type": "string"},
                    "error": {"type": ["string", "null"]},
                    "actions": {"type": "object"},
                },
            },
            "Build": {
                "type": "object",
                "properties": {
                    k: {"type": ["string", "null"]}
                    for k in (
                        "run_id",
                        "app",
                        "state",
                        "version",
                        "image",
                        "digest",
                        "error",
                        "failed_action",
                    )
                },
            },
        },
    },
}


async def openapi(request: Request) -> Response:
    return JSONResponse(DOCUMENT)


routes = [Route("/api/openapi.json", openapi, methods=["GET"])]
