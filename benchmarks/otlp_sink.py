"""An OTLP/HTTP endpoint that accepts every export, in a process of its own.

The telemetry benchmark posts its spans here: receiving them is a collector's work, so it
runs outside the engine's process, whose CPU time is what the benchmark bills to tracing.
It speaks HTTP/1.1 and keeps connections open, as collectors do.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Accept(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def otlp_sink() -> Iterator[str]:
    """The endpoint's URL while a sink process runs."""
    with subprocess.Popen([sys.executable, __file__], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.kill()


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
