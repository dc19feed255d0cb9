"""Fault injection: the spec language, and each kind of fault at each place."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NoReturn

import pytest
from sagactl.engine.api import Engine
from sagactl.engine.errors import InputError
from sagactl.engine.faults import CRASH_EXIT_CODE, Fault, FaultPlan

from .sagas import FakeClock, Journal, Step, make_saga

CHAIN = {"a": [], "b": ["a"], "c": ["b"]}


class TestParse:
    def test_every_form_parses(self) -> None:
        """KIND error/crash/delay=S with optional @before/@after, comma separated."""
        plan = FaultPlan.parse("a:error, b:crash@after,c:delay=1.5@before,d:delay=0")
        assert plan.faults == (
            Fault("a", "error", "before"),
            Fault("b", "crash", "after"),
            Fault("c", "delay", "before", 1.5),
            Fault("d", "delay", "before", 0.0),
        )
        assert str(plan.faults[2]) == "c:delay=1.5@before"

    @pytest.mark.parametrize(
        "spec",
        [
            "a",
            "a:explode",
            "a:error@later",
            ":error",
            "a:delay=",
            "a:delay=x",
            "a:delay=-1",
            "a:delay=inf",
            "a:crash@",
        ],
    )
    def test_bad_specs_are_input_errors(self, spec: str) -> None:
        """A malformed spec raises InputError quoting it."""
        with pytest.raises(InputError, match="fault"):
            FaultPlan.parse(spec)

    def test_env_and_flags_combine(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """SAGACTL_FAULTS and --fault values both count."""
        monkeypatch.setenv("SAGACTL_FAULTS", "a:error")
        plan = FaultPlan.from_env(["b:crash"])
        assert [f.action for f in plan.faults] == ["a", "b"]
        assert plan.at("a", "before") and not plan.at("a", "after")


class Exited(BaseException):
    pass


def fake_exit(code: int) -> NoReturn:
    raise Exited(code)


@pytest.mark.anyio
class TestInjection:
    async def test_error_fails_every_attempt(self, db: str) -> None:
        """An error fault fails each attempt before the action runs; the saga compensates."""
        journal = Journal()
        saga = make_saga(CHAIN, attempts=3)
        async with Engine(
            db, actions={"step": Step(journal)}, faults="b:error", clock=FakeClock()
        ) as engine:
            result = await engine.run(saga)
        assert journal.names("execute") == ["a"]
        assert result.state == "compensated" and result.actions["b"].attempts == 3
        assert result.code == "injected_fault"

    async def test_error_after_runs_the_action_but_logs_no_completion(self, db: str) -> None:
        """@after: the action ran, yet its completion is not logged."""
        journal = Journal()
        async with Engine(db, actions={"step": Step(journal)}, faults="b:error@after") as engine:
            result = await engine.run(make_saga(CHAIN))
        assert journal.names("done") == ["a", "b"]
        assert result.actions["b"].state == "failed" and result.actions["b"].outputs is None

    async def test_delay_sleeps_on_the_clock(self, db: str) -> None:
        """delay=S waits S seconds (on the injected clock) and then runs the action."""
        clock = FakeClock()
        async with Engine(
            db, actions={"step": Step(Journal())}, faults="a:delay=2.5", clock=clock
        ) as engine:
            result = await engine.run(make_saga(CHAIN))
        assert result.ok and clock.sleeps == [2.5]

    async def test_crash_exits_the_process(self, db: str) -> None:
        """crash calls the exit function with the crash exit code."""
        async with Engine(
            db, actions={"step": Step(Journal())}, faults="b:crash", exit=fake_exit
        ) as engine:
            with pytest.raises(BaseException) as caught:
                await engine.run(make_saga(CHAIN))
        leaves = (
            caught.value.exceptions
            if isinstance(caught.value, BaseExceptionGroup)
            else [caught.value]
        )
        assert [type(e) for e in leaves] == [Exited] and leaves[0].args == (CRASH_EXIT_CODE,)

    async def test_fault_on_unknown_action_is_refused(self, db: str) -> None:
        """A fault naming an action the saga does not have is bad input."""
        async with Engine(db, actions={"step": Step(Journal())}, faults="zz:error") as engine:
            with pytest.raises(InputError, match="zz"):
                await engine.run(make_saga(CHAIN))


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from sagas import Journal, Step, make_saga
    from sagactl.engine.sync import resume_run, run_saga

    saga = make_saga({{"a": [], "b": ["a"], "c": ["b"]}})
    actions = {{"step": Step(Journal())}}
    if sys.argv[1] == "run":
        run_saga(saga, db=sys.argv[2], actions=actions, run_id="r", faults=sys.argv[3])
    else:
        print(resume_run("r", db=sys.argv[2], actions=actions).state)
    """
)


@pytest.mark.slow
class TestRealCrash:
    @pytest.mark.parametrize("when", ["before", "after"])
    def test_crash_fault_kills_the_process_and_resume_recovers(
        self, tmp_path: Path, when: str
    ) -> None:
        """A real os._exit at b, then a resume without faults: the run succeeds."""
        script = tmp_path / "drive.py"
        script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
        db = str(tmp_path / "runs.db")
        crashed = subprocess.run(
            [sys.executable, str(script), "run", db, f"b:crash@{when}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
        resumed = subprocess.run(
            [sys.executable, str(script), "resume", db], capture_output=True, text=True, timeout=60
        )
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == "succeeded"
