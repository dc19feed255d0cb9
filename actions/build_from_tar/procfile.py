"""Parses a Procfile (Heroku's rules) and merges it with app.toml services.

One `name: command` per line. Names are process types: 1-63 lowercase letters, digits,
`-` and `_`, starting with a letter or digit (Heroku's types, lowercased as Cloud Native
Buildpacks require). The command is everything after the first colon, so colons inside
commands are kept. `#` starts a comment line; blank lines are skipped; CRLF line ends and a
UTF-8 byte-order mark are accepted. A duplicate name or an empty command is refused with
its line number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.engine import InputError, Location

from .schemas import SERVICE_NAME_PATTERN
from .uploadfiles import read_capped

NAME = re.compile(SERVICE_NAME_PATTERN)
MAX_BYTES = 256 << 10
MAX_ENTRIES = 100

DEFAULT_WEB: dict[str, str] = {
    "python": "python3 -m http.server $PORT",
    "node": "npm start",
    "bun": "bun run start",
    "go": "./app",
    "ruby": "bundle exec rackup -p $PORT",
    "rust": "./target/release/app",
    "static": "busybox httpd -f -p $PORT -h .",
}
"""The web command of an app with neither a Procfile nor app.toml services. A Dockerfile app
has none: its image's own CMD runs."""
DEFAULT_PORT = 8080


def parse(raw: bytes, name: str = "Procfile") -> dict[str, dict[str, Any]]:
    """{process type: {command, port: None}}, in file order."""
    if len(raw) > MAX_BYTES:
        raise InputError(f"{len(raw)} bytes, over the limit of {MAX_BYTES}", Location(name))
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise InputError("not valid UTF-8", Location(name, bad_line)) from None
    services: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = Location(name, number, 1)
        if ":" not in line:
            raise InputError(f"expected 'name: command', got {stripped[:60]!r}", where)
        process, command = line.split(":", 1)
        process = process.strip()
        command = command.strip()
        if not NAME.match(process):
            hint = " (use lowercase)" if NAME.match(process.lower()) else ""
            raise InputError(
                f"process type {process!r} must be 1-63 of lowercase letters, digits, '-' and "
                f"'_', starting with a letter or digit{hint}",
                where,
            )
        if process in services:
            raise InputError(
                f"process type {process!r} is declared twice (first on line {first_line[process]})",
                where,
            )
        if not command:
            raise InputError(f"process type {process!r} has an empty command", where)
        if len(services) >= MAX_ENTRIES:
            raise InputError(f"more than {MAX_ENTRIES} process types", where)
        services[process] = {"command": command, "port": None}
        first_line[process] = number
    if not services:
        raise InputError("the Procfile declares no process types", Location(name))
    return services


def load(source_dir: Path) -> dict[str, dict[str, Any]] | None:
    """The root Procfile's entries, or None when the app has none."""
    path = source_dir / "Procfile"
    if not path.is_file():
        return None
    return parse(read_capped(source_dir, path, MAX_BYTES))


def declared(source_dir: Path, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Procfile entries merged with app.toml services: app.toml wins per key (it sets a
    port or a health path; its command, when given, replaces the Procfile's). Needs no
    stack, so parse_services runs beside detect_stack. A web command found nowhere stays
    None for `with_stack_default`; any other service without a command is refused."""
    merged = load(source_dir) or {}
    for service, body in (config.get("services") or {}).items():
        entry = {**merged.get(service, {"command": None}), "port": body.get("port")}
        if body.get("command"):
            entry["command"] = body["command"]
        if body.get("health"):
            entry["health"] = body["health"]
        if entry["command"] is None and service != "web":
            where = Location(str(config.get("source") or "app.toml"))
            raise InputError(
                f"services.{service} has no command, and the Procfile has no {service!r} entry",
                where,
            )
        merged[service] = entry
    if "web" in merged and merged["web"]["port"] is None:
        merged["web"] = {**merged["web"], "port": DEFAULT_PORT}
    return merged


def with_stack_default(
    services: Mapping[str, Mapping[str, Any]], stack: str
) -> dict[str, dict[str, Any]]:
    """`services`, with the stack's default web command where the app gives none. A
    Containerfile app's web service without a command runs the image's own CMD (None)."""
    result = {name: dict(body) for name, body in services.items()}
    if "web" not in result and (stack in DEFAULT_WEB or stack == "dockerfile"):
        result["web"] = {"command": None, "port": DEFAULT_PORT}
    web = result.get("web")
    if web is not None and web["command"] is None and stack in DEFAULT_WEB:
        web["command"] = DEFAULT_WEB[stack]
    return result


def services_for(
    source_dir: Path, config: Mapping[str, Any], stack: str
) -> dict[str, dict[str, Any]]:
    """What the app runs: its declared services, else its stack's default web command."""
    return with_stack_default(declared(source_dir, config), stack)
