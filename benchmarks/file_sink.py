"""The upload baseline: a plain HTTP server writing each request body to a file.

    python file_sink.py PORT PATH

Reads the body in 1 MiB chunks, writes it to PATH, fsyncs, answers 200: what a server
must do at least to take an upload durably. Standard library only.
"""

from __future__ import annotations

import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

CHUNK = 1 << 20


class Sink(BaseHTTPRequestHandler):
    path_out = ""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        remaining = int(self.headers["content-length"])
        with open(self.path_out, "wb") as out:
            while remaining:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:
                    break
                out.write(chunk)
                remaining -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    Sink.path_out = sys.argv[2]
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
