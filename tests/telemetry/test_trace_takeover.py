"""One trace across a worker takeover on PostgreSQL: the first worker is SIGKILLed inside an
action, the second takes the run over after the lease; both export to one receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sagactl.engine.api import Engine
from sagactl.engine.store.postgres import PostgresStore
from sagactl.engine.tracing import segment_span_id_of, trace_id_of

from ..workers.conftest import pg_url as pg_url
from ..workers.conftest import wait_for
from ..workers.effects import ACTIONS, LOG_ENV, chain_saga
from .otlp import OtlpReceiver, otel_env

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

PROC = Path(__file__).parent.parent / "workers" / "worker_proc.py"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Workers:
    """Worker processes (workers/worker_proc.py) exporting to the test's receiver, with a
    1.5 s lease and the effects log shared by all; any still running is killed at the end."""

    def __init__(self, pg_url: str, tmp_path: Path, receiver: OtlpReceiver) -> None:
        self.pg_url, self.tmp_path = pg_url, tmp_path
        self.effects = tmp_path / "effects.log"
        self.env = dict(os.environ, SAGACTL_LEASE="1.5", **{LOG_ENV: str(self.effects)})
        self.env.update(otel_env(receiver.endpoint))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        out = (self.tmp_path / f"w{len(self.procs)}.out").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-P", str(PROC), self.pg_url, "2", "0.2"],
            stdout=out,
            stderr=out,
            env=self.env,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def in_slow(self, run_id: str, proc: subprocess.Popen[bytes]) -> bool:
        """Whether `proc` has started the run's `slow` action."""
        text = self.effects.read_text() if self.effects.exists() else ""
        return f"{run_id} slow {proc.pid} started" in text

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(pg_url: str, tmp_path: Path, receiver: OtlpReceiver) -> Iterator[Workers]:
    found = Workers(pg_url, tmp_path, receiver)
    try:
        yield found
    finally:
        found.kill_all()


async def test_one_trace_across_a_takeover(
    pg_url: str, workers: Workers, receiver: OtlpReceiver
) -> None:
    """Spans of both workers share the run's trace id; the attempt spans match the
    attempts the log saw end; the run's span comes from the worker that finished it."""
    start = workers.start

    try:
        async with Engine(pg_url, actions=ACTIONS) as engine:
            store = engine.store
            assert isinstance(store, PostgresStore)
            first = start()
            run_id = await engine.start(chain_saga(("a", 0), ("slow", 2.0), ("c", 0)))

            async def in_slow() -> bool:
                return workers.in_slow(run_id, first) and bool(receiver.named("action a"))

            await wait_for(in_slow, within=30)
            first.kill()
            first.wait()
            second = start()

            async def finished() -> bool:
                return (await store.get_run(run_id)).state == "succeeded"

            await wait_for(finished, within=60, every=0.1)
            record = await store.get_run(run_id)
            events = await store.read_log(run_id)
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0
    finally:
        workers.kill_all()

    trace_id = trace_id_of(run_id)
    assert record.trace_id == trace_id
    spans = receiver.received()
    assert spans and {s.trace_id for s in spans} == {trace_id}
    attempts = [s for s in spans if s.name.startswith("action ")]
    ended = Counter(
        e.action for e in events if e.kind in ("action_succeeded", "action_failed") and e.action
    )
    assert Counter(s.attributes["sagactl.action"] for s in attempts) == ended
    # The killed worker's segment (claim 1) is exported by the worker that took over,
    # rebuilt from the log; the taker's own is segment 2. The trace is whole.
    segments = {s.attributes["sagactl.segment"]: s for s in receiver.named("saga chain")}
    assert sorted(segments) == [1, 2]
    lost, taker = segments[1], segments[2]
    assert lost.span_id == f"{segment_span_id_of(run_id, 1):016x}"
    assert lost.attributes["sagactl.recovered"] is True and lost.status == "process lost"
    assert taker.attributes["sagactl.entry_state"] == "running"
    assert "sagactl.recovered" not in taker.attributes
    ids = {s.span_id for s in spans}
    (run_span,) = receiver.named("run chain")
    assert all(s.parent_id in ids for s in spans if s is not run_span)
    assert lost.parent_id == taker.parent_id == run_span.span_id
    (slow,) = receiver.named("action slow")
    assert slow.parent_id == taker.span_id and slow.attributes["sagactl.attempt"] == 2
    (a,) = receiver.named("action a")
    assert a.parent_id == lost.span_id
    assert run_span.attributes["sagactl.outcome"] == "succeeded"
    first_opening = next(e for e in events if e.data.get("segment") == 1)
    assert lost.start == pytest.approx(first_opening.at, abs=1e-6)


async def test_a_live_loser_leaves_its_segment_to_the_taker(
    pg_url: str, workers: Workers, receiver: OtlpReceiver
) -> None:
    """A worker paused past its lease, then resumed, finds the run taken over (its
    heartbeat cancels the run there): the taker exports the loser's segment span, rebuilt
    from the log, and the loser does not, so each span id reaches the receiver once."""
    start = workers.start

    try:
        async with Engine(pg_url, actions=ACTIONS) as engine:
            store = engine.store
            assert isinstance(store, PostgresStore)
            stale = start()
            # `slow` outlasts the pause: the resumed worker is still inside it when its
            # heartbeat finds the lease gone (the path that cancels the run there).
            run_id = await engine.start(chain_saga(("a", 0), ("slow", 4.0), ("c", 0)))

            async def in_slow() -> bool:
                return workers.in_slow(run_id, stale)

            await wait_for(in_slow, within=30)
            stale.send_signal(signal.SIGSTOP)
            stale_owner = (await store.get_run(run_id)).owner
            fresh = start()

            async def taken() -> bool:
                return (await store.get_run(run_id)).owner not in (None, stale_owner)

            await wait_for(taken, within=30)
            stale.send_signal(signal.SIGCONT)

            async def finished() -> bool:
                return (await store.get_run(run_id)).state == "succeeded"

            await wait_for(finished, within=60, every=0.1)
            for proc in (stale, fresh):
                proc.send_signal(signal.SIGTERM)  # both flush their spans on the way out
                assert proc.wait(timeout=30) == 0
    finally:
        workers.kill_all()

    spans = receiver.received()
    (lost_slow,) = [
        s for s in receiver.named("action slow") if s.attributes["sagactl.attempt"] == 1
    ]
    assert lost_slow.attributes["sagactl.outcome"] == "cancelled"  # by the loser's heartbeat
    segments = [s for s in receiver.named("saga chain") if s.attributes["sagactl.segment"] == 1]
    assert len(segments) == 1 and segments[0].attributes["sagactl.recovered"] is True
    assert lost_slow.parent_id == segments[0].span_id
    ids = Counter(s.span_id for s in spans)
    assert [span for span, n in ids.items() if n > 1] == []


async def test_the_rebuilt_segment_is_posted_at_once(
    pg_url: str, workers: Workers, receiver: OtlpReceiver
) -> None:
    """The taker posts the lost segment's span as soon as it rebuilds it, not after its
    batch delay (an hour here): killed later, before that delay, it has still sent it."""
    workers.env.update(OTEL_BSP_SCHEDULE_DELAY="3600000")
    start = workers.start

    try:
        async with Engine(pg_url, actions=ACTIONS) as engine:
            first = start()
            run_id = await engine.start(chain_saga(("a", 0), ("slow", 60.0), ("c", 0)))

            async def first_in_slow() -> bool:
                return workers.in_slow(run_id, first)

            await wait_for(first_in_slow, within=30)
            first.kill()
            first.wait()
            taker = start()

            async def rebuilt() -> bool:
                return any(s.attributes.get("sagactl.segment") == 1 for s in receiver.named("saga"))

            await wait_for(rebuilt, within=30)
            assert taker.poll() is None  # sent while it runs, not on its way out
            taker.kill()  # nothing more leaves it: what it had not posted is lost
            taker.wait()
    finally:
        workers.kill_all()

    (lost,) = receiver.named("saga chain")
    assert lost.attributes["sagactl.recovered"] is True
    assert lost.span_id == f"{segment_span_id_of(run_id, 1):016x}"
