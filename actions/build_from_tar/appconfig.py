"""Reads an app's `app.toml` (root or `.sagactl/app.toml`) into the normalised config dict."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from sagactl.engine import InputError, Location
from sagactl.plugins.runtimes import env as env_rules

from .schemas import HEALTH_PATH_MAX, HEALTH_PATH_PATTERN, SERVICE_NAME_PATTERN
from .uploadfiles import read_capped

PLACES = ("app.toml", ".sagactl/app.toml")
MAX_BYTES = 1 << 20
MAX_STRING = 16 << 10
MAX_ENTRIES = 1000
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)
_HEALTH_PATH = re.compile(HEALTH_PATH_PATTERN)
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)$")

_KEYS = {
    "": {"name", "build", "env", "services"},
    "build": {"dockerfile", "base_image"},
    "service": {"command", "port", "health"},
}


def empty() -> dict[str, Any]:
    """The config of an app with no app.toml."""
    return {
        "name": None,
        "build": {"dockerfile": None, "base_image": None},
        "env": {},
        "services": {},
        "source": None,
    }


def find(source_dir: Path) -> Path | None:
    """The app.toml in force; refuses an app with both."""
    found = [source_dir / place for place in PLACES if (source_dir / place).is_file()]
    if len(found) > 1:
        raise InputError(f"both {PLACES[0]} and {PLACES[1]} exist: keep one")
    return found[0] if found else None


def load(source_dir: Path) -> dict[str, Any]:
    """Read and check the app's app.toml; the empty config when there is none."""
    path = find(source_dir)
    if path is None:
        return empty()
    name = path.relative_to(source_dir).as_posix()
    return parse(read_capped(source_dir, path, MAX_BYTES), name)


def parse(raw: bytes, name: str = "app.toml") -> dict[str, Any]:
    """Parse app.toml bytes; every error names `name` and, where known, line and column."""
    if len(raw) > MAX_BYTES:
        raise InputError(f"{len(raw)} bytes, over the limit of {MAX_BYTES}", Location(name))
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InputError("starts with a byte-order mark: save it as UTF-8 without BOM", _at(name))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError("not valid UTF-8", Location(name, line, column)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match:
            where = Location(name, int(match[1]), int(match[2]))
        elif message.endswith("(at end of document)"):
            lines = text.split("\n")
            where = Location(name, len(lines), len(lines[-1]) + 1)
        else:
            where = Location(name)
        message = _TOML_POSITION.sub("", message).removesuffix("(at end of document)")
        raise InputError(message.strip(), where) from None
    return _check(data, text, name)


def _at(name: str, line: int = 1, column: int = 1) -> Location:
    return Location(name, line, column)


def _line_of(text: str, *needles: str) -> Location | None:
    """Best-effort line of a key (tomllib keeps no positions)."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        for needle in needles:
            if stripped.startswith(needle):
                return Location("", number, line.index(needle[0]) + 1)
    return None


class _Checker:
    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name

    def fail(self, message: str, *needles: str) -> InputError:
        found = _line_of(self.text, *needles) if needles else None
        where = Location(self.name, found.line, found.column) if found else Location(self.name)
        return InputError(message, where)

    def keys(self, table: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                label = f"{path}.{key}" if path else key
                raise self.fail(
                    f"unknown key {label!r} (allowed: {', '.join(sorted(allowed))})",
                    key,
                    f'"{key}"',
                    f"[{label}]",
                )

    def string(self, value: Any, path: str, needle: str) -> str:
        if not isinstance(value, str):
            raise self.fail(f"{path} must be a string, not {type(value).__name__}", needle)
        if len(value) > MAX_STRING:
            raise self.fail(f"{path} is longer than {MAX_STRING} characters", needle)
        if "\x00" in value:
            raise self.fail(f"{path} contains a NUL character", needle)
        return value

    def table(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{path} must be a table", path, f"[{path}]")
        if len(value) > MAX_ENTRIES:
            raise self.fail(f"[{path}] has more than {MAX_ENTRIES} entries", f"[{path}]")
        return value


def _check(data: dict[str, Any], text: str, name: str) -> dict[str, Any]:
    c = _Checker(text, name)
    config = empty()
    config["source"] = name
    c.keys(data, _KEYS[""], "")
    if "name" in data:
        app = c.string(data["name"], "name", "name")
        if not re.match(r"^[a-z][a-z0-9-]{0,62}$", app):
            raise c.fail(f"name {app!r} must match ^[a-z][a-z0-9-]{{0,62}}$", "name")
        config["name"] = app
    if "build" in data:
        build = c.table(data["build"], "build")
        c.keys(build, _KEYS["build"], "build")
        for key in ("dockerfile", "base_image"):
            if key in build:
                value = c.string(build[key], f"build.{key}", key)
                if not value.strip():
                    raise c.fail(f"build.{key} is empty", key)
                if key == "dockerfile" and (value.startswith("/") or ".." in value.split("/")):
                    raise c.fail("build.dockerfile must be a path inside the app", key)
                config["build"][key] = value
    if "env" in data:
        env = c.table(data["env"], "env")
        for key, value in env.items():
            if not _ENV_NAME.match(key):
                raise c.fail(f"env name {key!r} is not a valid variable name", key, f'"{key}"')
            refused = env_rules.refusal(key)
            if refused is not None:
                raise c.fail(f"env name {key!r} is not allowed: {refused}", key, f'"{key}"')
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise c.fail(f"env.{key} must be a string or a number", key)
            config["env"][key] = c.string(str(value), f"env.{key}", key)
    if "services" in data:
        services = c.table(data["services"], "services")
        for service, body in services.items():
            header = f"[services.{service}]"
            if not _SERVICE_NAME.match(service):
                raise c.fail(
                    f"service name {service!r} must be 1-63 of lowercase letters, digits, "
                    "'-' and '_', starting with a letter or digit",
                    header,
                    service,
                )
            table = c.table(body, f"services.{service}")
            c.keys(table, _KEYS["service"], f"services.{service}")
            # Without a command here, the Procfile's entry of the same name gives it.
            command: str | None = None
            if "command" in table:
                command = c.string(table["command"], f"services.{service}.command", "command")
                if not command.strip():
                    raise c.fail(f"services.{service}.command is empty", "command")
                command = command.strip()
            port = table.get("port")
            if port is not None and (
                isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535
            ):
                raise c.fail(f"services.{service}.port must be an integer 1-65535", "port")
            entry: dict[str, Any] = {"command": command, "port": port}
            if "health" in table:
                health = c.string(table["health"], f"services.{service}.health", "health")
                if not _HEALTH_PATH.match(health) or len(health) > HEALTH_PATH_MAX:
                    raise c.fail(
                        f"services.{service}.health must be an HTTP path starting with '/', "
                        f"printable ASCII without spaces, at most {HEALTH_PATH_MAX} characters",
                        "health",
                    )
                entry["health"] = health
            config["services"][service] = entry
    return config
