"""Safe YAML loading for saga definitions: plain JSON-like data that remembers where each node was.

What it refuses, each as a DefinitionError at the offending node's `file:line:column`:
tags (`!!python/object`, even `!!str`), anchors and aliases (so no alias bomb), duplicate
keys, keys that are not strings, nesting deeper than `max_depth`, more than one document,
files over `max_bytes` (refused from their size, before any parsing).

Plain scalars are resolved as in YAML 1.2's core schema, never 1.1's: only
`true`/`false`, `null`/`~`, decimal integers and decimal floats are not strings, so
`no`, `on`, `1:20`, `0x1F` or `2024-01-01` stay the strings they look like. A plain
integer with a leading zero (`010`: octal 8 in YAML 1.1, 10 in 1.2) is refused as
ambiguous, and `.inf`/`.nan`, floats that overflow (`1e999`) and integers beyond 64 bits
are refused as not JSON. Each scalar records its source text
and whether it was quoted, so later steps can explain a type error ("`yes` is a string
here: write true").
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import yaml.events as ev

from .errors import DefinitionError, Location
from .json_values import integer_text_problem

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64

JSONPath = Sequence[str | int]
"""A path into the loaded data: mapping keys and sequence indices."""


@dataclass(frozen=True, slots=True)
class YamlScalar:
    """A scalar: its resolved value, its source text and whether it was quoted (or a block)."""

    value: str | int | float | bool | None
    text: str
    quoted: bool
    location: Location
    verbatim: bool = field(default=False, compare=False)
    """Written on one line exactly as its text (after the opening quote, if quoted)."""

    def at_offset(self, offset: int) -> Location:
        """Where the character `offset` of the text is written (the scalar's start when the
        text is not written verbatim: escapes or line folding move characters)."""
        here = self.location
        if not self.verbatim or here.column <= 0:
            return here
        return Location(here.file, here.line, here.column + offset + (1 if self.quoted else 0))


@dataclass(frozen=True, slots=True)
class YamlMapping:
    """A mapping with string keys, in file order; each entry keeps its key node."""

    entries: Mapping[str, tuple[YamlScalar, YamlNode]]
    location: Location


@dataclass(frozen=True, slots=True)
class YamlSequence:
    items: tuple[YamlNode, ...]
    location: Location


YamlNode = YamlScalar | YamlMapping | YamlSequence


@dataclass(frozen=True)
class YamlDocument:
    """A loaded file: the node tree, and the same content as plain Python data in `data`."""

    file: str
    root: YamlNode
    data: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", plain(self.root))

    def node_at(self, path: JSONPath) -> YamlNode | None:
        """The node at `path`, or None when the path leaves the tree."""
        node: YamlNode = self.root
        for step in path:
            child = _child(node, step)
            if child is None:
                return None
            node = child
        return node

    def locate(self, path: JSONPath, *, key: bool = False) -> Location:
        """Where `path` is; with `key`, where the last step's key is written.

        A path that leaves the tree locates its deepest existing node, so an error about a
        missing key points at the mapping that lacks it.
        """
        node: YamlNode = self.root
        for index, step in enumerate(path):
            if key and index == len(path) - 1 and isinstance(node, YamlMapping):
                entry = node.entries.get(step) if isinstance(step, str) else None
                return entry[0].location if entry else node.location
            child = _child(node, step)
            if child is None:
                return node.location
            node = child
        return node.location


def _child(node: YamlNode, step: str | int) -> YamlNode | None:
    if isinstance(node, YamlMapping) and isinstance(step, str):
        entry = node.entries.get(step)
        return entry[1] if entry else None
    if isinstance(node, YamlSequence) and isinstance(step, int) and 0 <= step < len(node.items):
        return node.items[step]
    return None


def plain(node: YamlNode) -> Any:
    """The node as plain dicts, lists and scalars."""
    if isinstance(node, YamlScalar):
        return node.value
    if isinstance(node, YamlSequence):
        return [plain(item) for item in node.items]
    return {name: plain(value) for name, (_, value) in node.entries.items()}


def load_yaml(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> YamlDocument:
    """Load one YAML file safely; every refusal is a DefinitionError naming `path`."""
    file = os.fspath(path)
    try:
        size = os.stat(file).st_size
        if size > max_bytes:
            raise DefinitionError(_too_big(size, max_bytes), Location(file))
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise DefinitionError(f"cannot read: {exc.strerror or exc}", Location(file)) from None
    return load_yaml_bytes(raw, file=file, max_bytes=max_bytes, max_depth=max_depth)


def load_yaml_bytes(
    raw: bytes, *, file: str = "<string>", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> YamlDocument:
    """Load YAML from UTF-8 bytes (a BOM is allowed)."""
    if len(raw) > max_bytes:
        raise DefinitionError(_too_big(len(raw), max_bytes), Location(file))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DefinitionError("not UTF-8 text", Location(file, line, column)) from None
    return load_yaml_text(text, file=file, max_bytes=max_bytes, max_depth=max_depth)


def load_yaml_text(
    text: str, *, file: str = "<string>", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> YamlDocument:
    """Load YAML from a string."""
    if len(text) > max_bytes:
        raise DefinitionError(_too_big(len(text), max_bytes), Location(file))
    parser = _parser(text)
    try:
        root = _Composer(file, max_depth).document(_events(parser))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        if "nesting depth" in problem:  # PyYAML >= 6.0.4 stops deep nesting in its scanner
            raise DefinitionError(f"nested deeper than {max_depth} levels", location) from None
        raise DefinitionError(f"invalid YAML: {problem}", location) from None
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DefinitionError(f"invalid YAML: {first_line}", Location(file)) from None
    finally:
        parser.dispose()
    return YamlDocument(file, root)


def _too_big(size: int, limit: int) -> str:
    mib = 1024 * 1024
    return f"file is {size / mib:.1f} MiB; a definition may be at most {limit / mib:g} MiB"


def _parser(text: str) -> Any:
    """libyaml's event parser when PyYAML has it (much faster), else PyYAML's own.

    Only the event stream is used: composing, tag handling and scalar resolution are ours.
    """
    try:
        from yaml._yaml import CParser
    except ImportError:
        return _PyParser(text)
    return CParser(text)


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)

    def dispose(self) -> None:
        yaml.parser.Parser.dispose(self)


def _events(parser: Any) -> Iterator[ev.Event]:
    while parser.check_event():
        yield parser.get_event()


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_NOT_JSON = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


class _Composer:
    """Builds our node tree from parser events, refusing what a definition must not contain."""

    def __init__(self, file: str, max_depth: int) -> None:
        self.file = file
        self.max_depth = max_depth

    def _loc(self, event: ev.Event) -> Location:
        mark = event.start_mark
        if mark is None:  # both parsers always set it; kept for the type checker
            return Location(self.file)
        return Location(self.file, mark.line + 1, mark.column + 1)

    def _fail(self, message: str, event: ev.Event) -> DefinitionError:
        return DefinitionError(message, self._loc(event))

    def document(self, events: Iterator[ev.Event]) -> YamlNode:
        next(events)  # StreamStart
        event = next(events)
        if isinstance(event, ev.StreamEndEvent):
            raise self._fail("the file is empty: expected a saga definition", event)
        root = self.node(next(events), events, 1)
        next(events)  # DocumentEnd
        event = next(events)
        if not isinstance(event, ev.StreamEndEvent):
            raise self._fail("only one YAML document is allowed per file (found '---')", event)
        return root

    def node(self, event: ev.Event, events: Iterator[ev.Event], depth: int) -> YamlNode:
        if isinstance(event, ev.AliasEvent):
            raise self._fail(
                f"YAML aliases (*{event.anchor}) are not allowed: write the value out", event
            )
        assert isinstance(event, ev.NodeEvent)
        if event.anchor is not None:
            raise self._fail(
                f"YAML anchors (&{event.anchor}) are not allowed: write the value out", event
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise self._fail(f"YAML tags ({_show_tag(tag)}) are not allowed", event)
        if isinstance(event, ev.ScalarEvent):
            return self.scalar(event)
        if depth > self.max_depth:
            raise self._fail(f"nested deeper than {self.max_depth} levels", event)
        if isinstance(event, ev.SequenceStartEvent):
            items: list[YamlNode] = []
            for item in events:
                if isinstance(item, ev.SequenceEndEvent):
                    break
                items.append(self.node(item, events, depth + 1))
            return YamlSequence(tuple(items), self._loc(event))
        assert isinstance(event, ev.MappingStartEvent)
        entries: dict[str, tuple[YamlScalar, YamlNode]] = {}
        for key_event in events:
            if isinstance(key_event, ev.MappingEndEvent):
                break
            key = self.node(key_event, events, depth + 1)
            if not isinstance(key, YamlScalar) or not isinstance(key.value, str):
                raise DefinitionError(_bad_key(key), key.location)
            if key.value in entries:
                first = entries[key.value][0].location
                raise DefinitionError(
                    f"duplicate key '{key.value}' (first at line {first.line})", key.location
                )
            entries[key.value] = (key, self.node(next(events), events, depth + 1))
        return YamlMapping(entries, self._loc(event))

    def scalar(self, event: ev.ScalarEvent) -> YamlScalar:
        text = event.value
        location = self._loc(event)
        verbatim = _verbatim(event)
        if not event.implicit[0]:  # quoted or block: always a string
            return YamlScalar(text, text, True, location, verbatim)
        return YamlScalar(_resolve(text, location), text, False, location, verbatim)


def _verbatim(event: ev.ScalarEvent) -> bool:
    """A plain or quoted scalar on one line whose source is its text, character for character."""
    start, end = event.start_mark, event.end_mark
    if start is None or end is None or event.style not in (None, "", "'", '"'):
        return False
    quotes = 2 if event.style in ("'", '"') else 0
    return start.line == end.line and end.column - start.column == len(event.value) + quotes


def _resolve(text: str, location: Location) -> str | int | float | bool | None:
    """YAML 1.2 core resolution of a plain scalar, refusing what 1.1 would read differently."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _INT.fullmatch(text):
        problem = integer_text_problem(text)
        if problem:
            raise DefinitionError(f"{_clip(text)}: {problem}", location)
        return int(text)
    if _LEADING_ZERO.fullmatch(text):
        digits = text.lstrip("+-")
        octal = f"octal {int(digits, 8)} in YAML 1.1, " if set(digits) <= set("01234567") else ""
        raise DefinitionError(
            f"'{text}' is ambiguous ({octal}{int(digits)} in YAML 1.2): write it without "
            f'the leading zero, or quote it ("{text}") for a string',
            location,
        )
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise DefinitionError(
                f"'{_clip(text)}' is beyond the range of a JSON number (a double): "
                f'quote it ("{_clip(text)}") for a string',
                location,
            )
        return value
    if _NOT_JSON.fullmatch(text):
        raise DefinitionError(
            f"'{text}' is not a JSON number: quote it (\"{text}\") for a string", location
        )
    return text


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _bad_key(key: YamlNode) -> str:
    if isinstance(key, YamlScalar):
        kind = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}
        return (
            f"key {key.text or '(empty)'} is {kind[type(key.value)]}: keys must be strings "
            f'(quote it: "{key.text}")'
        )
    return "keys must be strings, not a mapping or a list"


def _show_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")
