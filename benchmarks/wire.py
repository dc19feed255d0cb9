"""A TCP proxy in front of PostgreSQL that counts round trips, for the worker benchmarks.

A round trip is a client send the client then waits on: counted when the server answers
after the client last spoke (bytes the server sends unasked, such as NOTIFY, count none).
It runs in a thread of its own, so it times nothing and the process under test pays nothing.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field


@dataclass
class _Count:
    round_trips: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class WireCounter:
    """`with WireCounter(port) as wire:` listens on `wire.port`, forwards to `port`."""

    def __init__(self, server_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.server_port = host, server_port
        self.port = 0
        self._count = _Count()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def round_trips(self) -> int:
        with self._count.lock:
            return self._count.round_trips

    def reset(self) -> None:
        with self._count.lock:
            self._count.round_trips = 0

    def __enter__(self) -> WireCounter:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()  # stopped: close the relays' sockets and the loop
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.server_port)
        asked = [False]  # the client spoke since the server last answered

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, from_client: bool
        ) -> None:
            try:
                while data := await src.read(65536):
                    if from_client:
                        asked[0] = True
                    elif asked[0]:
                        asked[0] = False
                        with self._count.lock:
                            self._count.round_trips += 1
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(
                pump(client_r, server_w, from_client=True),
                pump(server_r, client_w, from_client=False),
            )
        finally:
            client_w.close()
            server_w.close()
