"""Issue 10, items 6, 9 and 17: what the parser does not fully understand is refused by name,
never passed through; a plain tar is recognised by its header before any compression magic."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from sagactl.actions.build_from_tar.staging import StagingArea, extract
from sagactl.engine import InputError
from tarfuzz import Entry, join, run_one, seal, split
from tars import M, make_tar

STREAM = "stream-unsupported"


def _sparse_tree(root: Path) -> Path:
    root.mkdir()
    (root / "app.py").write_text("print('hi')\n")
    with (root / "disk.img").open("wb") as file:
        file.truncate(1 << 20)
        file.seek(500_000)
        file.write(b"the only data")
    return root


def _tar(root: Path, *options: str) -> bytes:
    result = subprocess.run(
        ["tar", *options, "-cf", "-", "-C", str(root), "."], check=True, capture_output=True
    )
    return result.stdout


SPARSE = {
    "gnu": ["--format=gnu", "-S"],
    "posix 0.0": ["--format=posix", "-S", "--sparse-version=0.0"],
    "posix 0.1": ["--format=posix", "-S", "--sparse-version=0.1"],
    "posix 1.0": ["--format=posix", "-S", "--sparse-version=1.0"],
    "posix default": ["--format=posix", "-S"],
}


class TestSparse:
    @pytest.mark.parametrize("variant", sorted(SPARSE))
    def test_sparse_files_are_refused_by_name(
        self, variant: str, area: StagingArea, tmp_path: Path
    ) -> None:
        """`tar -S` in every format (GNU, pax 0.0, 0.1, 1.0) is refused naming the member and
        how to fix it; nothing is staged, nothing like GNUSparseFile.<pid> is unpacked."""
        data = _tar(_sparse_tree(tmp_path / "app"), *SPARSE[variant])
        with pytest.raises(InputError) as info:
            area.stage_file(STREAM, io.BytesIO(data))
        message = str(info.value)
        assert "sparse file" in message and "disk.img" in message, message
        assert list(area.directory.iterdir()) == []

    def test_same_tree_without_sparse_unpacks_whole(
        self, area: StagingArea, tmp_path: Path
    ) -> None:
        """The fix the error suggests works: without -S the file unpacks with its bytes."""
        root = _sparse_tree(tmp_path / "app")
        staged = area.stage_file(STREAM, io.BytesIO(_tar(root, "--format=posix")))
        extract(staged.path, tmp_path / "src")
        assert (tmp_path / "src" / "disk.img").read_bytes() == (root / "disk.img").read_bytes()
        assert not [p for p in (tmp_path / "src").rglob("*") if "GNUSparse" in str(p)]


def _with_type(flag: bytes) -> bytes:
    entries = split(make_tar([M("app.py", data=b"x")], fmt=tarfile.USTAR_FORMAT))
    entries[0].header[156:157] = flag
    seal(entries[0].header)
    return join(entries)


ACCEPTED_TYPES = {b"0", b"\x00", b"7", b"5"}


class TestTypeflags:
    def test_every_typeflag_byte_is_accepted_or_refused_by_name(self) -> None:
        """All 256 type flags: the regular ones (and directory) unpack; links, extended headers
        and every other byte are refused or need what they name, never passed through."""
        verdicts = {}
        for value in range(256):
            flag = bytes([value])
            outcome = run_one(_with_type(flag))
            verdicts[flag] = outcome.error
            if flag in ACCEPTED_TYPES and flag != b"5":
                assert outcome.error is None, (flag, outcome.error)
                assert [m.name for m in outcome.members] == ["app.py"]
        assert verdicts[b"5"] == "member 'app.py': a directory that carries data"
        refused_by_name = {
            b"3": "a character device",
            b"4": "a block device",
            b"6": "a FIFO",
            b"S": "a GNU sparse file",
            b"V": "a volume label",
            b"M": "a multi-volume continuation",
            b"N": "an old GNU long-name record",
            b"D": "a GNU incremental directory dump",
            b"X": "a Solaris extended header",
        }
        for flag, words in refused_by_name.items():
            assert verdicts[flag] == f"member 'app.py': {words} (not allowed)"
        for flag in (b"A", b"I", b"Z", b"8", b"9", b"\xff"):
            assert verdicts[flag] == f"member 'app.py': unknown tar member type {flag!r}"
        # hard and symbolic links with data, extended headers swallowing the member:
        # each is refused, none is accepted
        for flag in (b"1", b"2", b"x", b"g", b"L", b"K"):
            assert verdicts[flag] is not None, flag


def _pax_tar(records: dict[str, str], *, is_global: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf,
        mode="w",
        format=tarfile.PAX_FORMAT,
        pax_headers=records if is_global else None,
    ) as tar:
        info = tarfile.TarInfo("app.py")
        info.size = 2
        if not is_global:
            info.pax_headers = records
        tar.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


class TestPaxKeys:
    @pytest.mark.parametrize(
        ("records", "expected"),
        [
            ({"GNU.sparse.map": "0,10"}, "member 'app.py': a sparse file (pax GNU.sparse.*)"),
            ({"GNU.sparse.major": "1"}, "a sparse file"),
            ({"SCHILY.realsize": "100"}, "part of a multi-volume archive"),
            ({"SCHILY.filetype": "socket"}, "pax key 'SCHILY.filetype' is not supported"),
            ({"acme.madeup": "1"}, "pax key 'acme.madeup' is not supported"),
            ({"hdrcharset": "BINARY"}, "pax hdrcharset 'BINARY' (names must be UTF-8)"),
        ],
    )
    def test_unknown_or_meaning_changing_keys_are_refused(
        self, records: dict[str, str], expected: str
    ) -> None:
        """A key that could change what the member is, or that we do not know, is refused
        naming the member and the key."""
        outcome = run_one(_pax_tar(records))
        assert outcome.error is not None and expected in outcome.error, outcome.error

    @pytest.mark.parametrize("key", ["path", "linkpath", "size", "mtime"])
    def test_global_header_setting_member_fields_is_refused(self, key: str) -> None:
        """A global pax header that would rename or resize every member is refused."""
        outcome = run_one(_pax_tar({key: "1"}, is_global=True))
        assert outcome.error is not None
        assert f"a global pax header sets {key!r} for every member" in outcome.error

    def test_metadata_keys_are_checked_and_ignored(self) -> None:
        """Owner, time, xattr and ACL keys (GNU tar, bsdtar, star) are checked and ignored:
        they change nothing unpacking does."""
        records = {
            "atime": "1700000000.5",
            "ctime": "1700000000",
            "uid": "1000",
            "gid": "1000",
            "uname": "dev",
            "gname": "dev",
            "comment": "hello",
            "hdrcharset": "ISO-IR 10646 2000 UTF-8",
            "SCHILY.xattr.user.origin": "https://example.com",
            "LIBARCHIVE.xattr.com.apple.provenance": "AQIA",
            "SCHILY.acl.access": "user::rw-",
            "SCHILY.fflags": "nodump",
            "SCHILY.dev": "2049",
            "SCHILY.ino": "12",
            "SCHILY.nlink": "1",
            "LIBARCHIVE.creationtime": "1700000000",
        }
        outcome = run_one(_pax_tar(records))
        assert outcome.error is None, outcome.error
        assert [(m.name, m.size) for m in outcome.members] == [("app.py", 2)]

    def test_gnu_tar_posix_with_xattrs_is_accepted(self, tmp_path: Path) -> None:
        """What GNU tar writes with --format=posix --xattrs (atime, ctime, SCHILY.xattr)."""
        root = tmp_path / "app"
        root.mkdir()
        (root / "app.py").write_text("print('hi')\n")
        try:
            os.setxattr(root / "app.py", "user.origin", b"upload")
        except OSError:
            pytest.skip("this filesystem has no user xattrs")
        data = _tar(root, "--format=posix", "--xattrs")
        assert b"SCHILY.xattr.user.origin" in data
        outcome = run_one(data)
        assert outcome.error is None, outcome.error
        assert "app.py" in {m.name for m in outcome.members}


def _named(first: str) -> bytes:
    return make_tar([M(first, data=b"payload"), M("app.py", data=b"x")], fmt=tarfile.USTAR_FORMAT)


class TestCompressionSniffing:
    @pytest.mark.parametrize(
        "first", ["BZh91AY&SY", "PK\x03\x04.txt", "\x1f\x8b-gzip-like", "\x28\xb5\x2f\xfd"]
    )
    def test_plain_tar_named_like_a_magic_is_a_tar(
        self, first: str, area: StagingArea, tmp_path: Path
    ) -> None:
        """A plain tar whose first member's name starts with a compression magic is a tar:
        its header checks out, so no guessing happens."""
        data = _named(first)
        assert data.startswith(first.encode())
        staged = area.stage_file(STREAM, io.BytesIO(data))
        assert staged.compression == "none"
        extract(staged.path, tmp_path / "src")
        assert (tmp_path / "src" / first).read_bytes() == b"payload"

    @pytest.mark.parametrize(
        ("compress", "name"),
        [
            (bz2.compress, "bzip2"),
            (lzma.compress, "xz"),
            (lambda data: b"\x28\xb5\x2f\xfd" + data, "zstd"),
        ],
    )
    def test_other_compressions_are_named(
        self, compress: object, name: str, area: StagingArea
    ) -> None:
        """Real bzip2 and xz data (and zstd's magic) are refused naming the format."""
        assert callable(compress)
        data = compress(make_tar([M("app.py", data=b"x")]))
        with pytest.raises(InputError, match=f"the upload is {name} data: only tar and gzip"):
            area.stage_file(STREAM, io.BytesIO(data))

    def test_zip_file_is_named(self, area: StagingArea) -> None:
        """A real zip archive is refused as zip."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("app.py", "print('hi')\n")
        with pytest.raises(InputError, match="the upload is zip data"):
            area.stage_file(STREAM, io.BytesIO(buf.getvalue()))

    @pytest.mark.parametrize("size", [10, 2000])
    def test_gzip_in_gzip_is_not_a_tar(self, size: int, area: StagingArea) -> None:
        """A tar compressed twice is "not a tar", with the inner format named, whether the
        inner stream is tiny (it was reported as truncated) or not."""
        inner = gzip.compress(os.urandom(size))
        with pytest.raises(InputError) as info:
            area.stage_file(STREAM, io.BytesIO(gzip.compress(inner)))
        assert str(info.value).startswith("not a tar archive"), str(info.value)
        if size > 600:
            assert "gzip data" in str(info.value)

    def test_short_plain_garbage_is_not_a_tar(self, area: StagingArea) -> None:
        """A few bytes that are neither tar nor compressed are "not a tar archive"."""
        with pytest.raises(InputError, match="not a tar archive"):
            area.stage_file(STREAM, io.BytesIO(b"hello"))


class TestExtendedHeaderSequencing:
    def test_extended_header_without_a_member(self) -> None:
        """A pax header right before the end marker is refused, not silently dropped."""
        entries = split(_pax_tar({"comment": "x"}))
        outcome = run_one(join(entries[:1]))
        assert outcome.error is not None and "has no member after it" in outcome.error

    def test_many_small_extended_headers_are_capped_together(self) -> None:
        """Extended headers before one member count against one cap, so a run of them
        cannot grow memory with the upload."""
        entries = split(_pax_tar({"SCHILY.xattr.user.k": "v" * 200_000}))
        pax = entries[0]
        many = [Entry(bytearray(pax.header), pax.data) for _ in range(3)] + entries[1:]
        outcome = run_one(join(many))
        assert outcome.error is not None and "over the limit of" in outcome.error


class TestMagic:
    @pytest.mark.parametrize(
        ("magic", "accepted"),
        [
            (b"ustar\x0000", True),
            (b"ustar  \x00", True),
            (bytes(8), True),
            (b"ustar\x00\x00\x00", True),
            (b"ustar\x00 \x00", True),
            (b"ustar\x0001", False),
            (b"USTAR\x0000", False),
        ],
    )
    def test_magic_and_version(self, magic: bytes, accepted: bool) -> None:
        """POSIX, GNU and v7 magic (and POSIX with a blank version) are tars; any other
        magic, even with a valid checksum, is not."""
        entries = split(make_tar([M("app.py", data=b"x")], fmt=tarfile.USTAR_FORMAT))
        entries[0].header[257:265] = magic
        seal(entries[0].header)
        outcome = run_one(join(entries))
        if accepted:
            assert outcome.error is None, outcome.error
        else:
            assert outcome.error is not None and "not a tar archive (unknown magic" in outcome.error
