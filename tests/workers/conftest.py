"""Fixtures of the worker tests: a fresh schema on the PostgreSQL server under test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import anyio
import pytest

from ..store.conftest import pg_schema


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty schema of our test database (skips when no server answers)."""
    with pg_schema("w") as url:
        yield url


T = TypeVar("T")


async def wait_for(check: Callable[[], Awaitable[T]], *, within: float, every: float = 0.05) -> T:
    """The first truthy value of `check()`, asked every `every` s; TimeoutError after `within`.

    State lives in the database and in other processes: asking is the event source here.
    """
    with anyio.fail_after(within):
        while not (value := await check()):  # noqa: ASYNC110
            await anyio.sleep(every)
        return value
