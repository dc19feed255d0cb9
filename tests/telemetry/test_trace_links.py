"""Retries are linked, actions' own spans nest under their attempt: an in-process engine
exporting to the loopback OTLP receiver."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from sagactl.engine import Action, ActionContext, ActionSpec, CompiledSaga, Engine, RetryPolicy
from sagactl.engine.otel import OtelTracing

from .otlp import OtlpReceiver, otel_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FlakyWithSteps(Action):
    """Fails its first attempt; then does two steps, each in a span of its own."""

    def __init__(self) -> None:
        self.calls = 0

    async def execute(self, ctx: ActionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("the remote hung up")
        for step in ("fetch", "unpack"):
            with ctx.tracer.start_as_current_span(step) as span:
                span.set_attribute("step", step)
        return {}


def saga() -> CompiledSaga:
    spec = ActionSpec(
        name="flaky",
        uses="flaky",
        retry=RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.01),
    )
    return CompiledSaga(name="links", version=1, actions={"flaky": spec})


async def test_retry_links_and_action_spans(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 2 links to attempt 1, which records the error; ctx.tracer's spans are
    children of attempt 2."""
    for name, value in otel_env(receiver.endpoint).items():
        monkeypatch.setenv(name, value)
    async with Engine(tmp_path / "runs.db", actions={"flaky": FlakyWithSteps()}) as engine:
        result = await engine.run(saga())
        tracing = engine.options.tracing
        assert isinstance(tracing, OtelTracing)
        tracing.flush()
    assert result.state == "succeeded"
    first, second = sorted(
        receiver.named("action flaky"), key=lambda s: s.attributes["sagactl.attempt"]
    )
    assert first.error and first.exception and first.attributes["sagactl.outcome"] == "failed"
    assert second.links == [(first.trace_id, first.span_id)]
    assert second.attributes["sagactl.attempt"] == 2
    steps = {s.name: s for s in receiver.received() if s.name in ("fetch", "unpack")}
    assert {s.parent_id for s in steps.values()} == {second.span_id}
    assert steps["fetch"].attributes == {"step": "fetch"}


async def test_noop_tracer_when_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint: the engine holds no tracing and ctx.tracer's spans cost nothing."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    action = FlakyWithSteps()
    async with Engine(tmp_path / "runs.db", actions={"flaky": action}) as engine:
        assert engine.options.tracing is None
        result = await engine.run(saga())
    assert result.state == "succeeded" and action.calls == 2


@pytest.mark.parametrize(
    ("sampler", "kept"),
    [("always_off", False), ("traceidratio", False), ("parentbased_always_on", True)],
)
async def test_the_configured_sampler_decides(
    tmp_path: Path,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    sampler: str,
    kept: bool,
) -> None:
    """`OTEL_TRACES_SAMPLER` rules the engine's spans too: none when it samples nothing
    (a ratio of 0), every one by default."""
    for name, value in otel_env(receiver.endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    async with Engine(tmp_path / "runs.db", actions={"flaky": FlakyWithSteps()}) as engine:
        result = await engine.run(saga())
        tracing = engine.options.tracing
        assert isinstance(tracing, OtelTracing)
        tracing.flush()
    assert result.state == "succeeded"
    names = sorted({s.name for s in receiver.received()})
    expected = ["action flaky", "fetch", "run links", "saga links", "unpack"]
    assert names == (expected if kept else [])
