"""Fixtures of the telemetry tests: an OTLP receiver, the CLI runner of tests/cli."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..cli.conftest import cli as cli
from .otlp import OtlpReceiver


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r
