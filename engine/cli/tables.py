"""Tables for people: lines of text and a table, drawn as rich draws them (its heavy-head
box, bold header on a terminal), without importing rich, which takes longer than the
whole of `sagactl status`.

What this draws is byte for byte what rich would (`tests/cli/test_tables.py`); anything
more is handed to rich: a table or line wider than the console (rich wraps cells), text
that is not printable ASCII (wide and combining characters), an output that cannot
encode the box.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Sequence
from typing import IO

Line = Sequence[str]
"""A line of text in pieces; a `Bold` piece is bold on a terminal."""


class Bold(str):
    """Text drawn in bold on a terminal."""

    __slots__ = ()


_BOLD, _RESET = "\x1b[1m", "\x1b[0m"


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    before: Sequence[Line] = (),
    after: Sequence[Line] = (),
    min_width: int = 0,
    no_wrap: Collection[int] = (),
    file: IO[str] | None = None,
) -> None:
    """Print `before`, the table and `after` on stdout (or `file`), in a console at least
    `min_width` wide; the columns in `no_wrap` are never wrapped (when rich draws)."""
    out = sys.stdout if file is None else file
    width = max(console_width(out), min_width)
    drawn = _draw(headers, rows, before, after, width, _styled(out), out)
    if drawn is None:
        _with_rich(headers, rows, before, after, width, no_wrap, out)
    else:
        out.write(drawn)
        out.flush()


def console_width(out: IO[str]) -> int:
    """The console's width as rich finds it: the terminal's (any of stdin, stdout,
    stderr), `$COLUMNS` over it, 80 without either (and on a dumb terminal)."""
    if _is_terminal(out) and _dumb():
        return 80
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        width = int(columns)
    return width or 80


def _is_terminal(out: IO[str]) -> bool:
    """rich's test: `$TTY_COMPATIBLE`, then `$FORCE_COLOR`, then isatty."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return out.isatty()
    except ValueError:
        return False


def _dumb() -> bool:
    return os.environ.get("TERM", "").lower() in ("dumb", "unknown")


def _styled(out: IO[str]) -> bool:
    return _is_terminal(out) and not _dumb()


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _draw(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    before: Sequence[Line],
    after: Sequence[Line],
    width: int,
    styled: bool,
    out: IO[str],
) -> str | None:
    """The whole output, or None where rich must draw it."""
    if not (getattr(out, "encoding", None) or "utf-8").lower().startswith("utf"):
        return None  # rich draws an ASCII box there
    lines = [*before, *after]
    cells = [*headers, *(cell for row in rows for cell in row)]
    if not all(_plain(text) for text in [*cells, *(piece for line in lines for piece in line)]):
        return None
    if any(sum(map(len, line)) > width for line in lines):
        return None
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    if sum(widths) + 3 * len(widths) + 1 > width:
        return None
    bold = (lambda text: f"{_BOLD}{text}{_RESET}") if styled else str

    def line(pieces: Line) -> str:
        return "".join(bold(p) if isinstance(p, Bold) and p else p for p in pieces) + "\n"

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def row(cells: Sequence[str], edge: str, style: bool = False) -> str:
        # A bold header: rich styles each padding space and the padded text apart.
        pad = bold(" ") if style else " "
        padded = [c.ljust(w) for c, w in zip(cells, widths, strict=True)]
        shown = [pad + (bold(c) if style and c else c) + pad for c in padded]
        return edge + edge.join(shown) + edge + "\n"

    drawn = [line(pieces) for pieces in before]
    drawn += [rule("┏", "━", "┳", "┓"), row(headers, "┃", styled), rule("┡", "━", "╇", "┩")]
    drawn += [row(cells, "│") for cells in rows]
    drawn += [rule("└", "─", "┴", "┘")]
    drawn += [line(pieces) for pieces in after]
    return "".join(drawn)


def _with_rich(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    before: Sequence[Line],
    after: Sequence[Line],
    width: int,
    no_wrap: Collection[int],
    out: IO[str],
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(pieces: Line) -> Text:
        return Text.assemble(*((p, "bold") if isinstance(p, Bold) else p for p in pieces))

    console = Console(file=out, width=width)
    for pieces in before:
        console.print(text(pieces))
    table = Table(*headers)
    for index in no_wrap:
        table.columns[index].no_wrap = True
    for cells in rows:
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    for pieces in after:
        console.print(text(pieces))
