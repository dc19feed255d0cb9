"""The live view's board: events never draw it, and it is cut to the terminal's height."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import TextColumn
from sagactl.engine.cli.board import Board, left_off, window


def _board(rows: int, height: int) -> tuple[Board, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=60, height=height)
    board = Board(TextColumn("{task.description}"), console=console, auto_refresh=False)
    for i in range(rows):
        board.add_task(f"a{i:03d}", start=False)
    return board, out


def _drawn(board: Board) -> str:
    out = io.StringIO()
    Console(file=out, width=60).print(board.get_renderable())
    return out.getvalue()


class TestBoard:
    def test_events_do_not_draw(self) -> None:
        """Changing, resetting and adding rows writes nothing: only the refresh thread
        (or stop) draws."""
        board, out = _board(5, height=20)
        board.start()
        started = len(out.getvalue())
        for task in board.task_ids:
            board.reset(task, start=True)
            board.touch(task, "running")
        board.add_task("late")
        assert len(out.getvalue()) == started
        board.stop()
        assert "late" in out.getvalue()[started:]  # the last draw shows everything

    def test_a_board_that_fits_shows_every_row(self) -> None:
        board, _ = _board(5, height=20)
        drawn = _drawn(board).splitlines()
        assert [line.strip() for line in drawn] == [f"a{i:03d}" for i in range(5)]

    def test_a_tall_board_shows_what_matters_and_counts_the_rest(self) -> None:
        """300 rows on 12 lines: the running and failed rows, the latest finished, the
        next pending, then one line counting the others by state."""
        board, _ = _board(300, height=12)
        tasks = board.task_ids
        for task in tasks[:200]:
            board.touch(task, "succeeded")
        board.touch(tasks[3], "failed")
        board.touch(tasks[200], "running")
        drawn = [line.strip() for line in _drawn(board).splitlines()]
        assert len(drawn) == 10
        assert drawn[-1] == "… 291 more: 96 pending, 195 succeeded"
        rows = drawn[:-1]
        assert rows[0] == "a003" and "a200" in rows  # in trouble, under way
        assert "a199" in rows and "a201" in rows  # latest finished, next pending
        assert rows == sorted(rows)  # in the board's order

    def test_window_and_left_off_on_their_own(self) -> None:
        board, _ = _board(4, height=20)
        tasks = board.tasks
        assert window(tasks, 2) == tasks[:2]  # all pending: the first ones
        assert left_off(tasks[2:]) == "… 2 more: 2 pending"
