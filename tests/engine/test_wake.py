"""`Wake`: one task's wake-up, a bare future on asyncio, an anyio event on trio."""

from __future__ import annotations

import anyio
import pytest
from sagactl.engine.wake import Wake


async def _woken_by_another_task() -> list[str]:
    noted: list[str] = []
    wake = Wake.here()

    async def waiter() -> None:
        await wake.wait()
        noted.append("woken")

    async with anyio.create_task_group() as group:
        group.start_soon(waiter)
        await anyio.sleep(0.01)
        noted.append("set")
        wake.set()
    return noted


async def _set_before_the_wait() -> bool:
    wake = Wake.here()
    wake.set()
    with anyio.fail_after(1):
        await wake.wait()
    return True


async def _cancelled_waiter_then_set() -> bool:
    wake = Wake.here()
    with anyio.move_on_after(0.01) as scope:
        await wake.wait()
    wake.set()  # nobody waits any more: harmless
    return scope.cancelled_caught


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
class TestWake:
    def test_a_waiter_is_woken(self, backend: str) -> None:
        assert anyio.run(_woken_by_another_task, backend=backend) == ["set", "woken"]

    def test_set_before_the_wait_does_not_block(self, backend: str) -> None:
        assert anyio.run(_set_before_the_wait, backend=backend)

    def test_a_cancelled_waiter_leaves_set_harmless(self, backend: str) -> None:
        assert anyio.run(_cancelled_waiter_then_set, backend=backend)
