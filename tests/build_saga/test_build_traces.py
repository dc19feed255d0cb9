"""A traced build: build_image's attempt span holds one span per builder step (the real
embedded OCI builder), exported to a real OTLP/HTTP receiver on loopback."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from sagactl.actions.build_from_tar.entry import build_from_tar_async
from sagactl.engine.tracing import trace_id_of
from tars import tar_of_dir

from ..telemetry.otlp import OtlpReceiver, otel_env

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_builder_steps_are_spans(
    tmp_path: Path, deps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        for name, value in otel_env(receiver.endpoint).items():
            monkeypatch.setenv(name, value)
        data = tar_of_dir(EXAMPLES / "static-site")
        result = await build_from_tar_async(
            "traced", io.BytesIO(data), deps=deps, db=f"sqlite://{tmp_path / 'runs.db'}"
        )
        assert result.state == "succeeded"
        end = time.monotonic() + 20
        while not receiver.named("run build-from-tar") and time.monotonic() < end:  # noqa: ASYNC110
            await anyio.sleep(0.05)
        spans = receiver.received()
    assert {s.trace_id for s in spans} == {trace_id_of(result.run_id)}
    (attempt,) = [s for s in spans if s.name == "action build_image"]
    steps = [s for s in spans if s.name.startswith("build step ")]
    assert steps and {s.parent_id for s in steps} == {attempt.span_id}
    assert [s.attributes["sagactl.step"] for s in steps] == list(range(1, len(steps) + 1))
    assert any(s.name.startswith("build step oci: wrote ") for s in steps)
    assert {s.attributes["sagactl.builder"] for s in steps} == {"oci"}
