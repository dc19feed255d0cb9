"""A cancel scope shielding its body, cheap enough for every commit."""

from __future__ import annotations

import asyncio
import functools

import anyio


def shielded() -> anyio.CancelScope:
    """`anyio.CancelScope(shield=True)`, made directly from the asyncio backend's class
    on asyncio: `anyio.CancelScope(...)` asks sniffio for the backend on every call (and
    runs `__init__` twice)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # another backend (trio)
        return anyio.CancelScope(shield=True)
    return _asyncio_cancel_scope()(shield=True)


@functools.cache
def _asyncio_cancel_scope() -> type[anyio.CancelScope]:
    """anyio's cancel scope class on asyncio (found once, while asyncio runs)."""
    return type(anyio.CancelScope())
