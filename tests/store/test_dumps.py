"""The store's JSON text: what `json.JSONEncoder.encode` gives, with its errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from sagactl.engine.store.sql import dumps

ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, allow_nan=False)


@pytest.mark.parametrize(
    "value", [{"b": 1, "a": [1.5, None, True, "é\u2028"]}, {"outputs": {}}, "text", 3, []]
)
def test_the_encoders_text(value: Any) -> None:
    assert dumps(value) == ENCODER.encode(value)


def circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("value", "error"),
    [({"x": math.nan}, ValueError), ({"x": object()}, TypeError), (circular(), ValueError)],
)
def test_the_encoders_errors(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        ENCODER.encode(value)
    with pytest.raises(error, match=str(raised.value)):
        dumps(value)
