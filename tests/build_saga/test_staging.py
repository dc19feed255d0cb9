"""Staging and extraction of uploads: the hostile-upload catalogue, limits, real apps."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import anyio
import pytest
from sagactl.actions.build_from_tar.staging import StagingArea, extract, sha256_of
from sagactl.actions.build_from_tar.tarcheck import StagingLimits
from sagactl.engine import InputError
from tars import M, gzip_bomb, listing, make_tar, tar_of_dir

STREAM = "stream-0001"

HOSTILE: dict[str, tuple[bytes, str]] = {
    "traversal": (make_tar([M("app.py"), M("../evil")]), "member '../evil': '..' in path"),
    "traversal inside": (make_tar([M("a/../../evil")]), "'..' in path"),
    "absolute path": (make_tar([M("/etc/cron.d/evil")]), "'/etc/cron.d/evil': absolute path"),
    "symlink escape direct": (
        make_tar([M("up", "l", link="../..")]),
        "symlink 'up' -> '../..': leads outside the archive",
    ),
    "symlink escape absolute": (
        make_tar([M("passwd", "l", link="/etc/passwd")]),
        "symlink 'passwd' -> '/etc/passwd': absolute target",
    ),
    "symlink escape through a chain": (
        make_tar([M("d", "d"), M("root", "l", link="d/.."), M("out", "l", link="root/../x")]),
        "symlink 'out' -> 'root/../x': leads outside the archive (through symlink 'root')",
    ),
    "symlink chain to absolute": (
        make_tar([M("a", "l", link="/"), M("b", "l", link="a/etc")]),
        "symlink 'a' -> '/': absolute target",
    ),
    "symlink loop": (
        make_tar([M("a", "l", link="b"), M("b", "l", link="a")]),
        "symlink loop",
    ),
    "member under a symlink": (
        make_tar([M("d", "d"), M("link", "l", link="d"), M("link/x", data=b"1")]),
        "member 'link/x': inside 'link', which is a symlink",
    ),
    "hardlink escape": (
        make_tar([M("h", "h", link="/etc/shadow")]),
        "hard link 'h' to '/etc/shadow': absolute path",
    ),
    "hardlink traversal": (make_tar([M("h", "h", link="../outside")]), "'..' in path"),
    "hardlink to a later member": (
        make_tar([M("h", "h", link="later"), M("later", data=b"x")]),
        "hard link to 'later', which is not an earlier file",
    ),
    "hardlink to a directory": (
        make_tar([M("d", "d"), M("h", "h", link="d")]),
        "not an earlier file",
    ),
    "character device": (make_tar([M("dev/null", "c")]), "'dev/null': a character device"),
    "block device": (make_tar([M("sda", "b")]), "'sda': a block device"),
    "fifo": (make_tar([M("pipe", "p")]), "'pipe': a FIFO"),
    "duplicate": (make_tar([M("a", data=b"1"), M("./a", data=b"2")]), "member 'a': duplicate"),
    "case clash": (
        make_tar([M("README"), M("readme")]),
        "'readme' differs only in case from 'README'",
    ),
    "case clash of directories": (
        make_tar([M("Src/a.py"), M("src/b.py")]),
        "'src' differs only in case from 'Src'",
    ),
    "file where a directory is": (
        make_tar([M("a/b"), M("a", data=b"x")]),
        "member 'a': a file where earlier members need a directory",
    ),
    "non-UTF-8 name": (
        make_tar([M("caf\udce9.txt")], fmt=tarfile.GNU_FORMAT),
        "name is not valid UTF-8",
    ),
    "over-long component": (make_tar([M("x" * 300)]), "over the limit of 255 bytes"),
    "over-long path": (make_tar([M("/".join(["abcdefgh"] * 600))]), "over the limit of 4095"),
    "empty upload": (b"", "the upload is empty"),
    "empty archive": (make_tar([]), "the archive is empty"),
    "only a root directory": (make_tar([M(".", "d")]), "the archive is empty"),
    "not a tar": (b"hello, this is not a tar archive at all\n" * 20, "not a tar archive"),
    "zip file": (b"PK\x03\x04" + bytes(600), "zip data: only tar and gzip"),
    "bzip2 file": (b"BZh91AY&SY" + bytes(600), "bzip2 data"),
    "truncated in data": (
        make_tar([M("big.bin", data=bytes(5000))])[:2048],
        "truncated: the upload ends inside member 'big.bin'",
    ),
    "truncated in a header": (
        make_tar([M("a", data=b"1"), M("b", data=b"2")])[: 1024 + 100],
        "truncated: the upload ends inside a tar header after member 'a'",
    ),
    "truncated before the end marker": (
        make_tar([M("a", data=b"1")])[:1024],
        "without the end-of-archive marker",
    ),
    "truncated gzip": (make_tar([M("a", data=b"1" * 5000)], gz=True)[:-20], "truncated"),
    "corrupt header": (
        make_tar([M("a", data=b"1")])[: 512 * 2] + b"\x01" * 512 + bytes(1024),
        "corrupt tar header after member 'a'",
    ),
}


class TestHostileUploads:
    @pytest.mark.parametrize("case", sorted(HOSTILE))
    def test_refused_with_named_member_and_nothing_left(
        self, case: str, area: StagingArea, tmp_path: Path
    ) -> None:
        """Each hostile upload raises one InputError naming the member or limit; no file
        remains in staging and nothing is written anywhere else."""
        data, expected = HOSTILE[case]
        before = listing(tmp_path)
        with pytest.raises(InputError) as info:
            area.stage_file(STREAM, io.BytesIO(data))
        assert expected in str(info.value)
        assert "\n" not in str(info.value)
        assert listing(tmp_path) - before <= {"staging"}
        assert list(area.directory.iterdir()) == []

    @pytest.mark.parametrize("case", ["traversal", "symlink escape through a chain", "fifo"])
    def test_gzip_refused_the_same(self, case: str, area: StagingArea) -> None:
        """Compression changes nothing: the same member is refused inside gzip."""
        import gzip

        data, expected = HOSTILE[case]
        with pytest.raises(InputError, match=expected.split(":")[0].replace("'", ".")):
            area.stage_file(STREAM, io.BytesIO(gzip.compress(data)))
        assert list(area.directory.iterdir()) == []


class TestLimits:
    def test_member_count(self, tmp_path: Path) -> None:
        """More members than max_members is refused, naming the limit."""
        area = StagingArea(tmp_path, StagingLimits(max_members=3))
        data = make_tar([M(f"f{i}") for i in range(4)])
        with pytest.raises(InputError, match="more than 3 members"):
            area.stage_file(STREAM, io.BytesIO(data))

    def test_member_size_refused_from_header(self, tmp_path: Path) -> None:
        """A member over max_member_bytes is refused from its header, before its data."""
        area = StagingArea(tmp_path, StagingLimits(max_member_bytes=1000))
        data = make_tar([M("big", data=bytes(2000))])
        with pytest.raises(InputError, match="'big': 2000 bytes, over the member limit of 1000"):
            area.stage_file(STREAM, io.BytesIO(data))

    def test_total_uncompressed(self, tmp_path: Path) -> None:
        """Members adding up past max_total_bytes are refused."""
        area = StagingArea(tmp_path, StagingLimits(max_total_bytes=8192))
        data = make_tar([M(f"f{i}", data=bytes(3000)) for i in range(3)])
        with pytest.raises(InputError, match="8192 uncompressed bytes"):
            area.stage_file(STREAM, io.BytesIO(data))

    def test_upload_bytes(self, tmp_path: Path) -> None:
        """An upload larger than max_upload_bytes is refused."""
        area = StagingArea(tmp_path, StagingLimits(max_upload_bytes=4096))
        data = make_tar([M("f", data=bytes(5000))])
        with pytest.raises(InputError, match="larger than the limit of 4096 bytes"):
            area.stage_file(STREAM, io.BytesIO(data))
        assert list(tmp_path.iterdir()) == []

    def test_gzip_bomb_stops_at_the_cap(self, tmp_path: Path) -> None:
        """A gzip stream inflating to 8 GiB (zeros after a valid tar) stops at a 16 MiB cap:
        the test would time out if it were inflated whole."""
        area = StagingArea(tmp_path, StagingLimits(max_total_bytes=16 << 20))
        bomb = gzip_bomb(make_tar([M("app.py", data=b"x")])[:1024], 8192)
        assert len(bomb) < 10 << 20
        with pytest.raises(InputError, match="more than the limit of 16777216 uncompressed"):
            area.stage_file(STREAM, io.BytesIO(bomb))
        assert list(tmp_path.iterdir()) == []

    def test_pax_header_size(self, tmp_path: Path) -> None:
        """A pax extended header over max_header_bytes is refused."""
        area = StagingArea(tmp_path, StagingLimits(max_header_bytes=600, max_path_bytes=10_000))
        data = make_tar([M("d/" * 400 + "f")])
        with pytest.raises(InputError, match=r"extended headers .* over the limit of 600"):
            area.stage_file(STREAM, io.BytesIO(data))


def _app_tree(root: Path) -> Path:
    (root / "requirements").mkdir(parents=True)
    (root / "requirements" / "prod.txt").write_text("flask==3.0\n")
    (root / "requirements.txt").symlink_to("requirements/prod.txt")
    (root / "app.py").write_text("print('hello')\n")
    (root / "bin").mkdir()
    (root / "bin" / "run").write_text("#!/bin/sh\necho run\n")
    (root / "bin" / "run").chmod(0o755)
    os.link(root / "app.py", root / "app-copy.py")
    (root / "static").mkdir()
    (root / "static" / "style.css").symlink_to("../app.py")
    return root


class TestStagingAndExtraction:
    @pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
    def test_real_app_with_internal_links(
        self, gz: bool, area: StagingArea, tmp_path: Path
    ) -> None:
        """An app tarred with `./` names, relative symlinks and a hard link stages and unpacks
        exactly: contents, links, modes."""
        data = tar_of_dir(_app_tree(tmp_path / "app"), gz=gz)
        staged = area.stage_file(STREAM, io.BytesIO(data))
        assert staged.size == len(data)
        assert staged.compression == ("gzip" if gz else "none")
        assert (staged.sha256, staged.size) == sha256_of(staged.path)
        assert staged.path.read_bytes() == data
        dest = tmp_path / "src"
        extract(staged.path, dest, sha256=staged.sha256)
        assert (dest / "requirements.txt").is_symlink()
        assert os.readlink(dest / "requirements.txt") == "requirements/prod.txt"
        assert (dest / "requirements.txt").read_text() == "flask==3.0\n"
        assert os.stat(dest / "app.py").st_ino == os.stat(dest / "app-copy.py").st_ino
        assert os.access(dest / "bin" / "run", os.X_OK)
        assert (dest / "static" / "style.css").read_text() == "print('hello')\n"
        assert not (tmp_path / ".src.partial").exists()

    def test_long_names_gnu_and_pax(self, area: StagingArea, tmp_path: Path) -> None:
        """Names over 100 bytes (GNU long-name and pax headers) are read in full."""
        long = "deep/" * 30 + "file.txt"
        for index, fmt in enumerate((tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)):
            staged = area.stage_file(f"{STREAM}{index}", io.BytesIO(make_tar([M(long)], fmt=fmt)))
            dest = tmp_path / f"out{index}"
            extract(staged.path, dest)
            assert (dest / long).is_file()

    def test_git_archive_global_header(self, area: StagingArea, tmp_path: Path) -> None:
        """A global pax header (as `git archive` writes) is accepted and changes nothing."""
        buf = io.BytesIO()
        with tarfile.open(
            fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "abc123"}
        ) as tar:
            info = tarfile.TarInfo("main.go")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"go!"))
        staged = area.stage_file(STREAM, io.BytesIO(buf.getvalue()))
        extract(staged.path, tmp_path / "src")
        assert (tmp_path / "src" / "main.go").read_bytes() == b"go!"

    def test_tampered_staged_file_refused_on_extract(
        self, area: StagingArea, tmp_path: Path
    ) -> None:
        """Extraction re-hashes the staged file and refuses one that changed; nothing unpacked."""
        staged = area.stage_file(STREAM, io.BytesIO(make_tar([M("a.txt", data=b"safe")])))
        content = bytearray(staged.path.read_bytes())
        content[content.index(b"safe")] = ord("S")
        staged.path.write_bytes(bytes(content))
        with pytest.raises(InputError, match="changed since it was staged"):
            extract(staged.path, tmp_path / "src", sha256=staged.sha256)
        assert not (tmp_path / "src").exists()
        assert not (tmp_path / ".src.partial").exists()

    def test_verify(self, area: StagingArea) -> None:
        """verify() finds the staged file only while size and digest still match."""
        staged = area.stage_file(STREAM, io.BytesIO(make_tar([M("a", data=b"1")])))
        assert area.verify(STREAM, staged.sha256, staged.size) == staged.path
        assert area.verify(STREAM, "0" * 64, staged.size) is None
        assert area.verify(STREAM, staged.sha256, staged.size + 1) is None
        assert area.remove(STREAM)
        assert area.verify(STREAM, staged.sha256, staged.size) is None
        assert not area.remove(STREAM)

    def test_bad_stream_id(self, area: StagingArea) -> None:
        """A stream id that could name a path elsewhere is refused."""
        with pytest.raises(InputError, match="stream id"):
            area.path_for("../../etc")

    def test_extract_replaces_a_previous_partial_attempt(
        self, area: StagingArea, tmp_path: Path
    ) -> None:
        """A rerun after a crash replaces both a half-written and a complete earlier unpack."""
        staged = area.stage_file(STREAM, io.BytesIO(make_tar([M("a", data=b"1")])))
        dest = tmp_path / "src"
        (tmp_path / ".src.partial").mkdir()
        (tmp_path / ".src.partial" / "junk").write_text("x")
        dest.mkdir()
        (dest / "stale").write_text("x")
        extract(staged.path, dest)
        assert sorted(p.name for p in dest.iterdir()) == ["a"]


class TestAsyncSources:
    @pytest.mark.anyio
    async def test_memory_object_stream(self, area: StagingArea) -> None:
        """An anyio byte stream in small pieces stages the same bytes and digest."""
        data = make_tar([M(f"f{i}", data=os.urandom(3000)) for i in range(50)], gz=True)
        send, receive = anyio.create_memory_object_stream[bytes](10)

        class Source:
            def __aiter__(self) -> Source:
                return self

            async def __anext__(self) -> bytes:
                try:
                    return await receive.receive()
                except anyio.EndOfStream:
                    raise StopAsyncIteration from None

        async def producer() -> None:
            async with send:
                for i in range(0, len(data), 1000):
                    await send.send(data[i : i + 1000])

        progress: list[int] = []
        async with receive, anyio.create_task_group() as tg:
            tg.start_soon(producer)
            staged = await area.stage(STREAM, Source(), progress.append)
        assert staged.path.read_bytes() == data
        assert progress[-1] == len(data)

    @pytest.mark.anyio
    async def test_blocking_file_in_a_thread(self, area: StagingArea, tmp_path: Path) -> None:
        """A blocking binary file is staged from a worker thread; progress reaches the loop."""
        path = tmp_path / "upload.tar"
        path.write_bytes(make_tar([M("a", data=b"1")]))
        seen: list[int] = []
        with path.open("rb") as file:
            staged = await area.stage(STREAM, file, seen.append)
        assert seen == [staged.size]

    @pytest.mark.anyio
    async def test_async_failure_leaves_nothing(self, area: StagingArea) -> None:
        """A hostile member met mid-stream in an async source leaves nothing staged."""

        async def chunks():  # type: ignore[no-untyped-def]
            yield make_tar([M("../x")])

        with pytest.raises(InputError, match=r"\.\."):
            await area.stage(STREAM, chunks())
        assert list(area.directory.iterdir()) == []

    @pytest.mark.anyio
    @pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
    async def test_unpacked_in_the_same_pass(
        self, gz: bool, area: StagingArea, tmp_path: Path
    ) -> None:
        """With unpack_to, staging leaves the tree extract() would make from the staged
        file (contents, links, modes), from an async source in small pieces."""
        data = tar_of_dir(_app_tree(tmp_path / "app"), gz=gz)

        async def pieces():  # type: ignore[no-untyped-def]
            for i in range(0, len(data), 700):
                yield data[i : i + 700]

        staged = await area.stage(STREAM, pieces(), unpack_to=tmp_path / "src")
        assert staged.path.read_bytes() == data
        extract(staged.path, tmp_path / "again", sha256=staged.sha256)
        names = listing(tmp_path / "src")
        assert names == listing(tmp_path / "again") and "app.py" in names
        for name in names:
            one, two = tmp_path / "src" / name, tmp_path / "again" / name
            assert os.lstat(one).st_mode == os.lstat(two).st_mode, name
            if one.is_file() and not one.is_symlink():
                assert one.read_bytes() == two.read_bytes(), name
        assert (
            os.stat(tmp_path / "src" / "app.py").st_ino
            == os.stat(tmp_path / "src" / "app-copy.py").st_ino
        )
        assert sorted(os.listdir(tmp_path)) == ["again", "app", "src", "staging"]

    @pytest.mark.parametrize(
        "bad",
        [make_tar([M("a", data=b"1"), M("../x", data=b"2")]), make_tar([M("a", data=b"1")])[:700]],
        ids=["hostile", "truncated"],
    )
    def test_a_refused_upload_unpacks_nothing(
        self, bad: bytes, area: StagingArea, tmp_path: Path
    ) -> None:
        """Members unpacked before the refusal are removed with their partial directory;
        an earlier tree at the destination is left as it was."""
        dest = tmp_path / "src"
        dest.mkdir()
        (dest / "old").write_text("kept")
        with pytest.raises(InputError):
            area.stage_file(STREAM, io.BytesIO(bad), unpack_to=dest)
        assert list(area.directory.iterdir()) == []
        assert sorted(os.listdir(tmp_path)) == ["src", "staging"]
        assert [p.name for p in dest.iterdir()] == ["old"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
