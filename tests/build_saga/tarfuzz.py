"""Grammar-aware fuzzing of the upload pipeline: real archives, mutated field by field.

Seeds are made by the real `tar` command (ustar, gnu, oldgnu, v7, posix, sparse in every
pax version) and by Python's tarfile writer (ustar, gnu, pax), from one tree holding empty
and block-sized files, directories, symlinks, a hard link, long names and a long link
target. A seed is split into entries (a header block and its data); mutations rewrite one
numeric field with a hostile encoding, the type flag, the magic, a name, the records of a
pax header, or the entry list itself, and most re-seal the checksum so the damage reaches
past it. `run_one` feeds the result through the staging pipeline in drawn chunk sizes under
a CPU-time and memory budget: the only acceptable outcomes are a clean archive or one
InputError line.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import signal
import subprocess
import tarfile
import tempfile
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import FrameType

from hypothesis import strategies as st
from sagactl.actions.build_from_tar.pipeline import Pipeline
from sagactl.actions.build_from_tar.tarcheck import Kind, Member, StagingLimits
from sagactl.engine import InputError

CORPUS = Path(__file__).parent / "corpus" / "tar"
CPU_SECONDS = 2.0
"""CPU time one input may take (the hang of issue 10 spun forever)."""
MEMORY_BYTES = 64 << 20
"""Python memory one input may allocate on top of what the pipeline starts with."""
LIMITS = StagingLimits(
    max_upload_bytes=32 << 20,
    max_total_bytes=32 << 20,
    max_member_bytes=16 << 20,
    max_members=2000,
    max_header_bytes=256 << 10,
)

TAR_SEEDS = {
    "tar-ustar": ["--format=ustar"],
    "tar-gnu": ["--format=gnu"],
    "tar-oldgnu": ["--format=oldgnu"],
    "tar-v7": ["--format=v7"],
    "tar-posix": ["--format=posix"],
    "tar-gnu-sparse": ["--format=gnu", "-S"],
    "tar-posix-sparse-0.0": ["--format=posix", "-S", "--sparse-version=0.0"],
    "tar-posix-sparse-0.1": ["--format=posix", "-S", "--sparse-version=0.1"],
    "tar-posix-sparse-1.0": ["--format=posix", "-S", "--sparse-version=1.0"],
}
PY_SEEDS = {
    "py-ustar": tarfile.USTAR_FORMAT,
    "py-gnu": tarfile.GNU_FORMAT,
    "py-pax": tarfile.PAX_FORMAT,
}
SEEDS = (*TAR_SEEDS, *PY_SEEDS)
LONG_DIR = "d" * 60 + "/" + "e" * 60


def make_tree(root: Path, *, sparse: bool, long_names: bool) -> None:
    """The seed tree: every member kind the parser accepts, and long names where allowed."""
    root.mkdir()
    (root / "app.py").write_text("print('hi')\n")
    (root / "empty").write_bytes(b"")
    (root / "block").write_bytes(b"b" * 512)
    (root / "over").write_bytes(b"o" * 513)
    (root / "sub").mkdir()
    (root / "sub" / "caf\u00e9.txt").write_text("unicode name\n")
    (root / "link").symlink_to("sub/caf\u00e9.txt")
    os.link(root / "app.py", root / "hard")
    if long_names:
        (root / LONG_DIR).mkdir(parents=True)
        (root / LONG_DIR / "f.txt").write_text("long\n")
        (root / "longlink").symlink_to("./" * 60 + "app.py")
    if sparse:
        with (root / "sparse").open("wb") as file:
            file.truncate(64 << 10)
            file.seek(40 << 10)
            file.write(b"data in the middle")


@cache
def seed(name: str) -> bytes:
    """The named seed archive (made once per process)."""
    with tempfile.TemporaryDirectory(prefix="tarseed-") as tmp:
        root = Path(tmp) / "tree"
        sparse = "sparse" in name
        make_tree(root, sparse=sparse, long_names=name not in ("tar-v7", "tar-ustar", "py-ustar"))
        if name in TAR_SEEDS:
            out = Path(tmp) / "seed.tar"
            members = ["sparse", "app.py"] if sparse else ["."]
            subprocess.run(
                ["tar", *TAR_SEEDS[name], "-cf", str(out), "-C", str(root), *members],
                check=True,
                capture_output=True,
            )
            return out.read_bytes()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=PY_SEEDS[name]) as tar:
            tar.add(root, arcname=".")
        return buf.getvalue()


@dataclass
class Entry:
    header: bytearray
    data: bytes


def split(archive: bytes) -> list[Entry]:
    """A seed's entries (header block, data), read with plain octal sizes: seeds are sane."""
    entries: list[Entry] = []
    pos = 0
    while pos + 512 <= len(archive):
        block = archive[pos : pos + 512]
        if not any(block):
            break
        size = int(block[124:136].split(b"\0")[0].strip() or b"0", 8)
        entries.append(Entry(bytearray(block), archive[pos + 512 : pos + 512 + size]))
        pos += 512 + size + (-size % 512)
    return entries


def join(entries: list[Entry], *, end_marker: bool = True) -> bytes:
    out = bytearray()
    for entry in entries:
        out += entry.header + entry.data + bytes(-len(entry.data) % 512)
    return bytes(out + (bytes(1024) if end_marker else b""))


def seal(header: bytearray) -> None:
    """Writes the header's correct checksum."""
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)


FIELDS = {
    "mode": (100, 8),
    "uid": (108, 8),
    "gid": (116, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "chksum": (148, 8),
    "devmajor": (329, 8),
    "devminor": (337, 8),
    "atime": (345, 12),
}


def hostile_numbers(width: int) -> st.SearchStrategy[bytes]:
    """Encodings of numbers a careless parser misreads: signs, base-256 negatives, overflow,
    digits that are not octal or not ASCII, separators, and plain noise."""
    negative_b256 = st.integers(1, 1 << 40).map(lambda n: (-n).to_bytes(width, "big", signed=True))
    huge_b256 = st.integers(1 << 33, (1 << 8 * (width - 1)) - 1).map(
        lambda n: b"\x80" + n.to_bytes(width - 1, "big")
    )
    texts = st.sampled_from(
        [
            b"-0000001000",
            b"-1",
            b"+0000001000",
            b"0000_1000",
            b" 1000 ",
            b"\xd9\xa1\xd9\xa2",
            b"99999999999",
            b"77777777777",
            b"1e10",
            b"0x200",
            b"",
            b"\x00",
            b"  ",
        ]
    )
    return st.one_of(
        negative_b256,
        huge_b256,
        texts,
        st.integers(0, 8 ** (width - 1) - 1).map(lambda n: b"%0*o\x00" % (width - 1, n)),
        st.binary(min_size=1, max_size=width),
    ).map(lambda raw: raw[:width].ljust(width, b"\x00"))


PAX_KEYS = [
    "path",
    "linkpath",
    "size",
    "mtime",
    "atime",
    "uid",
    "hdrcharset",
    "GNU.sparse.map",
    "GNU.sparse.size",
    "GNU.sparse.major",
    "SCHILY.realsize",
    "SCHILY.xattr.user.x",
    "unknown.key",
]
PAX_VALUES = [
    "-512",
    "512",
    "+5",
    "1_0",
    "\u0661\u0662",
    " 12",
    "99999999999999999999999",
    "1000000000000",
    "9223372036854775807",
    "1.5",
    "-1.5",
    "",
    "../../etc/passwd",
    "/abs",
    "x" * 300,
    "BINARY",
]


@st.composite
def pax_data(draw: st.DrawFn) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(PAX_KEYS))
        value = draw(st.sampled_from(PAX_VALUES) | st.text(max_size=20))
        body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        length = len(body) + len(str(len(body)))
        length += len(str(length)) - len(str(len(body)))
        skew = draw(st.sampled_from([0, 0, 0, -1, 1, -length, 10**6]))
        out += str(length + skew).encode() + body
    if draw(st.booleans()):
        out += draw(st.binary(max_size=16))
    return out


@dataclass(frozen=True)
class Mutant:
    """A mutated archive, shown by its seed, mutations and digest (its bytes are too long
    for a failure report; the corpus keeps them)."""

    seed: str
    ops: tuple[str, ...]
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:16]
        return f"Mutant({self.seed}, {' '.join(self.ops)}, {len(self.data)} bytes, {digest})"


@st.composite
def mutated(draw: st.DrawFn) -> Mutant:
    """A mutated archive: entries rewritten, then maybe cut or gzipped."""
    name = draw(st.sampled_from(SEEDS))
    entries = split(seed(name))
    end_marker = True
    ops: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["number", "number", "type", "magic", "name", "pax", "list"]))
        ops.append(op)
        index = draw(st.integers(0, len(entries) - 1)) if entries else 0
        if op == "list" or not entries:
            action = draw(st.sampled_from(["drop", "repeat", "swap", "end"]))
            if action == "end":
                end_marker = not end_marker
            elif entries and action == "drop":
                del entries[index]
            elif entries and action == "repeat":
                entries.insert(index, Entry(bytearray(entries[index].header), entries[index].data))
            elif len(entries) > 1:
                entries[0], entries[index] = entries[index], entries[0]
            continue
        header = entries[index].header
        if op == "number":
            start, width = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
            header[start : start + width] = draw(hostile_numbers(width))
        elif op == "type":
            header[156] = draw(st.sampled_from(b"0123456789xgLKSVMNDXA\x00\xff"))
        elif op == "magic":
            header[257:265] = draw(st.sampled_from([b"ustar\x0000", b"ustar  \x00", bytes(8)]))
        elif op == "name":
            start, width = draw(st.sampled_from([(0, 100), (157, 100), (345, 155)]))
            raw = draw(st.sampled_from([b"..", b"/etc/x", b"a/../../b", b"x" * 100, b"\xff\xfe"]))
            header[start : start + width] = raw[:width].ljust(width, b"\x00")
        else:
            data = draw(pax_data())
            header[156] = draw(st.sampled_from(b"xg"))
            header[124:136] = b"%011o\x00" % len(data)
            entries[index] = Entry(header, data)
        if draw(st.integers(0, 9)) > 1:
            seal(header)
    archive = join(entries, end_marker=end_marker)
    if draw(st.booleans()):
        archive = archive[: draw(st.integers(0, len(archive)))]
        ops.append("cut")
    if draw(st.integers(0, 4)) == 0:
        archive = gzip.compress(archive, mtime=0)
        ops.append("gzip")
    return Mutant(name, tuple(ops), archive)


@dataclass
class Outcome:
    """What the pipeline made of one input: its members, or the InputError line."""

    members: list[Member]
    data_bytes: int
    error: str | None


class OverBudget(Exception):
    """An input took more CPU time than CPU_SECONDS."""


def _over_budget(signum: int, frame: FrameType | None) -> None:
    raise OverBudget(f"over the budget of {CPU_SECONDS} s of CPU time")


@contextlib.contextmanager
def cpu_budget(seconds: float) -> Iterator[None]:
    """Raises OverBudget in this (main) thread once the process used `seconds` of CPU.
    SIGPROF, not SIGALRM: pytest-timeout owns the alarm."""
    previous = signal.signal(signal.SIGPROF, _over_budget)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def run_one(data: bytes, chunk: int = 65536) -> Outcome:
    """Feeds `data` through the pipeline in `chunk`-byte pieces under the CPU and memory
    budgets. Returns the outcome; anything but InputError propagates (that is a bug)."""
    members: list[Member] = []
    received = [0]

    def on_data(view: memoryview) -> None:
        received[0] += len(view)

    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    error: str | None = None
    try:
        with cpu_budget(CPU_SECONDS):
            pipeline = Pipeline(LIMITS, members.append, on_data)
            for start in range(0, len(data), chunk):
                pipeline.feed(memoryview(data[start : start + chunk]))
            pipeline.close()
    except InputError as exc:
        error = str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
    if peak > MEMORY_BYTES:
        raise MemoryError(f"one input allocated {peak} bytes, over {MEMORY_BYTES}")
    return Outcome(members, received[0], error)


def check(outcome: Outcome) -> None:
    """The laws every outcome obeys, clean or refused."""
    if outcome.error is not None:
        assert "\n" not in outcome.error, outcome.error
        assert len(outcome.error) < 400, outcome.error
        assert "Traceback" not in outcome.error
        return
    files = [m for m in outcome.members if m.kind is Kind.FILE]
    assert outcome.data_bytes == sum(m.size for m in files)
    for member in outcome.members:
        assert member.size >= 0 and 0 <= member.mode <= 0o7777
        assert not member.name.startswith("/") and ".." not in member.name.split("/")
        assert len(member.name.encode()) <= LIMITS.max_name_bytes


def save_crash(data: bytes) -> Path:
    """Keeps a crashing input in the corpus, named by its digest, to replay forever."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    path = CORPUS / f"crash-{hashlib.sha256(data).hexdigest()[:16]}.tar"
    path.write_bytes(data)
    return path
