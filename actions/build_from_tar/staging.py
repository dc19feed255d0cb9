"""Stage an upload durably (fixed-size chunks, fsync, sha256, byte count) and unpack it safely.

Every byte goes through one pipeline: count and cap, write, hash, inflate when gzip (detected
by its magic bytes, inflated with a cap on what comes out), then the checking tar parser. A
refused or broken upload leaves nothing staged. Extraction walks the staged file with the
same parser, so it unpacks exactly what was checked, and re-hashes it on the way.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import io
import os
import queue
import re
import shutil
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import anyio
import anyio.abc
import anyio.from_thread
import anyio.to_thread
from sagactl.engine import InputError

from .pipeline import CHUNK, Pipeline
from .tarcheck import BLOCK, Kind, Member, StagingLimits

PROGRESS_EVERY = 8 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

_STREAM_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes received so far."""


class Observer(Protocol):
    """Sees each checked member and the data of regular files as a stage-only pass goes
    (precheck.FileCapture keeps the app's config files)."""

    def member(self, member: Member) -> None: ...

    def data(self, chunk: memoryview) -> None: ...


@dataclass(frozen=True, slots=True)
class StagedUpload:
    """An upload staged whole: checked, fsynced, renamed into place."""

    path: Path
    sha256: str
    size: int
    compression: str
    """`gzip` or `none`."""
    members: int
    uncompressed: int


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Worker:
    """Calls `work(chunk)` for each chunk put, from a thread of its own, so that work
    overlaps whatever produces the chunks; at most `depth` chunks wait in between (memory
    stays flat). The first error is kept, later chunks dropped, and raised to the producer."""

    def __init__(self, work: Callable[[bytes], object], name: str, depth: int = 4) -> None:
        self.work = work
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.work(chunk)
                except BaseException as exc:
                    self.error = exc

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def put_nowait(self, chunk: bytes) -> bool:
        """Queued without waiting (False: the queue is full; nothing was queued)."""
        if self.error is not None:
            raise self.error
        try:
            self.queue.put_nowait(chunk)
        except queue.Full:
            return False
        return True

    def close(self) -> None:
        """Waits for every queued chunk to be done; raises the worker's error if any."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _writer(fd: int) -> _Worker:
    """Writes chunks to `fd` from its own thread, so disk writes overlap hashing and
    checking."""
    return _Worker(lambda chunk: _write_all(fd, memoryview(chunk)), "sagactl-stager")


class _Stager:
    """One upload being staged: bytes in, a checked and durable file out (or nothing)."""

    def __init__(
        self,
        final: Path,
        limits: StagingLimits,
        unpack_to: Path | None,
        observer: Observer | None = None,
    ) -> None:
        self.final = final
        self.partial = final.with_name(f".{final.name}.partial")
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()  # left by a process that crashed mid-upload
        self.unpacker = _Unpacker(unpack_to, limits) if unpack_to is not None else None
        try:
            self.fd = os.open(
                self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
            )
        except BaseException:
            if self.unpacker is not None:
                self.unpacker.abort()
            raise
        if self.unpacker is not None:
            self.pipeline = self.unpacker.pipeline
        elif observer is not None:
            self.pipeline = Pipeline(limits, observer.member, observer.data)
        else:
            self.pipeline = Pipeline(limits)
        self.writer: _Worker | None = _writer(self.fd)

    def feed(self, data: bytes | memoryview) -> None:
        chunk = data if isinstance(data, bytes) else bytes(data)
        self.pipeline.feed(memoryview(chunk))
        assert self.writer is not None
        self.writer.put(chunk)

    def finish(self) -> StagedUpload:
        self.pipeline.close()
        self._stop_writer()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        if self.unpacker is not None:
            self.unpacker.finish()
        os.replace(self.partial, self.final)
        _fsync_dir(self.final.parent)
        p = self.pipeline
        return StagedUpload(
            path=self.final,
            sha256=p.hash.hexdigest(),
            size=p.size,
            compression=p.inflater.compression or "none",
            members=p.parser.members,
            uncompressed=p.inflater.total,
        )

    def _stop_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def abort(self) -> None:
        with contextlib.suppress(BaseException):
            self._stop_writer()
        if self.unpacker is not None:
            self.unpacker.abort()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


def sha256_of(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read in fixed-size chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class StagingArea:
    """A directory of staged uploads, one `<stream_id>.tar` each (the bytes as received)."""

    def __init__(self, directory: Path, limits: StagingLimits | None = None) -> None:
        self.directory = directory
        self.limits = limits or StagingLimits()

    def path_for(self, stream_id: str) -> Path:
        if not _STREAM_ID.match(stream_id):
            raise InputError(f"stream id {stream_id!r} is not 8-128 of [A-Za-z0-9_-]")
        return self.directory / f"{stream_id}.tar"

    def stage_file(
        self,
        stream_id: str,
        source: BinaryIO,
        on_progress: ProgressCallback | None = None,
        unpack_to: Path | None = None,
        observer: Observer | None = None,
    ) -> StagedUpload:
        """Stage from a blocking binary file (a pipe, a socket file, a file); with
        `unpack_to`, unpack it there in the same pass (as `extract` would after); else
        `observer` sees the members go by."""
        _widen_pipe(source)
        stager = self._stager(stream_id, unpack_to, observer)
        try:
            reported = 0
            while chunk := source.read(CHUNK):
                stager.feed(chunk)
                size = stager.pipeline.size
                if on_progress is not None and size - reported >= PROGRESS_EVERY:
                    reported = size
                    on_progress(size)
            staged = stager.finish()
        except BaseException:
            stager.abort()
            raise
        if on_progress is not None:
            on_progress(staged.size)
        return staged

    async def stage(
        self,
        stream_id: str,
        source: Any,
        on_progress: ProgressCallback | None = None,
        unpack_to: Path | None = None,
        observer: Observer | None = None,
    ) -> StagedUpload:
        """Stage from a blocking file (read in a worker thread) or an async byte source:
        an anyio byte stream, an async iterable of bytes, or an object with `async read(n)`.
        With `unpack_to`, the upload is unpacked there in the same pass: each byte is read,
        hashed and parsed once, and `unpack_to` is whole once this returns (else absent).
        Without it, `observer` (if any) sees each member and the regular files' data."""
        if _is_async_source(source):
            return await self._stage_async(stream_id, source, on_progress, unpack_to, observer)
        report = None
        if on_progress is not None:
            callback = on_progress

            def report(size: int) -> None:
                anyio.from_thread.run_sync(callback, size)

        return await anyio.to_thread.run_sync(
            self.stage_file, stream_id, source, report, unpack_to, observer
        )

    async def _stage_async(
        self,
        stream_id: str,
        source: Any,
        on_progress: ProgressCallback | None,
        unpack_to: Path | None,
        observer: Observer | None,
    ) -> StagedUpload:
        stager = await anyio.to_thread.run_sync(self._stager, stream_id, unpack_to, observer)
        # Fed from a thread of its own: the event loop receives the next chunk while the
        # last one is hashed, checked and written (it waits only when the queue is full).
        feeder = _Worker(stager.feed, "sagactl-stage-feed")
        feeding = True
        try:
            reported = 0
            async for chunk in _batches(_async_chunks(source)):
                if not feeder.put_nowait(chunk):
                    await anyio.to_thread.run_sync(feeder.put, chunk)
                size = stager.pipeline.size
                if on_progress is not None and size - reported >= PROGRESS_EVERY:
                    reported = size
                    on_progress(size)
            feeding = False  # its thread ends in close, error or not
            await anyio.to_thread.run_sync(feeder.close)
            staged = await anyio.to_thread.run_sync(stager.finish)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if feeding:
                    await anyio.to_thread.run_sync(_stop, feeder)
                await anyio.to_thread.run_sync(stager.abort)
            raise
        if on_progress is not None:
            on_progress(staged.size)
        return staged

    def _stager(
        self, stream_id: str, unpack_to: Path | None = None, observer: Observer | None = None
    ) -> _Stager:
        final = self.path_for(stream_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        return _Stager(final, self.limits, unpack_to, observer)

    def verify(self, stream_id: str, sha256: str, size: int) -> Path | None:
        """The staged file when it is still there with this size and digest, else None."""
        path = self.path_for(stream_id)
        try:
            if path.stat().st_size != size:
                return None
            digest, _ = sha256_of(path)
        except FileNotFoundError:
            return None
        return path if digest == sha256 else None

    def remove(self, stream_id: str) -> bool:
        """Remove the staged file (and any partial one); True when something was removed."""
        path = self.path_for(stream_id)
        removed = False
        for candidate in (path, path.with_name(f".{path.name}.partial")):
            # NotADirectoryError: the staging directory could never be made, so holds nothing
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                candidate.unlink()
                removed = True
        return removed

    def sweep(self, older_than: float) -> list[Path]:
        """Removes staged uploads (and partial ones, and the config checks' scratch copies:
        `.precheck-*`) not modified for `older_than` seconds: the leftovers of runs that
        ended where no cleanup hook could run, such as a SIGKILL."""
        removed: list[Path] = []
        cutoff = time.time() - older_than
        try:
            candidates = list(self.directory.iterdir())
        except FileNotFoundError:
            return removed
        for path in candidates:
            scratch = path.name.startswith(".precheck-")
            if not (scratch or path.name.endswith((".tar", ".partial"))):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.lstat().st_mtime < cutoff:
                    if scratch and path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink()
                    removed.append(path)
        return removed


def _stop(worker: _Worker) -> None:
    """Drops what is still queued and waits for the thread to end."""
    if worker.error is None:
        worker.error = InputError("staging was stopped")
    with contextlib.suppress(BaseException):  # the error that stopped us is raised already
        worker.close()


def _widen_pipe(source: Any) -> None:
    """Grow a pipe's kernel buffer to one chunk: half the context switches of the default
    64 KiB, which is what makes a Python reader slower than `cat` on a pipe."""
    try:
        fd = source.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass  # not a pipe, or the system's pipe-max-size is lower: the default is fine


def _is_async_source(source: Any) -> bool:
    return (
        isinstance(source, anyio.abc.ByteReceiveStream)
        or hasattr(source, "__aiter__")
        or inspect.iscoroutinefunction(getattr(source, "read", None))
    )


async def _batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pieces joined up to CHUNK bytes: a thread hand-over per piece would cost more than
    its work. A piece already that big passes through uncopied."""
    pieces: list[bytes] = []
    held = 0
    async for chunk in chunks:
        if not pieces and len(chunk) >= CHUNK:
            yield chunk
            continue
        pieces.append(chunk)
        held += len(chunk)
        if held >= CHUNK:
            yield b"".join(pieces)
            pieces.clear()
            held = 0
    if pieces:
        yield b"".join(pieces)


async def _async_chunks(source: Any) -> AsyncIterator[bytes]:
    if isinstance(source, anyio.abc.ByteReceiveStream):
        while True:
            try:
                yield await source.receive(CHUNK)
            except anyio.EndOfStream:
                return
    elif hasattr(source, "__aiter__"):
        async for chunk in source:
            yield bytes(chunk)
    else:
        while chunk := await source.read(CHUNK):
            yield bytes(chunk)


class _Extractor:
    """Writes checked members under `root`; links and directory modes come last."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = -1
        self.remaining = 0
        self.current: Member | None = None
        self.symlinks: list[Member] = []
        self.dirs: list[Member] = []

    def member(self, member: Member) -> None:
        path = os.path.join(self.root, member.name)
        if member.kind is Kind.DIR:
            os.makedirs(path, 0o700, exist_ok=True)
            self.dirs.append(member)
            return
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        if member.kind is Kind.SYMLINK:
            self.symlinks.append(member)
        elif member.kind is Kind.HARDLINK:
            os.link(os.path.join(self.root, member.target or ""), path, follow_symlinks=False)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(path, flags, 0o600)
            self.current = member
            self.remaining = member.size
            if member.size == 0:
                self._close_file()

    def data(self, chunk: memoryview) -> None:
        _write_all(self.fd, chunk)
        self.remaining -= len(chunk)
        if self.remaining == 0:
            self._close_file()

    def _close_file(self) -> None:
        member = self.current
        assert member is not None
        os.fchmod(self.fd, (member.mode & 0o755) | 0o600)
        os.utime(self.fd, (member.mtime, member.mtime))
        os.close(self.fd)
        self.fd = -1
        self.current = None

    def finish(self) -> None:
        for link in self.symlinks:
            path = os.path.join(self.root, link.name)
            os.symlink(link.target or "", path)
            os.utime(path, (link.mtime, link.mtime), follow_symlinks=False)
        for directory in sorted(self.dirs, key=lambda d: d.name.count("/"), reverse=True):
            path = os.path.join(self.root, directory.name)
            os.chmod(path, (directory.mode & 0o755) | 0o700)
            os.utime(path, (directory.mtime, directory.mtime))

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def unpacking_dir(dest: Path) -> Path:
    """Where `extract` unpacks before renaming to `dest`: the longest root a member meets."""
    return dest.with_name(f".{dest.name}.partial")


class _Unpacker:
    """Unpacks a tar stream fed to its pipeline into a sibling `.partial` directory of
    `dest`, renamed into place by `finish`: `dest` is either whole or absent."""

    def __init__(self, dest: Path, limits: StagingLimits) -> None:
        self.dest = dest
        self.partial = unpacking_dir(dest)
        shutil.rmtree(self.partial, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.partial.mkdir(0o700)
        self.extractor = _Extractor(self.partial)
        self.pipeline = Pipeline(
            limits.under(self.partial), self.extractor.member, self.extractor.data
        )

    def finish(self) -> None:
        """The pipeline was closed (the archive is known good): links, modes, rename."""
        self.extractor.finish()
        os.chmod(self.partial, 0o755)
        shutil.rmtree(self.dest, ignore_errors=True)
        os.replace(self.partial, self.dest)

    def abort(self) -> None:
        self.extractor.abort()
        shutil.rmtree(self.partial, ignore_errors=True)


def extract(
    staged: Path, dest: Path, *, limits: StagingLimits | None = None, sha256: str | None = None
) -> int:
    """Unpack a staged upload into `dest` (replaced if present); returns the member count.

    Unpacks into a sibling `.partial` directory and renames it into place, so `dest` is
    either whole or absent. With `sha256`, refuses a staged file that changed since.
    """
    unpacker = _Unpacker(dest, limits or StagingLimits())
    pipeline = unpacker.pipeline
    try:
        with staged.open("rb") as file:
            while chunk := file.read(CHUNK):
                pipeline.feed(memoryview(chunk))
        pipeline.close()
        if sha256 is not None and pipeline.hash.hexdigest() != sha256:
            raise InputError(f"staged upload {staged.name} changed since it was staged")
        unpacker.finish()
    except BaseException:
        unpacker.abort()
        raise
    return pipeline.parser.members


__all__ = [
    "BLOCK",
    "CHUNK",
    "StagedUpload",
    "StagingArea",
    "StagingLimits",
    "extract",
    "sha256_of",
]
