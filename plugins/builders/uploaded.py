"""Checks an uploaded Containerfile for what the builder itself would do on the host.

RUN steps are sandboxed, but some instructions are carried out by buildah in the host's
process: FROM and `--from=` open images (a transport such as `oci:/path` reads host files),
and ADD fetches URLs (reaching the host's loopback services). So every image an upload's
Containerfile names must be an earlier stage, `scratch`, a base the operator configured or
a registry reference not on the host's loopback; ADD takes no URL; ONBUILD is refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from pathlib import Path

from sagactl.engine import InputError

from . import safefs
from .references import InvalidReference, choose_base

MAX_BYTES = 1 << 20
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$")


class RefusedContainerfile(InputError):
    """An uploaded Containerfile that would make the builder reach outside the sandbox."""


def _instructions(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, KEYWORD, arguments) with continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives: only at the very top
        found = _DIRECTIVE.match(line)
        if not found:
            break
        if found[1].lower() == "escape":
            escape = found[2] or "\\"
    pending: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped
        if not pending:
            start = number
        if line.rstrip().endswith(escape):
            pending.append(line.rstrip()[: -len(escape)])
            continue
        pending.append(line)
        joined = " ".join(pending).strip()
        pending = []
        keyword, _, rest = joined.partition(" ")
        yield start, keyword.upper(), rest.strip()
    if pending:
        joined = " ".join(pending).strip()
        keyword, _, rest = joined.partition(" ")
        yield start, keyword.upper(), rest.strip()


def _words(arguments: str) -> list[str]:
    try:
        return shlex.split(arguments, posix=True)
    except ValueError:
        return arguments.split()


def check_image(ref: str, stages: set[str], allowed: Iterable[str], where: str) -> None:
    """An image an uploaded Containerfile names: a stage, scratch, the operator's, or a
    registry reference that is not on the host's loopback."""
    if ref.lower() in stages or ref == "scratch":
        return
    if "$" in ref:
        raise RefusedContainerfile(f"{where}: image {ref!r:.120} must be written out (no $)")
    try:
        choose_base(ref, None, allowed)
    except InvalidReference:
        raise RefusedContainerfile(
            f"{where}: image {ref!r:.120} is neither an earlier stage, a configured base, nor "
            "a registry reference off this host"
        ) from None


def check_file(context: Path, containerfile: Path, allowed: Iterable[str]) -> None:
    """Reads the app's Containerfile (bounded, inside the app) and checks it."""
    try:
        inside = safefs.inside(context, containerfile).relative_to(context.resolve())
        raw = safefs.read_beneath(context.resolve(), inside.as_posix(), MAX_BYTES)
    except OSError as exc:
        raise RefusedContainerfile(f"{containerfile.name}: cannot be read ({exc})") from None
    check(raw.decode("utf-8", errors="replace"), allowed, inside.as_posix())


def check(text: str, allowed: Iterable[str], name: str = "Containerfile") -> None:
    """Raises RefusedContainerfile naming the line of the first instruction that is refused."""
    allowed = set(allowed)
    stages: set[str] = set()
    count = 0
    for number, keyword, arguments in _instructions(text):
        where = f"{name}:{number}"
        words = _words(arguments)
        options = [w for w in words if w.startswith("--")]
        plain = [w for w in words if not w.startswith("--")]
        if keyword == "FROM":
            if not plain:
                raise RefusedContainerfile(f"{where}: FROM names no image")
            check_image(plain[0], stages, allowed, where)
            if len(plain) >= 3 and plain[1].lower() == "as":
                stages.add(plain[2].lower())
            stages.add(str(count))
            count += 1
        elif keyword == "ONBUILD":
            raise RefusedContainerfile(f"{where}: ONBUILD is not accepted in an upload")
        for option in options:
            key, _, value = option.partition("=")
            if key == "--from":
                check_image(value, stages, allowed, where)
            if key == "--mount":
                for part in value.split(","):
                    field, _, target = part.partition("=")
                    if field == "from":
                        check_image(target, stages, allowed, where)
        if keyword == "ADD":
            for source in plain[:-1]:
                if "://" in source or source.startswith("git@"):
                    raise RefusedContainerfile(
                        f"{where}: ADD of a URL ({source[:80]}) is done by the builder on the "
                        "host: fetch it in a RUN step instead"
                    )
