"""A real `sagactl serve` process on a free port, with its own store and build directory
(the helpers the server tests import by name; the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SAGACTL = str(Path(sys.executable).with_name("sagactl"))
TESTS = Path(__file__).resolve().parents[1]
EXAMPLES = TESTS.parent / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One `sagactl serve` process; `restart` keeps its store and build directory."""

    env: dict[str, str]
    args: list[str]
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def build_dir(self) -> Path:
        return Path(self.env["SAGACTL_BUILD_DIR"])

    def start(self, **extra_env: str) -> Server:
        self.port = free_port()
        log = self.root / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**self.env, **extra_env}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [SAGACTL, "serve", "--port", str(self.port), *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not answer: {log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def wait_run(
        self,
        run_id: str,
        *,
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """The run once `until(run)` holds (default: it finished)."""
        done = until or (lambda run: run["finished"] is not None)
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                answer = client.get(f"/api/runs/{run_id}")
                if answer.status_code == 200 and done(answer.json()):
                    return dict(answer.json())
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id}: {answer.text}\n{self.log_text()}")
                time.sleep(0.1)

    def staged_files(self) -> list[Path]:
        """Whatever an upload left on disk: staged tars and unpacked sources."""
        found: list[Path] = []
        for sub in ("staging", "sources"):
            folder = self.build_dir / sub
            if folder.is_dir():
                found.extend(folder.iterdir())
        return found
