"""JSON Schemas (Draft 2020-12) shared by the build actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

APP_NAME_PATTERN = "^[a-z][a-z0-9-]{0,62}$"
STACKS = ("dockerfile", "python", "node", "bun", "go", "ruby", "rust", "static")
SERVICE_NAME_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$"

APP: dict[str, Any] = {"type": "string", "pattern": APP_NAME_PATTERN}
PATH: dict[str, Any] = {"type": "string", "minLength": 1}
SHA256_HEX: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
DIGEST: dict[str, Any] = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
STACK: dict[str, Any] = {"type": "string", "enum": list(STACKS)}
VERSION: dict[str, Any] = {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}-v[1-9][0-9]*$"}
STREAM_ID: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,128}$"}

HEALTH_PATH_PATTERN = "^/[!-~]*$"
HEALTH_PATH_MAX = 1024
"""An HTTP path to probe: starts with `/`, printable ASCII without spaces (nothing that
could end the request line)."""

SERVICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {
            "type": ["string", "null"],
            "minLength": 1,
            "description": "null: the image's own command (a Containerfile's CMD).",
        },
        "port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535},
        "health": {"type": "string", "pattern": HEALTH_PATH_PATTERN, "maxLength": HEALTH_PATH_MAX},
    },
    "required": ["command", "port"],
    "additionalProperties": False,
}

SERVICES: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"pattern": SERVICE_NAME_PATTERN},
    "additionalProperties": SERVICE,
}

CONFIG: dict[str, Any] = {
    "type": "object",
    "description": "The app's app.toml, normalised: every key present, absent ones null/empty.",
    "properties": {
        "name": {"type": ["string", "null"]},
        "build": {
            "type": "object",
            "properties": {
                "dockerfile": {"type": ["string", "null"]},
                "base_image": {"type": ["string", "null"]},
            },
            "required": ["dockerfile", "base_image"],
            "additionalProperties": False,
        },
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "services": SERVICES,
        "source": {
            "type": ["string", "null"],
            "description": "Where the config was read from, relative to the source root.",
        },
    },
    "required": ["name", "build", "env", "services", "source"],
    "additionalProperties": False,
}


def obj(
    properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    """An object schema; `required` defaults to every property."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema
