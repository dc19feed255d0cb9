"""A one-shot wake-up of one waiting task, cheap on asyncio."""

from __future__ import annotations

import asyncio

import anyio


class Wake:
    """Set once, awaited by one task: a bare future on asyncio (an `anyio.Event` costs an
    async-library lookup and an `asyncio.Event` of its own per use, which showed in
    profiles), an `anyio.Event` elsewhere."""

    __slots__ = ("_event", "_future")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """`loop`: the running asyncio loop; None under another backend (trio)."""
        self._future: asyncio.Future[None] | None = None
        self._event: anyio.Event | None = None
        if loop is not None:
            self._future = loop.create_future()
        else:
            self._event = anyio.Event()

    @classmethod
    def here(cls) -> Wake:
        """One for the running task's event loop, whichever backend runs it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # trio
            return cls(None)
        return cls(loop)

    def set(self) -> None:
        if self._future is not None:
            if not self._future.done():  # its waiter may have been cancelled
                self._future.set_result(None)
        else:
            assert self._event is not None
            self._event.set()

    async def wait(self) -> None:
        if self._future is not None:
            await self._future
        else:
            assert self._event is not None
            await self._event.wait()
