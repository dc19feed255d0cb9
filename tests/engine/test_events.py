"""`new_record`: the scheduler's cheap way to make an `Event`, the same as the constructor's."""

from __future__ import annotations

import dataclasses

import pytest
from sagactl.engine.events import Event, EventKind, new_record


class TestNewRecord:
    def test_it_is_the_event_the_constructor_makes(self) -> None:
        made = new_record("r-1", EventKind.ACTION_STARTED, "a", {"attempt": 1}, 12.5)
        built = Event("r-1", EventKind.ACTION_STARTED, "a", {"attempt": 1}, 12.5)
        assert type(made) is Event and made == built and repr(made) == repr(built)
        assert dataclasses.astuple(made) == (
            "r-1",
            EventKind.ACTION_STARTED,
            "a",
            {"attempt": 1},
            12.5,
            0,
        )

    def test_it_is_frozen_like_any_event(self) -> None:
        made = new_record("r-1", EventKind.RUN_STARTED, None, {}, 1.0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            made.seq = 2  # type: ignore[misc]
        assert dataclasses.replace(made, seq=2).seq == 2
