"""The tables of `status` and `list`: drawn without rich, byte for byte as rich draws them,
and by rich itself wherever it would draw them otherwise."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sagactl.engine.cli.tables import Bold, Line, console_width, print_table

HEADERS = ("action", "state", "attempts", "error or reason")
ROWS = [("next", "pending", "0", ""), ("  b[1]", "failed", "3", "Boom: no such file")]
BEFORE: list[Line] = [("run r1  saga one  ", Bold("stuck")), ("owner me",)]
AFTER: list[Line] = [('outputs: {"a": 1}',)]


class Utf8(io.StringIO):
    encoding = "utf-8"

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def ours(rows: Sequence[Sequence[str]] = ROWS, out: io.StringIO | None = None, **kw: object) -> str:
    out = Utf8() if out is None else out
    print_table(HEADERS, rows, before=BEFORE, after=AFTER, file=out, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def rich(rows: Sequence[Sequence[str]] = ROWS, *, width: int, terminal: bool = False) -> str:
    """The same lines and table, drawn by rich (the oracle)."""
    out = Utf8()
    console = Console(file=out, width=width, force_terminal=terminal)
    for pieces in [*BEFORE]:
        console.print(Text.assemble(*((p, "bold") if isinstance(p, Bold) else p for p in pieces)))
    table = Table(*HEADERS)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
    console.print(Text(AFTER[0][0]))
    return out.getvalue()


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "80")


class TestAsRichDrawsThem:
    def test_not_a_terminal(self) -> None:
        """No escape codes: the box, the columns as wide as their widest cell."""
        drawn = ours()
        assert drawn == rich(width=80)
        assert "\x1b" not in drawn and "┃ action ┃ state   ┃" in drawn

    def test_a_terminal_gets_a_bold_header(self) -> None:
        drawn = ours(out=Utf8(tty=True))
        assert drawn == rich(width=80, terminal=True)
        assert "\x1b[1mstuck\x1b[0m" in drawn

    @pytest.mark.parametrize(("name", "value"), [("FORCE_COLOR", "1"), ("TTY_COMPATIBLE", "1")])
    def test_forced_terminal(self, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        assert ours() == rich(width=80, terminal=True)

    def test_a_dumb_terminal_gets_no_escape_codes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TERM", "dumb")
        drawn = ours(out=Utf8(tty=True))
        assert "\x1b" not in drawn
        assert drawn == rich(width=80)

    def test_no_rows(self) -> None:
        assert ours(rows=[]) == rich(rows=[], width=80)


class TestRichDrawsTheRest:
    def test_a_table_wider_than_the_console_is_wrapped(self) -> None:
        """Past the console's width rich wraps the cells: drawn as rich draws it."""
        long = [("a", "failed", "1", "word " * 30)]
        drawn = ours(rows=long)
        assert drawn == rich(rows=long, width=80)
        assert max(len(line) for line in drawn.splitlines()) <= 80

    def test_a_minimum_width(self) -> None:
        """`list` draws in at least 160 columns, even in 80."""
        long = [("a", "failed", "1", "word " * 20)]
        assert ours(rows=long, min_width=160) == rich(rows=long, width=160)

    def test_wide_characters(self) -> None:
        """Text that is not printable ASCII (here two columns a character) goes to rich."""
        wide = [("a", "failed", "1", "错误 émigré")]
        assert ours(rows=wide) == rich(rows=wide, width=80)

    def test_an_output_that_cannot_encode_the_box(self) -> None:
        class Ascii(Utf8):
            encoding = "ascii"

        drawn = ours(out=Ascii())
        assert "┃" not in drawn and "| action" in drawn


def test_console_width_follows_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "123")
    assert console_width(Utf8()) == 123
    monkeypatch.setenv("TERM", "dumb")
    assert console_width(Utf8(tty=True)) == 80
