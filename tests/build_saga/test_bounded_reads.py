"""Issue 10, item 13: every reader of upload content is bounded by its cap while reading.

The Procfile and app.toml are refused from their tar header when over their caps, and read
through `read_capped` (size checked before reading, the read stopped past the cap) when a
symlink or a later change gets round the header. Memory is measured as the real peak RSS
(VmHWM) of a separate process: the old readers held the whole file.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zlib
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar import appconfig, procfile
from sagactl.actions.build_from_tar.staging import StagingArea
from sagactl.actions.build_from_tar.steps.receive import READ_WHOLE_LATER
from sagactl.actions.build_from_tar.tarcheck import StagingLimits
from sagactl.actions.build_from_tar.uploadfiles import read_capped
from sagactl.engine import InputError
from tarfuzz import join, split
from tars import M, make_tar

STREAM = "stream-bounded"
PEAK_LIMIT_MB = 120
"""Peak RSS allowed to the reading process: the interpreter and sagactl take ~50 MB; the
files below are 400 MB and more."""


def _peak_of(script: str, *args: str) -> dict[str, object]:
    """Runs `script` in a fresh interpreter; it prints one JSON object, to which the
    process's peak RSS (VmHWM, its own address space only) is added."""
    wrapper = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from sagactl.engine import InputError
        result = {}
        try:
        %s
        except InputError as exc:
            result["error"] = str(exc)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                result["peak_mb"] = int(line.split()[1]) / 1024
        print(json.dumps(result))
        """
    ) % textwrap.indent(textwrap.dedent(script), "    ")
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _sparse(path: Path, size: int) -> None:
    """A file of `size` bytes of zeros that takes no disk space."""
    with path.open("wb") as file:
        file.truncate(size)


class TestFromTheHeader:
    @pytest.mark.parametrize(
        ("name", "cap"), [("Procfile", procfile.MAX_BYTES), ("app.toml", appconfig.MAX_BYTES)]
    )
    def test_refused_before_its_data_arrives(self, name: str, cap: int, tmp_path: Path) -> None:
        """A Procfile or app.toml over its cap is refused from its header: the upload below
        stops right after that header, and the error is the cap, not the truncation."""
        area = StagingArea(tmp_path, StagingLimits(file_caps=READ_WHOLE_LATER))
        data = make_tar([M(name, data=b"x" * (cap + 1))])[:1024]
        with pytest.raises(InputError) as info:
            area.stage_file(STREAM, io.BytesIO(data))
        assert (
            str(info.value) == f"member {name!r}: {cap + 1} bytes, over the limit of {cap} for it"
        )

    def test_same_name_deeper_is_not_capped(self, tmp_path: Path) -> None:
        """Only the files the saga reads are capped: a big `docs/Procfile` is just a file."""
        area = StagingArea(tmp_path, StagingLimits(file_caps=READ_WHOLE_LATER))
        size = procfile.MAX_BYTES + 1
        staged = area.stage_file(
            STREAM, io.BytesIO(make_tar([M("docs/Procfile", data=bytes(size))]))
        )
        assert staged.members == 1

    def test_receive_step_caps_every_place_app_toml_is_read(self) -> None:
        """The caps the receive step applies cover every file load_config and
        parse_services read whole."""
        assert dict(READ_WHOLE_LATER) == {
            "Procfile": procfile.MAX_BYTES,
            **{place: appconfig.MAX_BYTES for place in appconfig.PLACES},
        }


class TestReadCapped:
    def test_exact_cap_reads_and_one_more_byte_is_refused(self, tmp_path: Path) -> None:
        """At the cap the bytes come back whole; one byte over is refused by name."""
        (tmp_path / "f").write_bytes(b"a" * 100)
        assert read_capped(tmp_path, tmp_path / "f", 100) == b"a" * 100
        with pytest.raises(InputError, match=r"^f: 100 bytes, over the limit of 99$"):
            read_capped(tmp_path, tmp_path / "f", 99)

    def test_symlink_inside_followed_outside_refused(self, tmp_path: Path) -> None:
        """A symlink to another file of the app is read; one leading out is refused."""
        app = tmp_path / "app"
        app.mkdir()
        (app / "real").write_bytes(b"web: x\n")
        (app / "Procfile").symlink_to("real")
        assert read_capped(app, app / "Procfile", 100) == b"web: x\n"
        (tmp_path / "secret").write_bytes(b"s")
        (app / "out").symlink_to("../secret")
        with pytest.raises(InputError, match="out: leads outside the app"):
            read_capped(app, app / "out", 100)

    def test_not_a_regular_file(self, tmp_path: Path) -> None:
        """A FIFO is refused without blocking (it would wait forever for a writer)."""
        os.mkfifo(tmp_path / "Procfile")
        with pytest.raises(InputError, match="Procfile: is not a regular file"):
            read_capped(tmp_path, tmp_path / "Procfile", 100)


@pytest.mark.slow
class TestPeakMemory:
    @pytest.mark.parametrize(
        ("name", "loader"),
        [("Procfile", "procfile"), ("app.toml", "appconfig"), (".sagactl/app.toml", "appconfig")],
    )
    def test_huge_file_on_disk_read_within_the_cap(
        self, name: str, loader: str, tmp_path: Path
    ) -> None:
        """A 900 MB file where the loader looks (a sparse file: no disk used) is refused
        with the process's peak RSS far below its size: the size is checked before reading."""
        source = tmp_path / "src"
        (source / name).parent.mkdir(parents=True)
        _sparse(source / name, 900 << 20)
        result = _peak_of(
            f"""
            from sagactl.actions.build_from_tar import {loader}
            {loader}.load(Path(sys.argv[1]))
            """,
            str(source),
        )
        assert result["error"] == f"{name}: {900 << 20} bytes, over the limit of " + str(
            procfile.MAX_BYTES if loader == "procfile" else appconfig.MAX_BYTES
        )
        assert isinstance(result["peak_mb"], float) and result["peak_mb"] < PEAK_LIMIT_MB

    def test_small_gzip_upload_through_a_symlink(self, tmp_path: Path) -> None:
        """The attack of the issue: a small gzip upload whose Procfile is a symlink to a
        400 MB member (past the header check). Staged, unpacked, then read by
        parse_services' reader in one process: refused, with a flat peak RSS."""
        entries = split(
            make_tar([M("index.html", data=b"<p>hi</p>"), M("Procfile", "l", link="blob")])
        )
        blob = _sized_header(make_tar([M("blob")], fmt=tarfile.USTAR_FORMAT)[:512], 400 << 20)
        upload = tmp_path / "upload.tar.gz"
        upload.write_bytes(_gzip_of_zeros(join(entries, end_marker=False) + blob, 400))
        assert upload.stat().st_size < 1 << 20
        result = _peak_of(
            """
            from sagactl.actions.build_from_tar import procfile
            from sagactl.actions.build_from_tar.staging import StagingArea, extract
            from sagactl.actions.build_from_tar.steps.receive import READ_WHOLE_LATER
            from sagactl.actions.build_from_tar.tarcheck import StagingLimits
            root = Path(sys.argv[2])
            area = StagingArea(root / "staging", StagingLimits(file_caps=READ_WHOLE_LATER))
            with open(sys.argv[1], "rb") as file:
                staged = area.stage_file("stream-bounded", file)
            extract(staged.path, root / "src")
            result["blob"] = (root / "src" / "blob").stat().st_size
            procfile.load(root / "src")
            """,
            str(upload),
            str(tmp_path),
        )
        assert result.get("blob") == 400 << 20, result
        assert (
            result["error"]
            == f"Procfile: {400 << 20} bytes, over the limit of {procfile.MAX_BYTES}"
        )
        assert isinstance(result["peak_mb"], float) and result["peak_mb"] < PEAK_LIMIT_MB


def _gzip_of_zeros(prefix: bytes, mib: int) -> bytes:
    """A valid gzip stream (right CRC and length) of `prefix`, `mib` MiB of zeros and a tar
    end marker, made without compressing the zeros one by one: after a full flush each MiB of
    zeros deflates to the same bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    body = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.compress(bytes(1024)) + deflate.flush()
    crc = zlib.crc32(prefix)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(1024), crc)
    size = (len(prefix) + (mib << 20) + 1024) & 0xFFFFFFFF
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + body + block * mib + end + struct.pack("<II", crc, size)


def _sized_header(block: bytes, size: int) -> bytes:
    """A ustar header block with its size field set to `size` and its checksum resealed."""
    header = bytearray(block)
    header[124:136] = b"%011o\x00" % size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    return bytes(header)


class TestListingInMemory:
    def test_names_and_targets_kept_for_the_end_are_capped(self, tmp_path: Path) -> None:
        """The names and link targets the whole-archive checks keep until the end count
        against one cap, so long names cannot grow the checker's memory with the upload."""
        area = StagingArea(tmp_path, StagingLimits(max_listing_bytes=10_000))
        members = [M(f"d{i:03}/" + "n" * 190) for i in range(60)]
        with pytest.raises(InputError, match="pass the limit of 10000 bytes"):
            area.stage_file(STREAM, io.BytesIO(make_tar(members)))
        staged = area.stage_file(STREAM, io.BytesIO(make_tar(members[:20])))
        assert staged.members == 20
