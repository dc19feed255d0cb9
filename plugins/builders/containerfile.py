"""A Containerfile serialiser: every value is checked against a strict grammar or quoted.

Nothing is pasted into a line: an image reference, a path, a name or a value that does not
fit its grammar is refused (InputError naming it), exec-form instructions are JSON arrays
(json.dumps never emits a raw newline), and ENV/LABEL values are single-quoted, where the
Containerfile parser neither expands `$` nor processes `\\`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from sagactl.engine import InputError

_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_ABSOLUTE_PATH = re.compile(r"^/(?:[A-Za-z0-9._-]+/?)*$")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeValue(InputError):
    """A value that cannot be written into a Containerfile as it is."""


def _refuse(what: str, value: str) -> UnsafeValue:
    return UnsafeValue(f"{what} {value!r:.120} cannot go into a Containerfile")


def quote(value: str, what: str = "value") -> str:
    """`value` as one literal Containerfile word: single-quoted runs, `'` as "'"."""
    if _CONTROL.search(value):
        raise UnsafeValue(f"{what} holds a control character (newline, tab...): {value!r:.120}")
    parts = value.split("'")
    return '"\'"'.join(f"'{part}'" for part in parts)


def exec_form(argv: Sequence[str], what: str) -> str:
    if not argv or any(not isinstance(arg, str) or "\x00" in arg for arg in argv):
        raise UnsafeValue(f"{what}: an exec-form command needs non-empty strings without NUL")
    return json.dumps(list(argv), ensure_ascii=True)


class Containerfile:
    """Instructions appended one by one; `render()` gives the text."""

    def __init__(self, base_image: str) -> None:
        if not _IMAGE.fullmatch(base_image):
            raise _refuse("base image", base_image)
        self._lines = [f"FROM {base_image}"]

    def workdir(self, path: str) -> None:
        self._lines.append(f"WORKDIR {self._path(path)}")

    def copy(self, sources: Sequence[str], dest: str) -> None:
        """COPY named files (plain names at the context's root) or `.` into `dest`."""
        for source in sources:
            if source != "." and not _SOURCE_NAME.fullmatch(source):
                raise _refuse("COPY source", source)
        self._lines.append(f"COPY {json.dumps([*sources, self._path(dest)])}")

    def run(self, argv: Sequence[str]) -> None:
        self._lines.append(f"RUN {exec_form(argv, 'RUN')}")

    def env(self, variables: Mapping[str, str]) -> None:
        """One ENV instruction for all of `variables` (one layer, not one per variable)."""
        words = []
        for name, value in variables.items():
            if not _ENV_NAME.fullmatch(name):
                raise _refuse("environment variable name", name)
            words.append(f"{name}={quote(value, f'environment variable {name}')}")
        if words:
            self._lines.append(f"ENV {' '.join(words)}")

    def label(self, labels: Mapping[str, str]) -> None:
        words = []
        for key, value in labels.items():
            if not _LABEL_KEY.fullmatch(key):
                raise _refuse("label", key)
            words.append(f"{quote(key)}={quote(value, f'label {key}')}")
        if words:
            self._lines.append(f"LABEL {' '.join(words)}")

    def expose(self, port: int) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _refuse("port", str(port))
        self._lines.append(f"EXPOSE {port}")

    def cmd(self, argv: Sequence[str]) -> None:
        self._lines.append(f"CMD {exec_form(argv, 'CMD')}")

    def render(self) -> str:
        for line in self._lines:  # the invariant the methods keep, checked once more
            assert "\n" not in line and "\r" not in line
        return "\n".join(self._lines) + "\n"

    @staticmethod
    def _path(path: str) -> str:
        if not _ABSOLUTE_PATH.fullmatch(path) or ".." in path.split("/"):
            raise _refuse("path", path)
        return path
