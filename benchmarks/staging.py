"""Issue 4's staging workload: a large tar made once, piped into a stager per round."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
SIZE_ENV = "SAGACTL_BENCH_STAGE_MB"
"""Overrides the tar's size in MiB (default 1024) for quick local runs."""
DRIVER = Path(__file__).with_name("stage_driver.py")


def tar_size() -> int:
    return int(os.environ.get(SIZE_ENV, "1024")) * MiB


class _Filler(io.RawIOBase):
    """`size` bytes of a repeated random block, read like a file, never held whole."""

    def __init__(self, size: int, block: bytes) -> None:
        self._left = size
        self._block = block

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, len(self._block))
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def make_tar(path: Path, size: int) -> int:
    """An app-like tar of about `size` bytes: a source tree of small files plus large assets.

    Returns the tar's byte count. Written through tarfile from a stream, so memory stays flat.
    """
    block = os.urandom(MiB)
    small = 4096
    n_small = max(1, min(2000, size // 4 // small))
    big_total = max(0, size - n_small * (small + 512))
    n_big = max(1, big_total // (64 * MiB))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in range(n_small // 100 + 1):
            info = tarfile.TarInfo(f"app/src/pkg{d}")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for i in range(n_small):
            info = tarfile.TarInfo(f"app/src/pkg{i // 100}/module{i}.py")
            info.size = small
            tar.addfile(info, io.BufferedReader(_Filler(small, block[i % 1024 :] + block)))
        for i in range(n_big):
            part = big_total // n_big
            info = tarfile.TarInfo(f"app/assets/blob{i}.bin")
            info.size = part
            tar.addfile(info, io.BufferedReader(_Filler(part, block), MiB))
    return path.stat().st_size


@dataclass
class Piped:
    """A consumer process reading a pipe; the feeder starts later, in `feed`."""

    consumer: subprocess.Popen[bytes]
    write_end: int

    def feed(self, source: Path) -> bytes:
        """Pipe `source` in with `cat` and wait for the consumer; returns its stdout."""
        feeder = subprocess.Popen(["cat", str(source)], stdout=self.write_end)
        os.close(self.write_end)
        out, _ = self.consumer.communicate()
        if feeder.wait() != 0 or self.consumer.returncode != 0:
            raise RuntimeError(
                f"pipeline failed: cat exit {feeder.returncode}, "
                f"consumer exit {self.consumer.returncode}"
            )
        return out


def start_consumer(argv: list[str], *, wait_ready: bool) -> Piped:
    """Starts `argv` reading a fresh pipe; with `wait_ready`, waits for its `ready` line."""
    read_end, write_end = os.pipe()
    consumer = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    if wait_ready:
        assert consumer.stdout is not None
        line = consumer.stdout.readline()
        if line.strip() != b"ready":
            consumer.wait()
            os.close(write_end)
            raise RuntimeError(f"stager did not start (exit {consumer.returncode}): {line!r}")
    return Piped(consumer, write_end)


def cat_to_file(destination: Path) -> list[str]:
    """The baseline: `cat > file` then fsync of the file (coreutils `sync FILE`)."""
    return ["sh", "-c", 'cat > "$1" && sync "$1"', "sh", str(destination)]


def stager(directory: Path, stream_id: str) -> list[str]:
    return [sys.executable, str(DRIVER), str(directory), stream_id]
